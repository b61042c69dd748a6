#!/usr/bin/env bash
# Two mounts write to one file at once (random, overlapping ranges): the
# three brick replicas end byte-identical, and both mounts read the same.
source "$(dirname "$0")/lib.sh"
IO="python3 $(dirname "$0")/rfs_io.py"
SECS=${SECS:-8}

volume_start
mount_volume mA
mount_volume mB
: >"$T/mA/shared.bin"
wait_for 10 test -e "$T/mB/shared.bin" || fail "file not visible on B"

log "two writers per mount for ${SECS}s"
pids=()
for m in mA mB; do
    for s in 1 2; do
        $IO overlap-writer "$T/$m/shared.bin" "$RANDOM$s" "$SECS" \
            >"$T/writer-$m-$s.out" 2>&1 &
        pids+=($!)
        OTHER_PIDS+=($!)
    done
done
for p in "${pids[@]}"; do
    wait "$p" || fail "a writer failed: $(cat "$T"/writer-*.out)"
done
cat "$T"/writer-*.out >&2
sleep 1.5 # attribute caches, delayed post-op
check "replicas differ" same_on_bricks shared.bin
check "mounts read differently" cmp "$T/mA/shared.bin" "$T/mB/shared.bin"
check "mount and brick differ" cmp "$T/mA/shared.bin" "$(brick_path 2 shared.bin)"
for i in 1 2 3; do
    check "pending left on brick $i" test "$(brick_pending_sum "$(brick_path "$i" shared.bin)")" = 0
done
log "PASS"
