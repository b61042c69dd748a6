#!/usr/bin/env bash
# Heal while the portal writes: brick 3 misses a tree of files; it comes
# back and `replicafs heal --wait` runs while a writer on a mount appends,
# creates, renames and deletes files in the same directories (some of the
# very files being healed).  Heal takes the clients' locks, so nothing is
# lost either way: once the writer stops and a last heal ran, the three
# bricks are equal, every file holds what the writer last wrote, and no
# marker is left.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"
NFILES=${NFILES:-300}

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir -p "$A/w/a" "$A/w/b"
sync

log "brick 3 down; $NFILES files written"
brick_kill 3 KILL
sleep 0.5
for ((i = 0; i < NFILES; i++)); do
    d=$([ $((i % 2)) = 0 ] && echo a || echo b)
    head -c $((4096 + (i * 7919) % 200000)) /dev/urandom >"$A/w/$d/f$i"
done
for i in 0 1 2 3 4 5 6 7 8 9; do echo "start $i" >"$A/w/a/log$i"; done
sync
brick_start 3

log "a writer runs while heal --wait heals"
(
    set +e
    for ((n = 0; n < 400; n++)); do
        i=$((n % 10))
        echo "line $n" >>"$A/w/a/log$i"
        echo "new $n" >"$A/w/b/new$n"
        [ $((n % 3)) = 0 ] && mv "$A/w/b/new$n" "$A/w/a/moved$n"
        [ $((n % 5)) = 0 ] && rm -f "$A/w/b/f$((2 * n + 1))"
        dd if=/dev/urandom of="$A/w/a/f$((2 * (n % 50)))" bs=1024 count=4 \
            seek=$((n % 8)) conv=notrunc 2>/dev/null
    done
    echo done >"$T/writer.done"
) >"$T/writer.log" 2>&1 &
W=$!
OTHER_PIDS+=("$W")
set +e
"$RFS" heal --volume "$VOL" --wait --timeout 120 >"$T/heal1.out" 2>&1
rc=$?
set -e
cat "$T/heal1.out" >&2
wait "$W" || true
check "writer finished: $(cat "$T/writer.log")" test -e "$T/writer.done"
check "heal --wait while writing exits 0 (rc $rc)" test "$rc" = 0

log "writer stopped: a last heal, then everything must match"
sleep 1 # the mount's delayed post-op
set +e
"$RFS" heal --volume "$VOL" --wait --timeout 60 >"$T/heal2.out" 2>&1
rc=$?
set -e
cat "$T/heal2.out" >&2
check "final heal exits 0 (rc $rc)" test "$rc" = 0
check "bricks equal" sh -c "$HC same '$T' 3 >'$T/same.out' || { cat '$T/same.out' >&2; false; }"
check "markers clear" $HC clean "$T" 3
for i in 0 1 2 3 4 5 6 7 8 9; do
    check "log$i ends with the writer's last line" \
        test "$(tail -n 1 "$(brick_path 3 "w/a/log$i")")" = "line $((390 + i))"
done
check "deleted while healing stays deleted" test ! -e "$(brick_path 3 w/b/f1)"
check "mount and brick 3 agree on f0" cmp -s "$A/w/a/f0" "$(brick_path 3 w/a/f0)"
log "PASS"
