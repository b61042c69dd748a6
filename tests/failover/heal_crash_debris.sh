#!/usr/bin/env bash
# Regression test (found by kill_during_heal.sh, 2 runs of 9): kill -9 of a
# brick during heal can leave, on that brick, a folder made by mkdirat whose
# trusted.rfs.id was never set (the daemon died between the two steps of
# MKDIR; src/daemon/ops_create.c invariant 1 calls such a name "invisible
# to clients").  Seen: brick2/resize_cache/shared/2b, empty, no xattr at
# all, while bricks 1 and 3 have 2b (id c834...) with a file in it; heal
# then failed on every pass ("left: 47 pending, 49 failed" after 60 s of
# --wait) and never created 2b's siblings 2c..3f either.  Here the debris
# is made by hand, deterministically: with brick 2 down, up/d and up/d/f are
# made through m1; an empty id-less up/d is put on brick 2; brick 2 comes
# back.  `replicafs heal --wait` must succeed and leave every brick equal.
# Second case (found by kill_brick.sh, 1 run of 9): a file the dead brick
# had made but not yet given its id, under a name nobody makes again (an
# upload's .tmp-*), stayed on that brick for ever after heal, invisible
# (readdir skips it) and so never removed.  Here up/.tmp-debris is put on
# brick 2 by hand; heal (holding up's entry lock) must remove it.
# Third case (found by the soak, two_down: 1 cycle in 24): a folder left
# dirty by a change cut off by the crash, blamed on nobody, whose copies
# agree once the id-less debris is left out of the listings; heal cleared
# dirty and left the debris (an empty folder on the two killed bricks) for
# ever.  Here up/v is marked dirty on brick 2 by hand, with debris up/v/x
# in it; heal's vote on up/v (holding its entry lock) must sweep it.
source "$(dirname "$0")/lib.sh"
heal_built || fail "replicafs heal is not built"
fo_start
mkdir "$T/m1/up" "$T/m1/up/v" || fail "mkdir up up/v"
echo one >"$T/m1/up/keep" || fail "write up/keep"
echo two >"$T/m1/up/v/keep" || fail "write up/v/keep"
brick_kill 2 KILL
wait_for 30 count_ge 1 "$T/m1.log" "brick 2 .* is down" || fail "m1 did not see brick 2 down"
mkdir "$T/m1/up/d" "$T/m1/up/e" || fail "mkdir up/d up/e with brick 2 down"
echo hello >"$T/m1/up/d/f" || fail "write up/d/f"
echo world >"$T/m1/up/e/g" || fail "write up/e/g"
mkdir "$T/brick2/up/d"  # the crash debris: a name without trusted.rfs.id
echo partial >"$T/brick2/up/.tmp-debris" # same, a file
mkdir "$T/brick2/up/v/x" # debris in a folder the crash left dirty:
vhex=$(brick_id "$(brick_path 2 up/v)" | python3 -c '
import sys; b = bytes.fromhex(sys.stdin.read().strip())  # hi, lo: u64 LE
print("%016x%016x" % (int.from_bytes(b[:8], "little"), int.from_bytes(b[8:], "little")))')
setfattr -n trusted.rfs.dirty -v 0x0100000000000000 "$T/brick2/up/v" || fail "mark up/v dirty"
touch "$T/brick2/.replicafs/heal/$vhex" # and indexed, as the brick does
sleep 0.1 # debris is what an earlier run made (the brick sweeps names
          # without an id older than its start, less 20 ms)
brick_start 2
wait_for 30 brick_seen_up m1 2 2 || fail "m1 did not see brick 2 again"
rc=0
"$RFS_BIN_DIR/replicafs" heal --wait --timeout 15 --volume "$VOL" >"$T/heal.log" 2>&1 || rc=$?
log "heal exit $rc: $(tr '\n' ' ' <"$T/heal.log")"
"$RFS_BIN_DIR/replicafs" heal --list --volume "$VOL" 2>&1 | grep -v " stale " | head -n 8 >&2 || true
check "up/e/g healed onto brick 2" cmp -s "$(brick_path 1 up/e/g)" "$(brick_path 2 up/e/g)"
check "up/d/f healed onto brick 2 (over the id-less debris up/d)" \
    cmp -s "$(brick_path 1 up/d/f)" "$(brick_path 2 up/d/f)"
check "up/d has its id on brick 2" test "$(brick_id "$(brick_path 2 up/d)")" = "$(brick_id "$(brick_path 1 up/d)")"
check "heal --wait succeeds (exit $rc)" test "$rc" = 0
check "the id-less up/.tmp-debris is gone from brick 2" \
    test ! -e "$(brick_path 2 up/.tmp-debris)"
check "the id-less up/v/x is gone from brick 2 (dirty folder, nobody blamed)" \
    test ! -e "$(brick_path 2 up/v/x)"
vdirty=$(brick_xattr "$(brick_path 2 up/v)" trusted.rfs.dirty)
check "up/v is clean on brick 2 (dirty ${vdirty:-none})" test "${vdirty:-0000000000000000}" = 0000000000000000
check "brick 2 logged the removal" grep -q "names left by a crash (no id, or an id that leads nowhere) in directory" "$T/brick2.log"
check "up/d/f reads back through m2" test "$(cat "$T/m2/up/d/f")" = hello
log PASS
