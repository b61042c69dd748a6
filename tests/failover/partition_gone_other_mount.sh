#!/usr/bin/env bash
# A file replaced (renamed over) or unlinked through mount 1 while mount 1
# is cut off from brick 2 lives on only on brick 2, the brick that missed
# its end.  Mount 2 reaches every brick and had read both files; its
# kernel still holds their names while the invalidations wait in its
# notifier (RFS_TEST_NOTIFY_DELAY_MS, as they may for a moment in real
# life), so its next open() goes by the old inode.  That object is then
# present on a minority and gone from a quorum: it was deleted, and the
# open must say so (ESTALE, so that the kernel looks the name up again)
# rather than read brick 2's old bytes.  Regression test for bug 26 in
# docs/reliability.md (found by failover.partition_mount: "read ... saw
# size 134479, acknowledged size 194069").
source "$(dirname "$0")/lib.sh"
export RFS_TEST_NOTIFY_DELAY_MS=5000
FO_PM_M2_OPTS="ping-timeout=2,attr_timeout=60,entry_timeout=60"
fo_pm_start

python3 - "$T/m1" <<'PY' || fail "writing the files through mount 1"
import os, sys
r = os.path.join(sys.argv[1], "up")
os.makedirs(r)
for n, c in (("target", b"T"), ("gone", b"G")):
    with open(os.path.join(r, n), "wb") as f:
        f.write(c * 3000)
PY
for n in target gone; do
    check "up/$n is the same on all bricks" same_on_bricks "up/$n"
    check "mount 2 reads up/$n" test "$(head -c 4 "$T/m2/up/$n")" = "$(head -c 4 "$T/m1/up/$n")"
done

fo_pm_cut
wait_for 10 count_ge 1 "$T/m1.log" "brick 2 .* is down" || fail "m1 did not see brick 2 go down"
python3 - "$T/m1/up" <<'PY' || fail "a change through mount 1 failed during the cut"
import os, sys
d = sys.argv[1]
with open(os.path.join(d, ".tmp-target"), "wb") as f:
    f.write(b"U" * 5000)
os.rename(os.path.join(d, ".tmp-target"), os.path.join(d, "target"))
os.unlink(os.path.join(d, "gone"))
PY
# At once, well inside mount 2's notifier delay.
rc=0
python3 - "$T/m2/up" >"$T/reads.out" 2>&1 <<'PY' || rc=$?
import os, sys
d = sys.argv[1]
bad = []
with open(os.path.join(d, "target"), "rb") as f:
    got = f.read()
if got != b"U" * 5000:
    bad.append("target: %d bytes starting %r, not the 5000 U acknowledged" % (len(got), got[:4]))
try:
    with open(os.path.join(d, "gone"), "rb") as f:
        bad.append("gone: opened after its unlink, %d bytes" % len(f.read()))
except FileNotFoundError:
    pass
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
cat "$T/reads.out" >&2
check "brick 2 still holds the replaced file's old bytes (it missed the rename)" \
    test "$(head -c 4 "$(brick_path 2 up/target)")" = TTTT
check "brick 2 still holds the unlinked file" test -e "$(brick_path 2 up/gone)"
[ "$rc" = 0 ] || fail "mount 2 read what mount 1 had replaced or removed"
check "m2 never lost brick 2" test "$(grep -c 'brick 2 .* is down' "$T/m2.log")" = 0
fo_pm_restore
wait_for 30 brick_seen_up m1 2 2 || fail "m1 did not reconnect to brick 2"
log PASS
