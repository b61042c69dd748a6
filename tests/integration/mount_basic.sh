#!/usr/bin/env bash
# Two mounts ("web nodes") of one 3-brick volume: what A writes and closes,
# B reads back byte for byte; every brick holds the same bytes; namespace
# and attribute changes on A are seen on B; .replicafs is invisible; the
# daemonized mount is usable as soon as mount.replicafs returns; mount -t
# works through /sbin/mount.replicafs (in a private mount namespace).
source "$(dirname "$0")/lib.sh"

volume_start
mount_volume mA
mount_volume mB
A=$T/mA B=$T/mB

log "data: small and 5 MiB files written on A, read on B"
head -c 5242880 /dev/urandom >"$T/big.src"
printf 'hello, web2\n' >"$A/small.txt"
cp "$T/big.src" "$A/big.bin"
check "small file differs on B" cmp -s "$A/small.txt" "$B/small.txt"
check "big file differs on B" cmp "$T/big.src" "$B/big.bin"
for f in small.txt big.bin; do
    check "$f differs between bricks" same_on_bricks "$f"
done
check "brick 1 copy of big.bin is not the source" \
    cmp -s "$T/big.src" "$(brick_path 1 big.bin)"

log "overwrite in the middle and append on A, read on B"
printf 'XYZ' | dd of="$A/big.bin" bs=1 seek=1000000 conv=notrunc status=none
printf 'XYZ' | dd of="$T/big.src" bs=1 seek=1000000 conv=notrunc status=none
printf 'tail' >>"$A/big.bin"
printf 'tail' >>"$T/big.src"
check "overwritten file differs on B" cmp "$T/big.src" "$B/big.bin"
check "overwritten file differs between bricks" same_on_bricks big.bin

log "namespace: mkdir, symlink, hard link, rename, mkfifo"
mkdir -p "$A/dir/sub"
ln -s ../small.txt "$A/dir/link"
ln "$A/small.txt" "$A/dir/hard"
mv "$A/dir/sub" "$A/dir/sub2"
mkfifo "$A/dir/fifo"
check "mkdir not on B" test -d "$B/dir/sub2"
check "old name still on B" test ! -e "$B/dir/sub"
check "symlink target on B" test "$(readlink "$B/dir/link")" = ../small.txt
check "symlink does not resolve on B" cmp -s "$B/dir/link" "$A/small.txt"
check "hard link content on B" cmp -s "$B/dir/hard" "$A/small.txt"
check "hard link count on B" test "$(stat -c %h "$B/small.txt")" = 2
check "hard link inode on B" \
    test "$(stat -c %i "$B/small.txt")" = "$(stat -c %i "$B/dir/hard")"
check "fifo on B" test -p "$B/dir/fifo"
check "same dir id on all bricks" test \
    "$(brick_id "$(brick_path 1 dir/sub2)")" = "$(brick_id "$(brick_path 3 dir/sub2)")"

log "attributes: chmod, chown, truncate, utimens"
chmod 0640 "$A/small.txt"
chown 1234:2345 "$A/small.txt"
truncate -s 3 "$A/small.txt"
touch -d '2001-02-03 04:05:06' "$A/dir/hard"
sleep 1.2 # B's attribute cache (attr_timeout=1)
check "mode on B" test "$(stat -c %a "$B/small.txt")" = 640
check "owner on B" test "$(stat -c %u:%g "$B/small.txt")" = 1234:2345
check "size on B" test "$(stat -c %s "$B/small.txt")" = 3
check "content after truncate on B" test "$(cat "$B/small.txt")" = hel
check "mtime on B" test "$(stat -c %Y "$B/small.txt")" = \
    "$(date -d '2001-02-03 04:05:06' +%s)"
for i in 1 2 3; do
    check "mode on brick $i" test "$(stat -c %a "$(brick_path "$i" small.txt)")" = 640
    check "mtime on brick $i" test "$(stat -c %Y "$(brick_path "$i" small.txt)")" = \
        "$(date -d '2001-02-03 04:05:06' +%s)"
done

