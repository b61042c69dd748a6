#!/usr/bin/env bash
# A local replicafs to look at: three bricks on 127.0.0.1 and a mount.
#
#   scripts/demo.sh          install what is missing, build, start 3 bricks,
#                            mount the volume at $STATE/mnt, write a few
#                            files and show where each replica lies
#   scripts/demo.sh stop     unmount and stop the daemons this script started
#                            (by the PIDs it recorded); the data stays
#   scripts/demo.sh purge    stop, then delete $STATE
#
# STATE is $REPLICAFS_DEMO_DIR, default /tmp/replicafs-demo.  Run as root
# (FUSE mounts and the bricks' trusted.* xattrs need it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
STATE=${REPLICAFS_DEMO_DIR:-/tmp/replicafs-demo}
BUILD=${REPLICAFS_DEMO_BUILD:-$here/build}
MNT=$STATE/mnt

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
    local f
    if mountpoint -q "$MNT" 2>/dev/null; then
        fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null ||
            fusermount3 -uz "$MNT"
        echo "unmounted $MNT"
    fi
    for f in "$STATE/mount.pid" "$STATE"/brick*.pid; do
        [ -f "$f" ] || continue
        if alive "$f"; then
            kill "$(cat "$f")"
            for _ in $(seq 50); do alive "$f" || break; sleep 0.1; done
            alive "$f" && kill -9 "$(cat "$f")"
            echo "stopped $(basename "$f" .pid) (pid $(cat "$f"))"
        fi
        rm -f "$f"
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start() {
    if alive "$STATE/mount.pid"; then
        echo "the demo is already running: $MNT (scripts/demo.sh stop)"
        exit 0
    fi
    [ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (FUSE, trusted.* xattrs)" >&2; exit 1; }

    say "installing what is missing"
    [ -f "$here/scripts/setup.sh" ] && bash "$here/scripts/setup.sh"

    say "building in $BUILD"
    cmake -S "$here" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    ninja -C "$BUILD" replicafsd mount.replicafs replicafs

    mkdir -p "$STATE" "$MNT"
    if [ ! -f "$STATE/demo.vol" ]; then
        say "a new volume in $STATE"
        "$BUILD/replicafs" keygen >"$STATE/demo.key"
        chmod 600 "$STATE/demo.key"
        {
            echo "[volume]"
            echo "name = demo"
            echo "replica = 3"
            echo "secret-file = demo.key"
            for i in 1 2 3; do
                echo "[brick.$i]"
                echo "address = 127.0.0.1:$(free_port)"
            done
        } >"$STATE/demo.vol"
    fi

    say "starting 3 bricks"
    for i in 1 2 3; do
        local port init=()
        port=$(sed -n "/^\[brick.$i\]/,/^\[/s/^address = 127.0.0.1://p" "$STATE/demo.vol")
        mkdir -p "$STATE/brick$i"
        [ -f "$STATE/brick$i/.replicafs/stamp" ] || init=(--init)
        nohup "$BUILD/replicafsd" --volume "$STATE/demo.vol" --brick "$i" \
            --dir "$STATE/brick$i" --listen "127.0.0.1:$port" --foreground \
            "${init[@]}" >>"$STATE/brick$i.log" 2>&1 &
        echo $! >"$STATE/brick$i.pid"
        wait_port "$port" || { echo "brick $i did not start: see $STATE/brick$i.log" >&2; stop; exit 1; }
        echo "brick $i: pid $(cat "$STATE/brick$i.pid"), 127.0.0.1:$port, $STATE/brick$i"
    done

    say "mounting at $MNT"
    nohup "$BUILD/mount.replicafs" "$STATE/demo.vol" "$MNT" -f -o allow_other \
        >>"$STATE/mount.log" 2>&1 &
    echo $! >"$STATE/mount.pid"
    for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
    mountpoint -q "$MNT" || { echo "mount failed: see $STATE/mount.log" >&2; stop; exit 1; }
    grep " $MNT " /proc/mounts

    say "writing a few files through the mount"
    mkdir -p "$MNT/avatars" "$MNT/crm/2024"
    echo "Hello from replicafs, $(date)" >"$MNT/hello.txt"
    head -c 1048576 /dev/urandom >"$MNT/crm/2024/contract.pdf"
    head -c 20000 /dev/urandom >"$MNT/avatars/user-42.png"
    ln -sf ../hello.txt "$MNT/avatars/readme"
    ls -lR "$MNT"

    say "where each replica lies"
    for i in 1 2 3; do
        echo "-- brick $i: $STATE/brick$i"
        ls -l "$STATE/brick$i/crm/2024"
    done
    python3 - "$STATE" crm/2024/contract.pdf <<'EOF'
import hashlib, os, sys
state, rel = sys.argv[1], sys.argv[2]
for i in (1, 2, 3):
    p = os.path.join(state, "brick%d" % i, rel)
    fid = os.getxattr(p, "trusted.rfs.id").hex()
    md5 = hashlib.md5(open(p, "rb").read()).hexdigest()
    print("brick %d: %s  id %s  md5 %s  also at .replicafs/ids/%s/%s"
          % (i, p, fid, md5, fid[:2], fid))
EOF
    echo
    # Fresh bricks say they may have missed something (they just started);
    # one heal pass with all three up clears that, as heal --daemon would.
    say "heal and status"
    "$BUILD/replicafs" heal --volume "$STATE/demo.vol" | head -n 3
    "$BUILD/replicafs" status --volume "$STATE/demo.vol"
    echo
    say "the demo is running"
    cat <<EOF
  mount:    $MNT   (try: echo hi > $MNT/x; ls -l $STATE/brick*/x)
  bricks:   $STATE/brick1..3, logs in $STATE/*.log
  status:   $BUILD/replicafs status --volume $STATE/demo.vol
  failover: kill -9 \$(cat $STATE/brick2.pid); echo still > $MNT/y
  stop:     scripts/demo.sh stop      (purge: scripts/demo.sh purge)
EOF
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
purge)
    stop
    rm -rf "$STATE"
    echo "removed $STATE"
    ;;
-h | --help) sed -n '2,13p' "$0" ;;
*)
    echo "usage: scripts/demo.sh [start|stop|purge]" >&2
    exit 2
    ;;
esac
