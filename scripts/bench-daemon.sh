#!/usr/bin/env bash
# One replicafsd over loopback next to the local disk it stores on.
#
#   scripts/bench-daemon.sh [BUILD_DIR] [rfs-bench options...]
#
# Starts one daemon on a free 127.0.0.1 port with its brick in a temp dir,
# runs rfs-bench against it and against a plain directory in the same temp
# dir (same disk), prints the table (medians of 3 runs), and cleans up.
# BUILD_DIR defaults to $RFS_BIN_DIR or ./build; TMPDIR picks the disk.
# Example: scripts/bench-daemon.sh build --files 5000 --mb 512
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${RFS_BIN_DIR:-$here/build}
if [ $# -gt 0 ] && [ -d "$1" ]; then
  bin=$(cd "$1" && pwd)
  shift
fi
for exe in replicafsd rfs-bench; do
  [ -x "$bin/$exe" ] || { echo "bench-daemon: $bin/$exe not built" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/rfs-bench.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$tmp/bench.key"
echo >>"$tmp/bench.key"
cat >"$tmp/bench.vol" <<EOF
[volume]
name = bench
replica = 1
secret-file = bench.key

[brick.1]
address = 127.0.0.1:$port
EOF
mkdir "$tmp/brick" "$tmp/local"

echo "bench-daemon: $(df -hT "$tmp" | awk 'NR==2 {print $1" ("$2")"}'), port $port, $(nproc) cores"
"$bin/replicafsd" --volume "$tmp/bench.vol" --brick 1 --dir "$tmp/brick" \
  --init --foreground 2>"$tmp/daemon.log" &
pid=$!
for _ in $(seq 200); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/daemon.log" >&2; exit 1; }
  sleep 0.05
done

"$bin/rfs-bench" --volume "$tmp/bench.vol" --brick 1 --dir "$tmp/local" "$@"
