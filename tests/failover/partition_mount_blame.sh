#!/usr/bin/env bash
# A network partition of ONE mount from ONE brick, deterministic part:
# mount 1 cannot reach brick 2 (network namespaces and veth pairs, see
# fo_pm_start in lib.sh) while mount 2 reaches every brick.  During the cut,
# mount 1 creates, rewrites, appends to, truncates, renames over and
# unlinks files and makes a folder; mount 2 creates a file.  Quorum holds
# for both mounts, so:
#  - every change succeeds through both mounts, within a few ping timeouts;
#  - mount 1 sees brick 2 go down and come back, mount 2 never loses it;
#  - brick 2 misses exactly mount 1's changes, and bricks 1 and 3 blame it
#    (pending[2] > 0) on every object and folder it missed: heal will know;
#    mount 2's file is on all three bricks;
#  - after the link is back, mount 1 and a fresh mount read the
#    acknowledged bytes (not brick 2's stale copies) and list the folder
#    right.
# The workload version of this scenario is partition_mount.sh; mount 2
# reading what mount 1 replaced or removed during the cut is
# partition_gone_other_mount.sh.
source "$(dirname "$0")/lib.sh"
fo_pm_start

# Reference files, through mount 1 (on every brick).
python3 - "$T/m1" <<'PY' || fail "writing the reference files"
import os, sys
r = os.path.join(sys.argv[1], "up")
os.makedirs(r)
for n in ("rewrite", "append", "truncate", "unlink", "keep", "target"):
    with open(os.path.join(r, n), "wb") as f:
        f.write(n.encode() * 3000)
PY
for n in rewrite append truncate unlink keep target; do
    check "up/$n is the same on all bricks" same_on_bricks "up/$n"
done

fo_pm_cut
t0=$(date +%s)
wait_for 10 count_ge 1 "$T/m1.log" "brick 2 .* is down" || fail "m1 did not see brick 2 go down"
log "m1: $(grep -m 1 'brick 2 .* is down' "$T/m1.log" | cut -d' ' -f3-)"
python3 - "$T/m1/up" "$T/m2/up" <<'PY' || fail "a change failed during the cut"
import os, sys
m1, m2 = sys.argv[1], sys.argv[2]
def put(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    os.write(fd, data)
    os.close(fd)
put(os.path.join(m1, "new"), b"N" * 70000)
put(os.path.join(m1, "rewrite"), b"R" * 50000)
put(os.path.join(m1, "append"), b"A" * 9000, os.O_WRONLY | os.O_APPEND)
os.truncate(os.path.join(m1, "truncate"), 100)
os.unlink(os.path.join(m1, "unlink"))
put(os.path.join(m1, ".tmp-upload"), b"U" * 30000)
os.rename(os.path.join(m1, ".tmp-upload"), os.path.join(m1, "target"))
os.mkdir(os.path.join(m1, "dir"))
put(os.path.join(m1, "dir", "inner"), b"I" * 1000)
put(os.path.join(m2, "from-m2"), b"M" * 20000)
PY
t1=$(date +%s)
log "changes during the cut took $((t1 - t0)) s (ping timeout 2 s)"
check "changes during the cut took at most 15 s, not $((t1 - t0))" test $((t1 - t0)) -le 15
sleep 1
fo_pm_restore
wait_for 30 brick_seen_up m1 2 2 || fail "m1 did not reconnect to brick 2"
check "m2 never lost brick 2" test "$(grep -c 'brick 2 .* is down' "$T/m2.log")" = 0

# What each name must hold (python: name -> bytes, None = absent).
want_py='
want = {"new": b"N" * 70000, "rewrite": b"R" * 50000,
        "append": b"append" * 3000 + b"A" * 9000, "truncate": b"truncate" * 3000,
        "unlink": None, "keep": b"keep" * 3000, "target": b"U" * 30000,
        ".tmp-upload": None, "dir/inner": b"I" * 1000, "from-m2": b"M" * 20000}
want["truncate"] = want["truncate"][:100]
'
# check_tree DIR: DIR/up holds exactly `want` (names and bytes).
check_tree() {
    python3 - "$1/up" "$want_py" <<'PY'
import os, sys
root = sys.argv[1]
exec(sys.argv[2])
bad = []
for rel, data in want.items():
    p = os.path.join(root, rel)
    if data is None:
        if os.path.lexists(p):
            bad.append("%s: present, should be gone" % rel)
        continue
    try:
        with open(p, "rb") as f:
            got = f.read()
    except OSError as e:
        bad.append("%s: %s" % (rel, e.strerror))
        continue
    if got != data:
        bad.append("%s: %d bytes, not the %d acknowledged" % (rel, len(got), len(data)))
names = set(os.listdir(root))
if names != {"new", "rewrite", "append", "truncate", "keep", "target", "dir", "from-m2"}:
    bad.append("listing: %s" % sorted(names))
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
}
for b in 1 3; do
    check_tree "$T/brick$b" >"$T/tree.out" 2>&1 ||
        { cat "$T/tree.out" >&2; fail "brick $b does not hold every acknowledged change"; }
done

differ() { ! cmp -s "$1" "$2"; }
log "brick 2 must miss mount 1's changes, and be blamed for them"
for n in new dir dir/inner; do
    check "up/$n is not on brick 2" test ! -e "$(brick_path 2 "up/$n")"
done
check "up/unlink is still on brick 2 (missed the unlink)" test -e "$(brick_path 2 up/unlink)"
check "up/from-m2 is on brick 2 (m2 reaches it)" \
    cmp -s "$(brick_path 1 up/from-m2)" "$(brick_path 2 up/from-m2)"
check "up/keep is untouched on brick 2" cmp -s "$(brick_path 1 up/keep)" "$(brick_path 2 up/keep)"
for n in rewrite append truncate target; do
    check "up/$n differs on brick 2 (it missed the change)" \
        differ "$(brick_path 1 "up/$n")" "$(brick_path 2 "up/$n")"
done
for b in 1 3; do
    for n in up up/new up/rewrite up/append up/truncate up/target up/dir up/dir/inner; do
        check "brick $b blames brick 2 on $n (pending[2] = $(brick_pending_for "$(brick_path "$b" "$n")" 2))" \
            test "$(brick_pending_for "$(brick_path "$b" "$n")" 2)" -gt 0
    done
    check "brick $b does not blame brick 2 on up/keep" \
        test "$(brick_pending_for "$(brick_path "$b" up/keep)" 2)" = 0
done
for b in 1 2 3; do
    for n in up/from-m2 up/keep; do
        check "brick $b blames nobody on $n" test "$(brick_pending_sum "$(brick_path "$b" "$n")")" = 0
    done
done
fo_blame_check 2 1 >"$T/blame.out" 2>&1 || { cat "$T/blame.out" >&2; fail "brick 2 differs without pending markers"; }
cat "$T/blame.out" >&2

log "read back through m1 and a fresh mount, brick 2 up again"
mount_volume m3 "ping-timeout=2"
for m in m1 m3; do
    for n in 1 2 3; do
        check_tree "$T/$m" >"$T/tree.out" 2>&1 ||
            { cat "$T/tree.out" >&2; fail "read $n through $m does not give the acknowledged state"; }
    done
done
check "m2 reads m1's new file" cmp -s "$(brick_path 1 up/new)" "$T/m2/up/new"
log PASS
