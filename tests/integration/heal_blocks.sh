#!/usr/bin/env bash
# Data heal sends only the blocks that differ: a 16 MiB file, of which
# brick 3 missed a 4 KiB overwrite in the middle and a 100-byte append,
# heals with at most a few 64 KiB blocks on the wire (heal --json "bytes"),
# and ends byte-identical on every brick.  A truncate it missed heals too.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
head -c $((16 << 20)) /dev/urandom >"$A/big.bin"
head -c $((4 << 20)) /dev/urandom >"$A/cut.bin"
sync

log "brick 3 misses a small overwrite, an append and a truncate"
brick_kill 3 KILL
sleep 0.5
dd if=/dev/urandom of="$A/big.bin" bs=4096 count=1 seek=1000 conv=notrunc 2>/dev/null
head -c 100 /dev/urandom >>"$A/big.bin"
truncate -s 1000000 "$A/cut.bin"
sync
brick_start 3
sleep 1

set +e
"$RFS" heal --volume "$VOL" --json >"$T/heal.json" 2>&1
rc=$?
set -e
cat "$T/heal.json" >&2
check "heal exits 0 (rc $rc)" test "$rc" = 0
sent=$(python3 -c "import json; print(json.load(open('$T/heal.json'))['bytes'])")
same=$(python3 -c "import json; print(json.load(open('$T/heal.json'))['bytes_same'])")
check "only differing blocks sent ($sent bytes)" test "$sent" -le $((4 * 65536))
check "the rest found equal ($same bytes)" test "$same" -ge $(((16 << 20) + 500000))
check "bricks equal" sh -c "$HC same '$T' 3 >'$T/same.out' || { cat '$T/same.out' >&2; false; }"
check "markers clear" $HC clean "$T" 3
check "truncated on brick 3" test "$(stat -c %s "$(brick_path 3 cut.bin)")" = 1000000
log "PASS"
