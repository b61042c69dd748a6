#!/usr/bin/env bash
# Coherence across mounts (docs/client.md "Caching"): once a writer's
# close() on mount A has returned, an open()+read() on mount B never returns
# the old bytes or the old size, although B had the file cached; and
# changes pushed by the bricks (INVAL) reach B's kernel caches well before
# the attribute timeout (here 60 s, so only an invalidation can explain a
# fresh answer).  Regression test for "stale read across mounts after
# close" (docs/reliability.md, known bug 1).
source "$(dirname "$0")/lib.sh"

volume_start
mount_volume mA "attr_timeout=60,entry_timeout=60"
mount_volume mB "attr_timeout=60,entry_timeout=60"
A=$T/mA B=$T/mB

log "append on A, read on B at once, 300 rounds"
python3 - "$A" "$B" <<'PY' || fail "B read stale data after A's close"
import os, sys
a, b = sys.argv[1], sys.argv[2]
pa, pb = os.path.join(a, "grow.bin"), os.path.join(b, "grow.bin")
want = b""
with open(pa, "wb") as f:
    pass
for i in range(300):
    # B reads first, so its kernel holds the file's size and pages.
    with open(pb, "rb") as f:
        got = f.read()
    if got != want:
        sys.exit(f"round {i}: B read {len(got)} bytes before the append, want {len(want)}")
    chunk = bytes([65 + i % 26]) * (1 + (i * 7919) % 5000)
    if i % 5 == 4:
        # a rewrite in place, same size: only the bytes change
        with open(pa, "r+b") as f:
            f.write(chunk[: len(want)])
        want = chunk[: len(want)] + want[len(chunk):]
    else:
        with open(pa, "ab") as f:
            f.write(chunk)
        want += chunk
    with open(pb, "rb") as f:
        got = f.read()
    if got != want:
        sys.exit(f"round {i}: B read {len(got)} bytes after A's close, want {len(want)}"
                 f" (same prefix: {got == want[:len(got)]})")
print("300 rounds: B always read what A had closed")
PY

log "O_APPEND on B after A appended: at the real end, never over A's bytes"
python3 - "$A" "$B" <<'PY' || fail "an append on B overwrote what A had appended"
import os, sys
a, b = sys.argv[1], sys.argv[2]
pa, pb = os.path.join(a, "log.txt"), os.path.join(b, "log.txt")
open(pa, "wb").close()
want = b""
fb = os.open(pb, os.O_WRONLY | os.O_APPEND)   # B's kernel caches the size now
for i in range(50):
    line_a = b"A%04d-------------------\n" % i
    with open(pa, "ab") as f:
        f.write(line_a)
    want += line_a
    line_b = b"B%04d\n" % i
    os.write(fb, line_b)
    want += line_b
os.close(fb)
got = open(pb, "rb").read()
if got != want:
    sys.exit(f"log.txt is {len(got)} bytes, want {len(want)}; first difference at "
             f"{next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), -1)}")
print("50 interleaved appends from two mounts, none lost")
PY

log "a warm reopen on B keeps its page cache when nothing changed"
python3 - "$B" <<'PY' || fail "warm reopen"
import os, sys
p = os.path.join(sys.argv[1], "grow.bin")
for _ in range(3):
    with open(p, "rb") as f:
        f.read()
PY

log "stat, chmod, unlink and rename-over on A reach B through invalidations"
size_is() { test "$(stat -c %s "$1")" = "$2"; }
mode_is() { test "$(stat -c %a "$1")" = "$2"; }
content_is() { test "$(cat "$1" 2>/dev/null)" = "$2"; }
stat -c %s "$B/grow.bin" >/dev/null
printf 'more' >>"$A/grow.bin"
want=$(stat -c %s "$A/grow.bin")
wait_for 5 size_is "$B/grow.bin" "$want" || fail "B's stat kept the old size"
chmod 0600 "$A/grow.bin"
wait_for 5 mode_is "$B/grow.bin" 600 || fail "B's stat kept the old mode"
echo one >"$A/name"
cat "$B/name" >/dev/null
rm "$A/name"
wait_for 5 test ! -e "$B/name" || fail "B still sees an unlinked name"
echo two >"$A/name2"
cat "$B/name2" >/dev/null
echo three >"$A/tmp"
mv "$A/tmp" "$A/name2"
wait_for 5 content_is "$B/name2" three || fail "B reads the renamed-over content"
log PASS
