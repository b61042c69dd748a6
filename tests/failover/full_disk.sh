#!/usr/bin/env bash
# A full disk on one brick: brick 1 lives on a small tmpfs (64 MiB, most of
# it taken by a ballast file beside the brick directory, as when another
# tenant fills a shared disk), bricks 2 and 3 on the normal disk.  The
# workload runs through both mounts until brick 1 answers ENOSPC and keeps
# running for a while after.  A quorum (bricks 2 and 3) still has space, so:
#  - no operation fails with ENOSPC (rule 2: the application sees no error);
#  - every file whose copy on brick 1 differs from (or lacks) the one on
#    brick 2 is blamed: pending[1] > 0 on brick 2 or 3, on the file or on
#    its folder (heal must know to repair it; a silent divergence fails);
#  - nothing acknowledged is lost (verify through both mounts).
# Then the tmpfs grows (mount -o remount,size=) and a second workload runs:
# the mounts keep working, new files reach brick 1 again, still blamed
# correctly, and everything verifies.
source "$(dirname "$0")/lib.sh"

fo_disk_start 64 6144
[ "${FO_STRICT:-1}" = 1 ] ||
    log "FO_STRICT=0: --strict and read-back checks off"

wl_start a 16 $(fo_strict)
wait_for 14 fo_disk_full || fail "brick 1 did not fill within 14 s ($(fo_disk_avail) KiB left, acked $(wl_acked a))"
log "brick 1 full ($(fo_disk_avail) KiB left) after $(wl_acked a) acknowledged ops"
wl_wait a || fail "workload saw an error: $(grep workload: "$T/wl-a.log" | head -n 5)"
log "workload a: $(tail -n 1 "$T/wl-a.txt")"
nospc=$(grep -c '^F .*err=ENOSPC' "$T/wl-a.txt" || true)
[ "$nospc" = 0 ] || fail "$nospc operations failed with ENOSPC with a quorum of bricks with space: $(grep -m 3 '^F .*err=ENOSPC' "$T/wl-a.txt")"
grep -q "No space left\|ENOSPC" "$T/m1.log" "$T/m2.log" "$T/brick1.log" &&
    log "ENOSPC seen: $(grep -h -m 2 "No space left\|ENOSPC" "$T/m1.log" "$T/m2.log" "$T/brick1.log" | head -n 2)"
fo_disk_full || fail "brick 1 is not full any more after the workload ($(fo_disk_avail) KiB)"

log "check that brick 1 is blamed for what it missed"
fo_blame_check 1 2 >"$T/blame-a.out" 2>&1 || { cat "$T/blame-a.out" >&2; fail "brick 1 differs from brick 2 without pending markers"; }
cat "$T/blame-a.out" >&2
grep -q 'differing and blamed: [1-9]' "$T/blame-a.out" ||
    fail "brick 1 was full but nothing differs from brick 2: the scenario did not exercise ENOSPC"

log "grow brick 1's tmpfs"
# Room for what brick 2 holds (heal copies it all), workload b and slack,
# at least 256 MiB: how much workload a wrote depends on the client's speed.
grow_kb=$(( $(du -sk "$T/brick2/" | cut -f1) * 3 + 65536 ))
[ "$grow_kb" -ge 262144 ] || grow_kb=262144
mount -o remount,size=${grow_kb}k "$FD_DISK" || fail "remount tmpfs"
log "brick 1 now has $(fo_disk_avail) KiB free"
before=$(find "$T/brick2/" -path "$T/brick2/.replicafs" -prune -o -type f -print | wc -l)
wl_start b 6 $(fo_strict)
wl_wait b || fail "workload b saw an error after space was freed: $(grep workload: "$T/wl-b.log" | head -n 5)"
log "workload b: $(tail -n 1 "$T/wl-b.txt")"
acked_b=$(wl_acked b)
[ "$acked_b" -gt 50 ] || fail "workload b acknowledged only $acked_b operations"
nospc=$(grep -c '^F ' "$T/wl-b.txt" || true)
[ "$nospc" = 0 ] || log "workload b: $nospc failed operations: $(grep -m 3 '^F ' "$T/wl-b.txt")"
tag_b=$(sed -n 's/^H .*tag=\([0-9a-f]*\).*/\1/p' "$T/wl-b.txt" | head -n 1)
new_on_1=$(find -L "$T/brick1/" -path "$T/brick1/.replicafs" -prune -o -type f -name "$tag_b-*" -print | wc -l)
log "files of workload b on brick 1: $new_on_1 (brick 2 had $before files before it)"
[ "$new_on_1" -gt 0 ] || fail "no file written after the tmpfs grew reached brick 1"
fo_blame_check 1 2 >"$T/blame-b.out" 2>&1 || { cat "$T/blame-b.out" >&2; fail "brick 1 differs from brick 2 without pending markers (after growing)"; }
cat "$T/blame-b.out" >&2
fo_verify
log PASS
