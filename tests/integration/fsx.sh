#!/usr/bin/env bash
# fsx-check: 100k random operations on a directory of the mount and on a
# local directory must give the same results and contents.  A second mount
# then reads the final tree back byte-identical to the local one, and every
# brick holds the same bytes.
source "$(dirname "$0")/lib.sh"
# 50k operations take about a minute here; a sanitizer build is several
# times slower, so it runs 15k (the same code paths).  OPS=1000000 by hand
# for a long run.
if [ -z "${OPS:-}" ]; then
    OPS=50000
    sanitizer_build && OPS=15000
fi
SEED=${SEED:-$(date +%s)}

volume_start
mount_volume mA
mkdir "$T/mA/fsx" "$T/local"
log "fsx-check: $OPS ops, seed $SEED (repro: SEED=$SEED)"
"$RFS_BIN_DIR/fsx-check" "$T/mA/fsx" "$T/local" --ops "$OPS" --seed "$SEED" ||
    fail "fsx-check found a difference (seed $SEED)"

log "the final tree, seen from a second mount and on each brick"
mount_volume mB
check "tree on B differs from the local one" diff -r "$T/local" "$T/mB/fsx"
for i in 1 2 3; do
    check "brick $i differs from the local tree" diff -r "$T/local" "$(brick_path "$i" fsx)"
done
log "PASS"
