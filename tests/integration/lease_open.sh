#!/usr/bin/env bash
# Read leases (protocol 3, docs/client.md "Opens from a lease"): a mount
# that holds a lease answers opens from memory, and every change recalls
# the lease before the writer hears "done".  Checks: warm opens stop
# reaching the bricks; a reader never reads old bytes after the writer's
# close(); a frozen reader (SIGSTOP) holds a writer up for at most the
# recall wait and then loses its leases; a reader that has heard from no
# brick for longer than the trust period (500 ms) asks them again; a file
# unlinked while open from a lease stays readable through that open, past
# the pages the kernel holds.
source "$(dirname "$0")/lib.sh"

volume_create
bricks_start_metrics
# A long ping timeout: the bricks are frozen for seconds below, and a
# mount must not declare them down meanwhile.
mount_volume mA ping-timeout=20
mount_volume mB ping-timeout=20
A=$T/mA B=$T/mB
B_PID=${MOUNT_PIDS[1]}

python3 - "$A/f" <<'PY' || fail "first write"
import sys
open(sys.argv[1], "wb").write(b"v0" * 8192)
PY

opens() { echo $(( $(brick_ops all openx) + $(brick_ops all open) )); }
before=$(opens)
python3 - "$B/f" <<'PY' || fail "reads on B"
import sys
for _ in range(200):
    with open(sys.argv[1], "rb") as f:
        assert f.read() == b"v0" * 8192
PY
after=$(opens)
log "200 opens on B reached the bricks $((after - before)) times"
[ $((after - before)) -le 30 ] ||
    fail "200 warm opens on B sent $((after - before)) OPEN/OPENX to the bricks, want at most 30"

log "writer and reader take turns: the reader must see every version"
python3 - "$A/f" "$B/f" <<'PY' || fail "turns"
import sys
a, b = sys.argv[1:]
for i in range(1, 101):
    data = (b"%05d" % i) * 3000
    with open(a, "r+b") as f:   # same size every time: no size hint
        f.write(data)
    for _ in range(3):
        with open(b, "rb") as f:
            got = f.read(len(data))
        assert got == data, "version %d: B read %r" % (i, got[:10])
PY

log "a frozen reader holds the writer up for at most the recall wait"
cat "$B/f" >/dev/null
cat "$B/f" >/dev/null
kill -STOP "$B_PID"
t0=$(date +%s%N)
python3 - "$A/f" <<'PY' || { kill -CONT "$B_PID"; fail "write while B is frozen"; }
import sys
with open(sys.argv[1], "r+b") as f:
    f.write(b"frozen" * 100)
PY
t1=$(date +%s%N)
sleep 0.5
kill -CONT "$B_PID"
ms=$(( (t1 - t0) / 1000000 ))
log "the write took $ms ms with B frozen"
[ "$ms" -ge 800 ] || fail "the write took $ms ms: it did not wait for B's lease"
[ "$ms" -le 10000 ] || fail "the write took $ms ms: B's lease held it too long"
got=$(head -c 12 "$B/f")
[ "$got" = frozenfrozen ] || fail "B read '$got' after it woke, want the new bytes"
count_ge 1 "$T/mB.log" "dropped this mount's read leases" ||
    fail "mB was not told it lost its leases"
count_ge 1 "$T/brick1.log" "recall was not answered" ||
    fail "brick 1 did not log the recall that ran out"

log "cut off from every brick for longer than the trust period, B asks them"
cat "$B/f" >/dev/null; cat "$B/f" >/dev/null
for i in 1 2 3; do kill -STOP "${BRICK_PID[$i]}"; done
sleep 1
timeout -s KILL 2 cat "$B/f" >/dev/null 2>&1 && r=0 || r=$?
for i in 1 2 3; do kill -CONT "${BRICK_PID[$i]}"; done
[ "$r" = 137 ] ||
    fail "B's open while every brick was frozen ended ($r) instead of waiting for them"
got=$(head -c 12 "$B/f")
[ "$got" = frozenfrozen ] || fail "B read '$got' after the bricks woke"

log "unlinked on A while B has it open from its lease"
python3 - "$A/g" <<'PY' || fail "write g"
import sys
open(sys.argv[1], "wb").write(bytes(range(256)) * 4096)
PY
cat "$B/g" >/dev/null; cat "$B/g" >/dev/null
before=$(opens)
python3 - "$A/g" "$B/g" <<'PY' || fail "unlinked while open from a lease"
import os, sys, time
a, b = sys.argv[1:]
fd = os.open(b, os.O_RDONLY)
assert os.pread(fd, 256, 0) == bytes(range(256))
os.unlink(a)
for _ in range(500):  # B's kernel drops the name when its INVAL is applied
    if not os.path.exists(b):
        break
    time.sleep(0.01)
else:
    sys.exit("B still sees the name 5 s after the unlink")
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # past B's pages
data = os.pread(fd, 1 << 20, 0)
assert data == bytes(range(256)) * 4096, "B read %d bytes" % len(data)
os.close(fd)
PY
log "the open from the lease became a real open when recalled: $(( $(opens) - before )) OPENs"
[ $(( $(opens) - before )) -ge 3 ] || fail "no OPEN was sent for the open from the lease"
log PASS
