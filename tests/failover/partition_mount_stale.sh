#!/usr/bin/env bash
# The staleness bound (docs/performance.md, finding 1): a mount cut off
# from every brick may go on showing what it knew for at most the ping
# timeout.  Mount 1 (ping-timeout=2, kernel timeouts 0.2 s) answers its
# kernel's repeated LOOKUPs from its own name cache (fuse/ops.c invariant
# 7); it is cut from all bricks, and mount 2 then changes and removes the
# files.  From 2 s (plus slack) after the cut, mount 1 must never again
# show the old state: an error is fine, the old mode or a removed name is
# not.
source "$(dirname "$0")/lib.sh"
FO_PM_M1_OPTS="ping-timeout=2,attr_timeout=0.2,entry_timeout=0.2"
fo_pm_start

python3 - "$T/m2" <<'PY' || fail "writing the files through mount 2"
import os, sys
os.makedirs(os.path.join(sys.argv[1], "up"))
for i in range(10):
    with open(os.path.join(sys.argv[1], f"up/f{i}"), "wb") as f:
        f.write(b"x" * 100)
PY
# Mount 2's windows end (their post-ops reach mount 1 as INVALs, which
# drop what mount 1 knows of the files); then mount 1 learns the names and
# answers them itself.
sleep 2
# (By name, not by a glob: names a listing gave are not in the cache.)
for _ in 1 2 3; do
    for i in 0 1 2 3 4 5 6 7 8 9; do
        stat "$T/m1/up/f$i" >/dev/null || fail "mount 1 stat before the cut"
    done
    sleep 0.3
done

log "cut mount 1 from every brick"
cut_at=$(date +%s.%N)
pm_in_m ip link set "$PM_VRM1" down
fo_pm_cut
# Poll mount 1 for 5 s from the cut on; note when it last showed the old
# state (mode 644, f7 present).
python3 - "$T/m1/up" "$cut_at" >"$T/poll.out" 2>&1 <<'PY' &
import os, stat, sys, time
d, cut = sys.argv[1], float(sys.argv[2])
first_old = last_old = None
while time.time() < cut + 5:
    for i in (0, 7):
        t = time.time()
        try:
            st = os.stat(os.path.join(d, f"f{i}"))
            old = (i == 0 and stat.S_IMODE(st.st_mode) == 0o644) or i == 7
        except OSError as e:
            old = False
            st = e
        if os.environ.get("POLL_DEBUG"):
            print("%.2f f%d %s" % (t - cut, i, st if isinstance(st, OSError) else oct(st.st_mode)))
        if old:
            last_old = t - cut
            if first_old is None:
                first_old = t - cut
    time.sleep(0.05)
print("first old state %s s after the cut" %
      ("never" if first_old is None else "%.2f" % first_old))
print("last old state %s s after the cut" %
      ("never" if last_old is None else "%.2f" % last_old))
PY
poller=$!
OTHER_PIDS+=("$poller")
chmod 600 "$T"/m2/up/f[0-4] || fail "chmod through mount 2"
rm "$T"/m2/up/f[5-9] || fail "rm through mount 2"
wait "$poller" || fail "polling mount 1"
cat "$T/poll.out" >&2
first=$(sed -n 's/^first old state \([0-9.]*\) s.*/\1/p' "$T/poll.out")
last=$(sed -n 's/^last old state \([0-9.]*\) s.*/\1/p' "$T/poll.out")
# It did answer from what it knew (else this test would prove nothing)...
[ -n "$first" ] || fail "mount 1 never answered from its cache after the cut"
# ...and stopped within the ping timeout.
python3 -c "import sys; sys.exit(0 if float('$last') <= 2.5 else 1)" ||
    fail "mount 1 showed the old state ${last} s after the cut (ping timeout 2 s)"

log "restore: mount 1 sees the new state"
pm_in_m ip link set "$PM_VRM1" up
pm_in_m ip route replace "$PM_NET.1.0/30" dev "$PM_VRM1" 2>/dev/null || true
fo_pm_restore
for i in 1 2 3; do
    wait_for 30 brick_seen_up m1 "$i" 2 || fail "mount 1 did not see brick $i again"
done
wait_for 10 bash -c "[ \$(stat -c %a '$T/m1/up/f0') = 600 ] && ! [ -e '$T/m1/up/f7' ]" ||
    fail "mount 1 after the cut: f0 mode $(stat -c %a "$T/m1/up/f0" 2>&1), f7 $(ls "$T/m1/up/f7" 2>&1)"
log PASS
