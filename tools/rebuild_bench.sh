#!/usr/bin/env bash
# Rebuild throughput: NFILES files (16 KiB..256 KiB, in 20 directories)
# written through a mount with all bricks up; then brick 2's disk is
# replaced (killed, wiped, re-stamped) and `replicafs rebuild --brick 2`
# timed; beside it `cp -a` of the same tree (brick 1's copy) on the same
# disk.  Page cache dropped before each.  JOBS=N: rebuild --jobs (4).
# Not a test: prints numbers.
# Usage: RFS_BIN_DIR=build RFS_SRC_DIR=. tools/rebuild_bench.sh [N]
source "$(dirname "$0")/../tests/integration/lib.sh"
RFS="$RFS_BIN_DIR/replicafs"
N=${1:-2000}

volume_start
mount_volume mA
A=$T/mA
python3 - "$A" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
blob = os.urandom(256 * 1024)
for d in range(20):
    os.makedirs("%s/d%02d" % (root, d), exist_ok=True)
for i in range(n):
    size = rnd.randint(16 * 1024, 256 * 1024)
    with open("%s/d%02d/f%05d" % (root, i % 20, i), "wb") as f:
        f.write(blob[:size])
PY
sync
bytes=$(du -sb --exclude=.replicafs "$T/brick1" | cut -f1)
brick_kill 2 KILL
rm -rf "$T/brick2"
brick_start 2 --init
sleep 1
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(date +%s.%N)
"$RFS" rebuild --brick 2 --volume "$VOL" --jobs "${JOBS:-4}" ${RATE:+--max-rate $RATE} --interval 0.5 >"$T/rebuild.out"
t1=$(date +%s.%N)
cat "$T/rebuild.out"
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
t2=$(date +%s.%N)
cp -a "$T/brick1" "$T/cpcopy"
sync
t3=$(date +%s.%N)
python3 - "$N" "$bytes" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
n, b = int(sys.argv[1]), int(sys.argv[2])
h = float(sys.argv[4]) - float(sys.argv[3])
c = float(sys.argv[6]) - float(sys.argv[5])
print("files %d, %.1f MB" % (n, b / 1e6))
print("rebuild: %6.2f s  %7.0f files/s  %6.1f MB/s" % (h, n / h, b / 1e6 / h))
print("cp -a  : %6.2f s  %7.0f files/s  %6.1f MB/s" % (c, n / c, b / 1e6 / c))
PY
