#!/usr/bin/env bash
# Two of three bricks down (kill -9), deterministic part: every kind of
# change through either mount is refused with EROFS, files written before
# are read back intact from the survivor, and once the bricks return the
# mounts accept writes again and nothing written before is lost.  (The same
# under the random workload is known_bugs/two_down.sh.)
source "$(dirname "$0")/lib.sh"
fo_start
python3 - "$T/m1" <<'PY' || fail "writing the reference files"
import hashlib, os, sys
root = sys.argv[1]
os.makedirs(os.path.join(root, "up/aa"), exist_ok=True)
for i in range(20):
    data = hashlib.sha256(b"%d" % i).digest() * (i * 300 + 1)
    with open(os.path.join(root, "up/aa/f%d" % i), "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
PY
sum_tree() { (cd "$1/up" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
sum_tree "$T/m1" >"$T/ref.sum"
check "20 reference files" test "$(wc -l <"$T/ref.sum")" = 20
check "m2 sees the same files" diff <(sum_tree "$T/m2") "$T/ref.sum"

log "kill -9 bricks 1 and 3"
brick_kill 1 KILL
brick_kill 3 KILL
wait_for 30 count_ge 1 "$T/m1.log" "brick 3 .* is down" || fail "m1 did not see brick 3 down"
for m in m1 m2; do
    out=$(python3 - "$T/$m" <<'PY' 2>&1
import errno, os, sys
r = sys.argv[1]
def code(f):
    try:
        f(); return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def create():
    fd = os.open(os.path.join(r, "up/new"), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
def overwrite():
    with open(os.path.join(r, "up/aa/f1"), "r+b") as f:
        f.write(b"y")
res = [code(create), code(lambda: os.mkdir(os.path.join(r, "up/d"))),
       code(lambda: os.unlink(os.path.join(r, "up/aa/f2"))),
       code(lambda: os.rename(os.path.join(r, "up/aa/f3"), os.path.join(r, "up/aa/g3"))),
       code(lambda: os.truncate(os.path.join(r, "up/aa/f4"), 1)),
       code(overwrite)]
print(" ".join(res))
PY
)
    log "$m without quorum: create mkdir unlink rename truncate overwrite -> $out"
    check "every change through $m refused with EROFS (got: $out)" \
        test "$out" = "EROFS EROFS EROFS EROFS EROFS EROFS"
    check "reads through $m served, intact" diff <(sum_tree "$T/$m") "$T/ref.sum"
done

log "bricks 1 and 3 back"
brick_start 1
brick_start 3
wait_for 30 brick_seen_up m1 3 2 || fail "m1 did not see brick 3 again"
wait_for 30 brick_seen_up m2 3 2 || fail "m2 did not see brick 3 again"
wait_for 30 brick_seen_up m1 1 2 || fail "m1 did not see brick 1 again"
wait_for 30 brick_seen_up m2 1 2 || fail "m2 did not see brick 1 again"
wait_for 30 bash -c "echo ok >'$T/m1/up/after'" 2>/dev/null || fail "m1 refuses writes with quorum back"
check "m2 reads the new file" wait_for 10 grep -q ok "$T/m2/up/after"
rm -f "$T/m1/up/after"
for m in m1 m2; do
    check "nothing lost through $m" diff <(sum_tree "$T/$m") "$T/ref.sum"
done
if heal_built; then
    "$RFS_BIN_DIR/replicafs" heal --wait --volume "$VOL" >"$T/heal.log" 2>&1 || fail "heal failed"
    for i in 1 2 3; do
        check "brick $i equals the mount" diff <(cd "$T/brick$i/up" && find . -type f -print0 | sort -z | xargs -0 sha256sum) "$T/ref.sum"
    done
else
    log "SKIP replica check: replicafs heal not built"
fi
log PASS
