#!/usr/bin/env bash
# The mount sets its own readahead (docs/performance.md, finding 6): 256
# KiB by default, -o readahead=KIB otherwise, 0 leaves the kernel's; a bad
# value is refused before anything is mounted.
source "$(dirname "$0")/lib.sh"

ra_of() {
    local d maj min
    d=$(stat -c %d "$1")
    maj=$((d >> 8 & 0xfff))
    min=$((d & 0xff | (d >> 12 & 0xfff00)))
    cat "/sys/class/bdi/$maj:$min/read_ahead_kb"
}

volume_start
mount_volume mA
mount_volume mB "readahead=512"
mount_volume mC "readahead=0"
check "default: 256 KiB" test "$(ra_of "$T/mA")" = 256
check "readahead=512" test "$(ra_of "$T/mB")" = 512
check "readahead=0: the kernel's own, not ours ($(ra_of "$T/mC"))" \
    test "$(ra_of "$T/mC")" != 256
mkdir -p "$T/mD"
rc=0
"$RFS_BIN_DIR/mount.replicafs" "$VOL" "$T/mD" -f -o readahead=lots \
    >"$T/mD.log" 2>&1 || rc=$?
check "readahead=lots refused (rc $rc)" test "$rc" != 0
check "and said why" grep -q "bad readahead" "$T/mD.log"
check "nothing mounted on mD" bash -c "! mountpoint -q '$T/mD'"
log "PASS"
