#!/usr/bin/env bash
# An invalidation still queued for the kernel must stop an open from
# keeping the page cache (src/fuse/ops.c invariant 5, notify.c invariant
# 4).  Mount B's notifier thread is slowed (RFS_TEST_NOTIFY_DELAY_MS), so
# the INVAL for A's rewrite waits in B's queue; meanwhile a forced stat on
# B hands B's kernel the new size and times, which re-arms B's record of
# what the kernel holds.  A's rewrite keeps the size and puts the old mtime
# back (as `cp -p` or `rsync -t` do), so the kernel sees no reason of its
# own to drop the old pages.  B's open must still drop them.  Regression
# test for "old bytes read while an invalidation waited in the queue"
# (docs/reliability.md, bug 23).
source "$(dirname "$0")/lib.sh"

volume_start
mount_volume mA "attr_timeout=60,entry_timeout=60"
RFS_TEST_NOTIFY_DELAY_MS=3000 mount_volume mB "attr_timeout=60,entry_timeout=60"
A=$T/mA B=$T/mB

printf 'AAAAAAAA' > "$A/f"
[ "$(cat "$B/f")" = AAAAAAAA ] || fail "B did not read the first version"
sleep 0.1   # the rewrite's mtime differs until it is set back
log "rewrite on A, same size, old mtime put back"
python3 - "$A/f" <<'PY' || fail "rewrite on A"
import os, sys
p = sys.argv[1]
st = os.stat(p)
with open(p, "r+b") as f:
    f.write(b"BBBBBBBB")
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
if os.stat(p).st_mtime_ns != st.st_mtime_ns:
    sys.exit("mtime not set back")
PY
log "forced stat on B while its invalidation waits, then read"
stat --cached=never -c '%s %Y %Z' "$B/f" >/dev/null
got=$(cat "$B/f")
[ "$got" = BBBBBBBB ] || fail "B read '$got' after A's close, want BBBBBBBB"
log PASS
