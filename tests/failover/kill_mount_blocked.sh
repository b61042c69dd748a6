#!/usr/bin/env bash
# kill -9 of a mount while one of its requests holds a directory's lock
# and its notifier thread waits for that lock.  The request: a create in
# d, on m2, that waits for a hung brick (ping timeout 30 s); the wait: an
# entry invalidation for d that m1's create in d made the bricks push to
# m2.  The kernel takes d's lock to invalidate, uninterruptibly, so the
# notifier thread cannot die; it kept /dev/fuse open, the kernel never
# aborted the connection, and the create (with anything else that touched
# the mount) hung for ever.  The mount's guard (src/fuse/guard.c) aborts
# the connection when the process dies without unmounting: the create
# fails within seconds and the process is gone.
source "$(dirname "$0")/lib.sh"
volume_start
mount_volume m1 "ping-timeout=2"
mount_volume m2 "ping-timeout=30"
m2pid=${MOUNT_PIDS[1]}
conn=$(stat -c %Ld "$T/m2") # the FUSE connection's number (fusectl)
# Should the fix fail, free whatever hangs on m2, as an admin would.
abort_m2() {
    mountpoint -q /sys/fs/fuse/connections ||
        mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
    echo 1 >"/sys/fs/fuse/connections/$conn/abort" 2>/dev/null || true
}
mkdir "$T/m1/d"
ls "$T/m2/d" >/dev/null
stat "$T/m2/d/y" >/dev/null 2>&1 || true # m2 caches "no d/y"
log "SIGSTOP brick 3; a create on m2 waits for it, holding d's lock"
brick_kill 3 STOP
touch "$T/m2/d/x" 2>/dev/null &
tp=$!
OTHER_PIDS+=("$tp")
sleep 1
log "a create of d/y on m1: bricks 1 and 2 tell m2 to drop d/y"
touch "$T/m1/d/y"
sleep 1
log "m2 threads: $(cat /proc/$m2pid/task/*/stat 2>/dev/null | awk '{printf "%s ", $3}')"
log "kill -9 mount m2 (pid $m2pid)"
kill -9 "$m2pid"
gone() { local s; s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -z "$s" ] || [ "$s" = Z ]; }
# The create on m2 must end (the connection aborted), and every thread of
# the mount process with it.
if ! wait_for 15 gone "$tp"; then
    abort_m2
    fail "the create on m2 still hangs 15 s after kill -9 of its mount"
fi
wait "$tp" && fail "the create on m2 succeeded after its mount died" || true
wait_for 15 test "$(ls "/proc/$m2pid/task" 2>/dev/null | wc -l)" -le 1 ||
    { abort_m2; fail "mount m2's threads outlive kill -9: $(ls "/proc/$m2pid/task" 2>/dev/null | tr '\n' ' ')"; }
wait "$m2pid" 2>/dev/null || true
brick_kill 3 CONT
fusermount3 -uz "$T/m2" 2>/dev/null || true
log PASS
