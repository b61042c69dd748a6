#!/usr/bin/env bash
# Eager locking and delayed post-op: a stream of writes to one open file
# takes the inode lock and marks dirty a few times, not once per write (the
# bricks' request counters say so); the post-op runs on close, and after a
# short idle time on a file that is still open.
source "$(dirname "$0")/lib.sh"

volume_create
bricks_start_metrics
mount_volume mA
A=$T/mA

dirty_of() { # dirty counter (hex, 8 bytes LE) of a brick object, as a number
    python3 - "$1" <<'PY'
import os, struct, sys
try:
    print(struct.unpack("<q", os.getxattr(sys.argv[1], "trusted.rfs.dirty"))[0])
except OSError:
    print(0)
PY
}

: >"$A/stream.bin"
sleep 0.5
for i in 1 2 3; do
    w0[$i]=$(brick_ops "$i" write) l0[$i]=$(brick_ops "$i" inodelk)
    x0[$i]=$(brick_ops "$i" xattrop)
done
log "400 writes of 64 KiB through one descriptor"
dd if=/dev/urandom of="$A/stream.bin" bs=64k count=400 conv=notrunc status=none
for i in 1 2 3; do
    w=$(($(brick_ops "$i" write) - w0[$i]))
    l=$(($(brick_ops "$i" inodelk) - l0[$i]))
    x=$(($(brick_ops "$i" xattrop) - x0[$i]))
    log "brick $i: $w writes, $l inodelk (lock+unlock), $x xattrop"
    check "brick $i saw $w writes" test "$w" -ge 400
    check "brick $i: a lock per write ($l for $w)" test $((l * 4)) -lt "$w"
    check "brick $i: a post-op per write ($x for $w)" test $((x * 4)) -lt "$w"
    check "brick $i: dirty left after close" test "$(dirty_of "$(brick_path "$i" stream.bin)")" = 0
done
check "replicas identical" same_on_bricks stream.bin

log "a file kept open: the post-op runs after a short idle time"
python3 - "$A/held.bin" "$T" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"x" * 100000)
open(os.path.join(sys.argv[2], "written"), "w").close()
while not os.path.exists(os.path.join(sys.argv[2], "release")):
    time.sleep(0.05)
os.close(fd)
PY
H=$!
OTHER_PIDS+=("$H")
wait_for 30 test -e "$T/written" || fail "the holder did not write"
clean() {
    local i
    for i in 1 2 3; do
        [ "$(dirty_of "$(brick_path "$i" held.bin)")" = 0 ] || return 1
    done
}
wait_for 30 clean || fail "dirty still set on an idle open file"
touch "$T/release"
wait "$H" || fail "the holder failed"
log "PASS"
