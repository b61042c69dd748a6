#!/usr/bin/env bash
# A change cut off mid-way while another brick was already blamed leaves
# the unblamed bricks (the sources) dirty and possibly different.  Found by
# the soak (two_down: brick 2 killed, then brick 3 mid-write): after heal,
# brick 3 kept 143,360 bytes of a file that has 181,575 on brick 1, with no
# marker left.  Heal copied brick 1 to the sink (brick 2), cleared dirty,
# and never compared the sources.  Built by hand here: f equal on the three
# bricks; brick 2 blamed by bricks 1 and 3; bricks 1 and 3 dirty; brick 3's
# copy cut short.  Heal must leave the three copies equal, no marker left.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
volume_start
mount_volume mA "ping-timeout=2"
head -c 181575 /dev/urandom >"$T/mA/f"
sync
unmount_volume "$T/mA"
check "clean before" $HC clean "$T" 3
# dirty_blame BRICK: dirty = 1, pending for brick 2 = 1, the index entry.
dirty_blame() {
    python3 - "$T/brick$1" f <<'PY'
import os, struct, sys
root, rel = sys.argv[1], sys.argv[2]
p = os.path.join(root, rel)
hi, lo = struct.unpack("<QQ", os.getxattr(p, "trusted.rfs.id"))
open(os.path.join(root, ".replicafs/heal", "%016x%016x" % (hi, lo)), "w").close()
os.setxattr(p, "trusted.rfs.dirty", struct.pack("<q", 1))
os.setxattr(p, "trusted.rfs.pending", struct.pack("<3q", 0, 1, 0))
PY
}
dirty_blame 1
dirty_blame 3
truncate -s 143360 "$(brick_path 3 f)"
"$RFS_BIN_DIR/replicafs" heal --wait --timeout 20 --verbose --volume "$VOL" \
    >"$T/heal.log" 2>&1 || fail "heal --wait: $(tail -n 6 "$T/heal.log")"
log "heal: $(grep -v 'healed bricks' "$T/heal.log" | head -n 3 | tr '\n' ' ')"
check "f equal on bricks 1 and 2" cmp -s "$(brick_path 1 f)" "$(brick_path 2 f)"
check "f equal on bricks 1 and 3" cmp -s "$(brick_path 1 f)" "$(brick_path 3 f)"
check "no marker nonzero, no index entry left" $HC clean "$T" "$NBRICKS"
log PASS
