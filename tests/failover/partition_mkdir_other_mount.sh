#!/usr/bin/env bash
# Regression test (found by partition_mount.sh): a folder made through
# mount 1 while it was cut from brick 2 exists on bricks 1 and 3 (a
# quorum), and both blame brick 2 on the parent.  Mount 2, which reaches
# every brick and had listed the parent before, must see the folder and
# use it: with prefer-brick=2 it must not take brick 2's word that the name
# is absent (ENOENT), nor make a second folder of another id on brick 2
# alone, nor fail creates in it with EROFS.
source "$(dirname "$0")/lib.sh"
FO_PM_M2_OPTS="ping-timeout=2,prefer-brick=2"
fo_pm_start
mkdir "$T/m1/up" || fail "mkdir up"
ls "$T/m2/up" >/dev/null || fail "ls up through m2"
fo_pm_cut
wait_for 10 count_ge 1 "$T/m1.log" "brick 2 .* is down" || fail "m1 did not see brick 2 go down"
mkdir "$T/m1/up/d" || fail "mkdir up/d through m1 during the cut"
echo hello >"$T/m1/up/d/f" || fail "create up/d/f through m1 during the cut"
fo_pm_restore
wait_for 30 brick_seen_up m1 2 2 || fail "m1 did not reconnect to brick 2"
log "brick 1 blames brick 2 on up: pending[2] = $(brick_pending_for "$(brick_path 1 up)" 2)"
check "up/d is not on brick 2" test ! -e "$(brick_path 2 up/d)"
st=$(stat -c %F "$T/m2/up/d" 2>&1) || true
log "stat up/d through m2: $st"
out=$(python3 - "$T/m2/up" <<'PY' 2>&1
import errno, os, sys
r = sys.argv[1]
def code(f):
    try:
        f(); return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
print("mkdir=" + code(lambda: os.mkdir(os.path.join(r, "d"))))
def create():
    with open(os.path.join(r, "d", "g"), "w") as f:
        f.write("from m2\n")
print("create=" + code(create))
PY
)
log "through m2: $(echo $out)"
ids=$(for i in 1 2 3; do [ -e "$(brick_path "$i" up/d)" ] && brick_id "$(brick_path "$i" up/d)"; done | sort -u | wc -l)
log "distinct ids of up/d on the bricks: $ids"
check "m2 sees up/d as a directory (got: $st)" test "$st" = directory
check "mkdir up/d through m2 gives EEXIST ($out)" grep -q "mkdir=EEXIST" <<<"$out"
check "creating up/d/g through m2 works ($out)" grep -q "create=ok" <<<"$out"
check "up/d has one id on every brick that has it (not $ids)" test "$ids" = 1
check "up/d/f reads back through m2" test "$(cat "$T/m2/up/d/f")" = hello
log PASS
