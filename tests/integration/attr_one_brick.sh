#!/usr/bin/env bash
# Every brick stamps a file's times by its own clock, so the copies' mtimes
# differ by a little.  A mount must still tell one story per object: the
# same mtime whether the kernel last asked by name (LOOKUP, answered by the
# folder's read brick) or by inode (GETATTR, open), and the same as another
# mount tells.  Else each re-lookup after entry_timeout reads as a change:
# the kernel drops the file's cached pages (auto_inval_data) and reads it
# again from a brick, and filemtime() jumps back and forth (a PHP cache
# keyed on it misses).  Short kernel timeouts make the re-lookups happen.
# (The mounts cannot know of the times set on the bricks below: nothing
# changed through the volume.  They pick up whatever their bricks say.)
source "$(dirname "$0")/lib.sh"

volume_create
bricks_start_metrics
mount_volume mA attr_timeout=0.3,entry_timeout=0.3
mount_volume mB attr_timeout=0.3,entry_timeout=0.3
A=$T/mA B=$T/mB

log "40 files in 8 folders, written through A"
python3 - "$A" <<'PY' || fail "write"
import os, sys
for d in range(8):
    os.makedirs(os.path.join(sys.argv[1], f"u/{d:02x}"))
    for i in range(5):
        with open(os.path.join(sys.argv[1], f"u/{d:02x}/f{i}"), "wb") as f:
            f.write(os.urandom(20000))
PY

# The copies' times differ when the bricks' writes fall in different clock
# ticks (ext4 stamps coarse time), as under load; make every file so: each
# brick's copy a second apart.
now=$(date +%s)
for f in "$T"/brick1/u/*/f*; do
    rel=${f#"$T"/brick1/}
    for i in 1 2 3; do
        touch -m -d "@$((now + i))" "$T/brick$i/$rel"
    done
done

# Each round: after the timeouts, stat by path (LOOKUP), open and read
# (GETATTR/open), through A and B; every mtime seen must be the first one.
python3 - "$A" "$B" <<'PY' >"$T/first" || fail "first read"
import os, sys
for d in range(8):
    for i in range(5):
        p = f"u/{d:02x}/f{i}"
        with open(os.path.join(sys.argv[1], p), "rb") as f:
            f.read()
        print(p, os.stat(os.path.join(sys.argv[1], p)).st_mtime_ns)
PY
reads0=$(brick_ops all read)
for round in 1 2 3; do
    sleep 0.5
    python3 - "$A" "$B" "$T/first" "$round" <<'PY' || fail "round $round: a mount told another mtime"
import os, sys, time
a, b, first, rnd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
bad = []
for line in open(first):
    p, want = line.split()
    for m, how in ((a, "A stat"), (b, "B stat")):
        got = os.stat(os.path.join(m, p)).st_mtime_ns
        if got != int(want):
            bad.append(f"{p}: {how} {got} != {want}")
    with open(os.path.join(a, p), "rb") as f:
        got = os.fstat(f.fileno()).st_mtime_ns
        f.read()
    if got != int(want):
        bad.append(f"{p}: A fstat {got} != {want}")
    time.sleep(0.01)
    got = os.stat(os.path.join(a, p)).st_mtime_ns
    if got != int(want):
        bad.append(f"{p}: A stat again {got} != {want}")
for x in bad[:10]:
    print(f"round {rnd}: {x}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
done
reads=$(($(brick_ops all read) - reads0))
log "READs the bricks answered for A's re-reads: $reads"
# Nothing changed: A's pages stay cached through every re-lookup.
[ "$reads" -le 4 ] || fail "$reads READs for files whose pages A had cached"
log PASS
