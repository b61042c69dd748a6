#!/usr/bin/env bash
# No read lease on a file that has lost its last name.  Mount B has the
# file open when A renames a new version over it; B's kernel still names
# the old inode for a moment (its notifier is slowed here, so that the
# moment lasts), so B's next open of the name goes to the old file, which
# the bricks keep only for B's open descriptor.  A lease granted on it
# then would never be recalled: once B closes both, the file goes, and an
# open answered from that lease would read a file no brick has (read()
# failed with ENOENT: bug 28 in docs/reliability.md, found by
# integration.rename_atomic with two tests at once).  The open after the
# closes must give the new version.
source "$(dirname "$0")/lib.sh"

volume_start
mount_volume mA
RFS_TEST_NOTIFY_DELAY_MS=10000 mount_volume mB "attr_timeout=60,entry_timeout=60"

rc=0
python3 - "$T/mA" "$T/mB" >"$T/steps.out" 2>&1 <<'PY' || rc=$?
import os, sys, time
a, b = sys.argv[1], sys.argv[2]
def put(p, data):
    with open(p + ".tmp", "wb") as f:
        f.write(data)
    os.rename(p + ".tmp", p)
def read(p):
    with open(p, "rb") as f:
        return f.read()
put(os.path.join(a, "f"), b"1" * 5000)
assert read(os.path.join(b, "f")) == b"1" * 5000, "B did not read version 1"
keep = open(os.path.join(b, "f"), "rb")          # the old file, open on B
put(os.path.join(a, "f"), b"2" * 6000)           # renamed over it on A
time.sleep(0.3)                                  # the recalls are answered
again = open(os.path.join(b, "f"), "rb")         # the old inode, by name
print("B's second open read %d bytes" % len(again.read()))
again.close()
keep.close()
time.sleep(0.1)  # the releases reach the bricks (a lease is trusted
                 # only within 500 ms of the bricks' last answer)
try:
    got = read(os.path.join(b, "f"))
except OSError as e:
    sys.exit("B's open after the closes: %s" % e)
if got != b"2" * 6000:
    sys.exit("B's open after the closes read %d bytes, not version 2" % len(got))
print("B reads version 2")
PY
cat "$T/steps.out" >&2
[ "$rc" = 0 ] || fail "$(tail -n 1 "$T/steps.out")"
log PASS
