#!/usr/bin/env bash
# heal --full: when the heal indices cannot be trusted (here: emptied by
# hand), the crawl from the root still finds every object whose markers
# blame a brick and heals it.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir -p "$A/x/y"
echo before >"$A/x/y/old.txt"
sync

log "brick 3 misses changes; then the indices of bricks 1 and 2 are lost"
brick_kill 3 KILL
sleep 0.5
mkdir -p "$A/x/y/z"
for i in $(seq 20); do head -c $((i * 3000)) /dev/urandom >"$A/x/y/z/f$i"; done
echo after >"$A/x/y/old.txt"
rm -r "$A/x/y/z/f7"
sync
sleep 0.5
brick_start 3
for i in 1 2; do rm -f "$T/brick$i/.replicafs/heal/"*; done

log "an index heal sees nothing; the bricks still differ"
"$RFS" heal --volume "$VOL" >"$T/heal0.out" 2>&1 || true
$HC same "$T" 3 >/dev/null && fail "bricks equal without a heal?"

log "heal --full"
set +e
"$RFS" heal --full --volume "$VOL" >"$T/heal.out" 2>&1
rc=$?
set -e
cat "$T/heal.out" >&2
check "heal --full exits 0 (rc $rc)" test "$rc" = 0
check "bricks equal" sh -c "$HC same '$T' 3 >'$T/same.out' || { cat '$T/same.out' >&2; false; }"
check "markers clear" $HC clean "$T" 3
check "f7 stays deleted" test ! -e "$(brick_path 3 x/y/z/f7)"
log "PASS"