log "unlink and rmdir on A, gone on B"
rm "$A/dir/hard"
rmdir "$A/dir/sub2"
sleep 1.2 # B's attribute and entry caches
check "unlinked name on B" test ! -e "$B/dir/hard"
check "rmdir'd dir on B" test ! -e "$B/dir/sub2"
check "link count back to 1" test "$(stat -c %h "$B/small.txt")" = 1

log "a directory of 600 entries lists the same on B and on a brick"
mkdir "$A/many"
for i in $(seq 600); do : >"$A/many/file-with-a-longish-name-$i"; done
check "listing on B" test "$(ls "$B/many" | sort | md5sum)" = \
    "$(ls "$(brick_path 2 many)" | sort | md5sum)"
check "600 entries on B" test "$(ls "$B/many" | wc -l)" = 600
check "find -type f on B" test "$(find "$B/many" -type f | wc -l)" = 600

log ".replicafs is neither visible nor creatable"
check ".replicafs listed" test -z "$(ls -a "$A" | grep -x .replicafs)"
check ".replicafs stat succeeded" test ! -e "$A/.replicafs"
if touch "$A/.replicafs" 2>/dev/null; then fail "created .replicafs"; fi
if mkdir "$A/.replicafs" 2>/dev/null; then fail "mkdir'd .replicafs"; fi
if mv "$A/small.txt" "$A/.replicafs" 2>/dev/null; then fail "renamed onto .replicafs"; fi
check "small.txt survived" test -f "$A/small.txt"
check "df works" df "$A" >/dev/null

log "no replication markers left behind"
for i in 1 2 3; do
    for rel in small.txt big.bin dir many; do
        p=$(brick_path "$i" "$rel")
        check "pending on brick $i $rel" test "$(brick_pending_sum "$p")" = 0
        d=$(brick_xattr "$p" trusted.rfs.dirty)
        check "dirty on brick $i $rel ($d)" test -z "$d" -o "$d" = 0000000000000000
    done
done

log "daemon mode: usable as soon as mount.replicafs returns"
mkdir "$T/mC"
"$RFS_BIN_DIR/mount.replicafs" "$VOL" "$T/mC" -o allow_other,_netdev,defaults \
    2>>"$T/mC.log" || fail "daemonized mount failed"
MOUNTS+=("$T/mC")
check "daemonized mount not mounted on return" mountpoint -q "$T/mC"
check "daemonized mount cannot read" cmp -s "$T/big.src" "$T/mC/big.bin"
unmount_volume "$T/mC"

log "mount -t replicafs (helper in a private mount namespace)"
if command -v unshare >/dev/null && [ -d /usr/sbin ]; then
    mkdir -p "$T/sbin" "$T/mD"
    cp -a /usr/sbin/. "$T/sbin/" 2>/dev/null || true
    ln -sf "$RFS_BIN_DIR/mount.replicafs" "$T/sbin/mount.replicafs"
    unshare -m --propagation private bash -c '
        set -e
        mount --bind "$1/sbin" /usr/sbin
        mount -t replicafs "$2" "$1/mD" -o allow_other
        cmp "$1/big.src" "$1/mD/big.bin"
        umount "$1/mD"
    ' _ "$T" "$VOL" >>"$T/mD.log" 2>&1 || fail "mount -t replicafs did not work (see mD.log)"
else
    log "skipped: no unshare"
fi

log "SIGTERM with requests in flight: clean exit, nothing leaked"
python3 "$(dirname "$0")/rfs_io.py" stream "$B/inflight.bin" 20 "$T/inflight.state" 0 \
    >/dev/null 2>&1 &
W=$!
OTHER_PIDS+=("$W")
(while :; do ls -lR "$B/many" >/dev/null 2>&1 || true; done) &
OTHER_PIDS+=($!)
wait_for 30 test -s "$T/inflight.state" || fail "in-flight writer did not start"
sleep 1
kill -TERM "${MOUNT_PIDS[1]}"
wait "${MOUNT_PIDS[1]}" || fail "mount B exited with $? on SIGTERM"
MOUNT_PIDS[1]=
wait "$W" 2>/dev/null || true # its writes fail once B is gone: expected
check "mount B still mounted after SIGTERM" test ! -d "$B/many"
log "PASS"
