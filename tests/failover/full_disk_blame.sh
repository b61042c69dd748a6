#!/usr/bin/env bash
# A full disk on one brick, deterministic part: brick 1 on a small tmpfs
# (16 MiB, a ballast file beside the brick leaves it 1 MiB), bricks 2 and
# 3 on the normal disk.  Files of 256 KiB are written through both mounts
# until brick 1 is full, and well past it; then one is appended to,
# another rewritten, a third truncated longer.  A quorum (bricks 2 and 3)
# still has space, so:
#  - no write, close or fsync fails (rule 2; ENOSPC must not reach the
#    application);
#  - every file brick 1 could not take is blamed on it: pending[1] > 0 on
#    bricks 2 and 3 (fo_blame_check: no silent divergence), and some are;
#  - every file reads back with the acknowledged bytes through the mount
#    that wrote it, through the other mount (for files it never read
#    before) and through a fresh mount.
# Then the tmpfs grows (mount -o remount,size=): new files written through
# both mounts land complete on brick 1 and nobody blames it for them.  The
# workload version of this scenario is known_bugs/full_disk.sh.
source "$(dirname "$0")/lib.sh"
fo_disk_start 16 1024

# write_files MOUNT_A MOUNT_B PREFIX N: N files of 256 KiB, alternately
# through each mount, each closed after an fsync on every other one; any
# error fails.  Their bytes are sha256-derived from the name.
write_files() {
    python3 - "$@" <<'PY'
import hashlib, os, sys
ma, mb, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for i in range(n):
    m = (ma, mb)[i % 2]
    name = "%s%02d" % (prefix, i)
    data = hashlib.sha256(name.encode()).digest() * 8192
    fd = os.open(os.path.join(m, "up", name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    for off in range(0, len(data), 65536):
        os.write(fd, data[off:off + 65536])
    if i % 2:
        os.fsync(fd)
    os.close(fd)
PY
}
# expect_files DIR PREFIX N [EXTRA]: the files read back right through DIR
# (EXTRA: python that adjusts want{} for the changed files).
expect_files() {
    python3 - "$@" <<'PY'
import hashlib, os, sys
d, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = {}
for i in range(n):
    name = "%s%02d" % (prefix, i)
    want[name] = hashlib.sha256(name.encode()).digest() * 8192
if len(sys.argv) > 4:
    exec(sys.argv[4])
bad = 0
for name, data in sorted(want.items()):
    try:
        with open(os.path.join(d, "up", name), "rb") as f:
            got = f.read()
    except OSError as e:
        print("  %s: %s" % (name, e.strerror)); bad += 1; continue
    if got != data:
        print("  %s: %d bytes, not the %d acknowledged" % (name, len(got), len(data))); bad += 1
sys.exit(1 if bad else 0)
PY
}
changes='
want["a01"] = want["a01"] + b"appended" * 4096
want["a02"] = b"rewritten" * 20000
want["a03"] = want["a03"] + bytes(100000)
'

mkdir "$T/m1/up" || fail "mkdir up"
log "write 12 files of 256 KiB through both mounts ($(fo_disk_avail) KiB free on brick 1)"
write_files "$T/m1" "$T/m2" a 12 2>"$T/write.err" ||
    fail "writing with brick 1 full failed: $(tail -n 1 "$T/write.err")"
check "brick 1 is full ($(fo_disk_avail) KiB free)" fo_disk_full
python3 - "$T/m1/up" "$T/m2/up" <<'PY' 2>"$T/write.err" || fail "changes with brick 1 full failed: $(tail -n 1 "$T/write.err")"
import os, sys
m1, m2 = sys.argv[1], sys.argv[2]
fd = os.open(os.path.join(m2, "a01"), os.O_WRONLY | os.O_APPEND)
os.write(fd, b"appended" * 4096); os.fsync(fd); os.close(fd)
fd = os.open(os.path.join(m1, "a02"), os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"rewritten" * 20000); os.close(fd)
os.truncate(os.path.join(m2, "a03"), 262144 + 100000)
PY
grep -h "No space left\|ENOSPC" "$T/m1.log" "$T/m2.log" | head -n 2 >&2 || true

for b in 2 3; do
    expect_files "$T/brick$b" a 12 "$changes" >"$T/files.out" 2>&1 ||
        { cat "$T/files.out" >&2; fail "brick $b does not hold every acknowledged write"; }
done
short=0
for i in $(seq -w 0 11); do
    cmp -s "$(brick_path 1 "up/a$i")" "$(brick_path 2 "up/a$i")" && continue
    short=$((short + 1))
    for b in 2 3; do
        check "brick $b blames brick 1 on up/a$i (pending[1] = $(brick_pending_for "$(brick_path "$b" "up/a$i")" 1))" \
            test "$(brick_pending_for "$(brick_path "$b" "up/a$i")" 1)" -gt 0
    done
done
log "$short of 12 files differ on brick 1"
check "brick 1 missed some writes (else the disk was not full)" test "$short" -gt 0
fo_blame_check 1 2 >"$T/blame.out" 2>&1 || { cat "$T/blame.out" >&2; fail "brick 1 differs without pending markers"; }
cat "$T/blame.out" >&2

log "read back through m1, m2 and a fresh mount"
mount_volume m3 "ping-timeout=2"
for m in m1 m2 m3; do
    expect_files "$T/$m" a 12 "$changes" >"$T/files.out" 2>&1 ||
        { cat "$T/files.out" >&2; fail "reading through $m does not give the acknowledged bytes"; }
done

log "grow brick 1's tmpfs"
mount -o remount,size=64m "$FD_DISK" || fail "remount tmpfs"
log "brick 1 now has $(fo_disk_avail) KiB free"
write_files "$T/m2" "$T/m1" b 6 2>"$T/write.err" ||
    fail "writing after the tmpfs grew failed: $(tail -n 1 "$T/write.err")"
for b in 1 2 3; do
    expect_files "$T/brick$b" b 6 >"$T/files.out" 2>&1 ||
        { cat "$T/files.out" >&2; fail "brick $b does not hold the files written after the tmpfs grew"; }
    for i in $(seq -w 0 5); do
        check "brick $b blames nobody on up/b$i" test "$(brick_pending_sum "$(brick_path "$b" "up/b$i")")" = 0
    done
done
for m in m1 m2 m3; do
    expect_files "$T/$m" b 6 >"$T/files.out" 2>&1 ||
        { cat "$T/files.out" >&2; fail "reading the new files through $m"; }
done
log PASS
