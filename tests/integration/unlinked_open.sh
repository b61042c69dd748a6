#!/usr/bin/env bash
# A file open on mount B stays usable after mount A unlinks it or renames
# another file over it (POSIX: an open, unlinked file keeps its data until
# the last close): reads see the old bytes, writes and ftruncate succeed,
# nothing is refused with EROFS while every brick is up; after the close the
# object is gone from every brick.  Regression test for "spurious EROFS with
# all bricks up" (docs/reliability.md, known bug 2) and the unpinned open.
source "$(dirname "$0")/lib.sh"

volume_start
mount_volume mA
mount_volume mB
A=$T/mA B=$T/mB

python3 - "$A" "$B" <<'PY' || fail "an open file on B broke when A removed its name"
import os, sys
a, b = sys.argv[1], sys.argv[2]
for i, how in enumerate(["unlink", "rename-over"] * 10):
    name = f"f{i}"
    with open(os.path.join(a, name), "wb") as f:
        f.write(b"old" * 1000)
    fd = os.open(os.path.join(b, name), os.O_RDWR)
    if how == "unlink":
        os.unlink(os.path.join(a, name))
    else:
        with open(os.path.join(a, name + ".new"), "wb") as f:
            f.write(b"new")
        os.rename(os.path.join(a, name + ".new"), os.path.join(a, name))
    try:
        got = os.pread(fd, 9, 0)
        if got != b"oldoldold":
            sys.exit(f"{how} {i}: read {got!r} through the open fd")
        os.pwrite(fd, b"NEW", 0)
        if os.pread(fd, 6, 0) != b"NEWold":
            sys.exit(f"{how} {i}: write through the open fd not read back")
        os.ftruncate(fd, 4)
        if os.fstat(fd).st_size != 4:
            sys.exit(f"{how} {i}: ftruncate through the open fd")
    except OSError as e:
        sys.exit(f"{how} {i}: {e}")
    finally:
        os.close(fd)
    want = None if how == "unlink" else b"new"
    p = os.path.join(b, name)
    got = open(p, "rb").read() if os.path.exists(p) else None
    if got != want:
        sys.exit(f"{how} {i}: the name reads {got!r} on B, want {want!r}")
print("20 open files survived their names' removal")
PY

log "after the last close, no brick keeps a removed object"
sleep 0.5
for i in 1 2 3; do
    n=$(find "$T/brick$i/.replicafs/ids" -type f | wc -l)
    # f1, f3, ... f19 (renamed over) remain: 10 objects, nothing else
    check "brick $i keeps $n objects, want 10" test "$n" = 10
done
log PASS
