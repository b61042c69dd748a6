#!/usr/bin/env bash
# Regression test (found by full_disk.sh): a brick that is up but blamed by
# a change made through ANOTHER mount must not be read from.  Deterministic:
# brick 1 on a tiny tmpfs, both mounts prefer brick 1 for reads.  m2 looks
# f up while all is well (so it caches f's markers: nobody blamed); brick 1
# fills; f is rewritten through m1, brick 1 answers ENOSPC, bricks 2 and 3
# get pending[1] = 1 and the rewrite is acknowledged.  All bricks stay up
# (no epoch change).  A read of f through m2 must give the new bytes (rule 3:
# close() on web1, then open() on web2 sees them), not brick 1's stale copy.
source "$(dirname "$0")/lib.sh"
DISK=$T/disk1
fo_disk_cleanup() {
    local rc=$?
    set +e
    if [ -n "${BRICK_PID[1]:-}" ]; then
        kill "${BRICK_PID[1]}" 2>/dev/null
        wait "${BRICK_PID[1]}" 2>/dev/null
        BRICK_PID[1]=
    fi
    if mountpoint -q "$DISK" 2>/dev/null; then
        umount "$DISK" 2>/dev/null || umount -l "$DISK"
    fi
    (exit "$rc")
    rfs_cleanup
}
trap fo_disk_cleanup EXIT

mkdir -p "$DISK"
mount -t tmpfs -o size=8m,mode=0755 rfs-fo-disk "$DISK" || fail "mount tmpfs"
mkdir "$DISK/brick"
ln -s "$DISK/brick" "$T/brick1"
volume_create
for i in 1 2 3; do brick_start "$i" --init; done
mount_volume m1 "ping-timeout=2,prefer-brick=1"
mount_volume m2 "ping-timeout=2,prefer-brick=1"

head -c 1000 /dev/urandom >"$T/old"
head -c 200000 /dev/urandom >"$T/new"
cp "$T/old" "$T/m1/f" || fail "write f"
check "m2 reads f before the fault" cmp -s "$T/old" "$T/m2/f"
dd if=/dev/zero of="$DISK/ballast" bs=64k status=none 2>/dev/null || true
log "brick 1 full: $(df -k --output=avail "$DISK" | tail -n 1) KiB free"
cat "$T/new" >"$T/m1/f" || fail "the rewrite failed with a quorum of bricks with space"
for i in 1 2 3; do
    log "brick $i: size $(stat -L -c %s "$(brick_path "$i" f)"), pending $(brick_xattr "$(brick_path "$i" f)" trusted.rfs.pending)"
done
check "brick 2 blames brick 1" test "$(brick_pending_for "$(brick_path 2 f)" 1)" -gt 0
check "brick 3 blames brick 1" test "$(brick_pending_for "$(brick_path 3 f)" 1)" -gt 0
check "brick 1 has the stale copy (else this test proves nothing)" \
    test "$(stat -L -c %s "$(brick_path 1 f)")" != 200000
check "m1 (which saw brick 1 fail) reads the new bytes" cmp -s "$T/new" "$T/m1/f"
mount_volume m3 "ping-timeout=2,prefer-brick=1"
check "a fresh mount m3 reads the new bytes" cmp -s "$T/new" "$T/m3/f"
# Read through m2 at once (rule 3), and again after 2 s (past any kernel
# attribute cache): tell which copy it served.
served() {
    if cmp -s "$T/new" "$1"; then echo "the new bytes"
    elif cmp -s "$(brick_path 1 f)" "$1"; then echo "brick 1's stale copy"
    elif cmp -s "$T/old" "$1"; then echo "the old bytes"
    else echo "other bytes"; fi
}
now=$(served "$T/m2/f") size_now=$(stat -c %s "$T/m2/f")
sleep 2
later=$(served "$T/m2/f") size_later=$(stat -c %s "$T/m2/f")
log "m2 read at once: $now (size $size_now); 2 s later: $later (size $size_later)"
check "m2 reads the new bytes at once, not $now" test "$now" = "the new bytes"
check "m2 reads the new bytes 2 s later, not $later" test "$later" = "the new bytes"
log PASS
