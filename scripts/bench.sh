#!/usr/bin/env bash
# The benchmark of issue #6: the portal workload (tools/bench_portal.c) on a
# plain local directory, on a local 3-brick replicafs volume mounted twice,
# and (--gluster) on a GlusterFS replica-3 volume mounted twice, all on the
# same disk and 127.0.0.1, in one run; prints a side-by-side table and
# writes it to bench-results/<date>.md.
#
#   scripts/bench.sh [--gluster] [--quick] [--inodes N] [--out FILE]
#
#   --gluster   also install (Debian's glusterfs-server, if missing), set up,
#               measure and tear down a GlusterFS replica-3 volume
#   --quick     a reduced scale (2,000 files, 128 MiB big file, 5 trials)
#   --inodes N  the memory target instead: N empty files created and
#               stat'ed through replicafs mount A (create, stat_warm only),
#               then mount A's RSS and the kernel's FUSE inode count
#   --out FILE  write the table there instead of bench-results/<date>.md
#   --no-local, --no-replicafs   leave a column out
#
# Environment: BENCH_DIR (parent of the scratch dir; default /var/tmp, it
# must be on the disk you want to measure), BENCH_ARGS (more bench-portal
# options, e.g. "--threads 8"), BENCH_TIMEOUT (seconds one bench-portal run
# may take; default 3 h, 20 min with --quick).
#
# replicafs runs when build-release/ has replicafsd and mount.replicafs;
# otherwise its column says "n/a".  Run as root: cold phases drop the
# kernel's caches, and the volumes need mount.  Everything this script
# starts is stopped by PID and its directories removed on exit, failure or
# Ctrl-C (trap cleanup).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

gluster=0
quick=0
inodes=""
out=""
do_local=1
do_rfs=1
while (($#)); do
  case "$1" in
    --gluster) gluster=1 ;;
    --quick) quick=1 ;;
    --inodes) inodes="$2"; shift ;;
    --out) out="$2"; shift ;;
    --no-local) do_local=0 ;;
    --no-replicafs) do_rfs=0 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "bench.sh: $*" >&2; }

scale=()
timeout_s=${BENCH_TIMEOUT:-10800}
if ((quick)); then
  scale=(--files 2000 --big-mb 128 --trials 5)
  timeout_s=${BENCH_TIMEOUT:-1200}
fi
if [ -n "$inodes" ]; then
  scale=(--files "$inodes" --empty --only create,stat_warm)
  do_local=0
  gluster=0
fi
read -r -a extra <<<"${BENCH_ARGS:-}"
stamp=$(date +%Y-%m-%d_%H%M%S)
[ -n "$out" ] || out="bench-results/$stamp.md"
[ "$(id -u)" -eq 0 ] || log "warning: not root: cold phases will be warm, and no volume can be mounted"

# ---- state for cleanup: everything started is recorded here ----
work=""                 # scratch dir (all data dirs live below it)
rfs_pids=()             # replicafsd and mount.replicafs we started
rfs_mnts=()
gl_vol=""               # gluster volume we created
gl_mnts=()
gl_glusterd_pid=""      # set only if we started glusterd
gl_pids=()              # brick + self-heal processes of our volume
gl_client_pids=()       # the glusterfs FUSE clients of our mounts

stop_pid() {            # stop_pid PID: TERM, wait up to 5 s, then KILL
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

unmount() {             # unmount MNT: normal, then lazy so nothing hangs
  local m=$1
  mountpoint -q "$m" 2>/dev/null || return 0
  fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null ||
    umount -l "$m" 2>/dev/null || true
}

cleanup_rfs() {
  local m p
  for m in "${rfs_mnts[@]}"; do unmount "$m"; done
  for p in "${rfs_pids[@]}"; do stop_pid "$p"; done
  rfs_mnts=(); rfs_pids=()
}

cleanup_gluster() {
  local m p
  for m in "${gl_mnts[@]}"; do unmount "$m"; done
  gl_mnts=()
  for p in "${gl_client_pids[@]}"; do stop_pid "$p"; done
  gl_client_pids=()
  if [ -n "$gl_vol" ]; then
    # GlusterFS quirk: without --mode=script both of these ask y/n on the tty
    timeout 60 gluster --mode=script volume stop "$gl_vol" force >/dev/null 2>&1 || true
    timeout 60 gluster --mode=script volume delete "$gl_vol" >/dev/null 2>&1 || true
    gl_vol=""
  fi
  # volume stop normally ends the bricks; if the glusterd is ours, so are
  # they and its self-heal daemon, and whatever is left goes now
  if [ -n "$gl_glusterd_pid" ]; then
    for p in "${gl_pids[@]}"; do stop_pid "$p"; done
  fi
  gl_pids=()
  if [ -n "$gl_glusterd_pid" ]; then
    stop_pid "$gl_glusterd_pid"
    gl_glusterd_pid=""
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cleanup_rfs
  cleanup_gluster
  [ -n "$work" ] && rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ----
bash scripts/setup.sh   # what building needs, from Debian, if missing
bp=build-release/bench-portal
blog=build-release/bench-build.log
mkdir -p build-release
log "building (Release) in build-release/"
if cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DRFS_TESTS=OFF >"$blog" 2>&1 &&
   ninja -C build-release bench-portal >>"$blog" 2>&1; then
  :
else
  # The tree is mid-change (a target another engineer is writing does not
  # configure yet): bench-portal needs only libc, so build it alone rather
  # than measure nothing.  See build-release.log for why CMake failed.
  log "warning: the CMake build failed ($blog); compiling bench-portal alone"
  cc -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -fno-strict-aliasing \
    tools/bench_portal.c -o "$bp" -lpthread
fi
if ((do_rfs)); then
  for t in replicafsd mount.replicafs replicafs; do
    # A stale binary from an older tree may not even speak today's
    # protocol: measure nothing rather than the wrong program.
    ninja -C build-release "$t" >>"$blog" 2>&1 || {
      rm -f "build-release/$t"
      log "note: target $t did not build (see $blog)"
    }
  done
fi

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/replicafs-bench.XXXXXX")
mkdir -p "$work/results"
log "scratch dir $work ($(df -h --output=source,fstype "$work" | tail -1 | tr -s ' '))"

# run_bench LABEL DIR_A DIR_B [--watch-pid ...]: bench-portal with the
# chosen scale; phase lines go to the terminal and results/LABEL.{txt,json}.
run_bench() {
  local label=$1 a=$2 b=$3 rc=0
  shift 3
  log "running the workload on $label ($a)"
  timeout --signal=KILL "$timeout_s" "$bp" "${scale[@]}" "${extra[@]}" \
    --label "$label" --json "$work/results/$label.json" "$@" "$a" "$b" |
    tee "$work/results/$label.txt" || rc=$?
  ((rc == 0)) || log "warning: bench-portal on $label exited $rc (errors are in the table)"
  return 0
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_listen() {         # wait_listen PORT PID: 0 listening, 1 PID died, 2 timeout
  local port=$1 pid=$2
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 2
}

wait_mount() {          # wait_mount MNT [PID]
  local m=$1 pid=${2:-}
  for _ in $(seq 200); do
    mountpoint -q "$m" && return 0
    [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# ---- the local column ----
if ((do_local)); then
  mkdir -p "$work/local"
  # DIR_B = DIR_A: cross-node on one directory is the floor to compare with
  run_bench local "$work/local" "$work/local"
  rm -rf "$work/local"
fi

# ---- the replicafs column ----
run_replicafs() {
  local d="$work/rfs" bin=build-release n port pid
  local ports=()
  mkdir -p "$d"/b1 "$d"/b2 "$d"/b3 "$d"/a "$d"/b
  if [ -x "$bin/replicafs" ] && "$bin/replicafs" keygen >"$d/bench.key" 2>/dev/null; then
    :
  else
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$d/bench.key"
    echo >>"$d/bench.key"
  fi
  chmod 600 "$d/bench.key"
  for n in 1 2 3; do ports+=("$(free_port)"); done
  {
    printf '[volume]\nname = bench\nreplica = 3\nsecret-file = bench.key\n'
    for n in 1 2 3; do
      printf '\n[brick.%d]\naddress = 127.0.0.1:%d\n' "$n" "${ports[$((n - 1))]}"
    done
  } >"$d/bench.vol"
  for n in 1 2 3; do
    port=${ports[$((n - 1))]}
    "$bin/replicafsd" --volume "$d/bench.vol" --brick "$n" --dir "$d/b$n" \
      --init --listen "127.0.0.1:$port" --foreground >"$d/brick$n.log" 2>&1 &
    pid=$!
    rfs_pids+=("$pid")
    if ! wait_listen "$port" "$pid"; then
      # --init may stamp and exit instead of serving: then start it again
      if ! kill -0 "$pid" 2>/dev/null && wait "$pid"; then
        "$bin/replicafsd" --volume "$d/bench.vol" --brick "$n" --dir "$d/b$n" \
          --listen "127.0.0.1:$port" --foreground >>"$d/brick$n.log" 2>&1 &
        pid=$!
        rfs_pids+=("$pid")
        wait_listen "$port" "$pid" || { log "brick $n did not start:"; tail -5 "$d/brick$n.log" >&2; return 1; }
      else
        log "brick $n did not start:"; tail -5 "$d/brick$n.log" >&2; return 1
      fi
    fi
  done
  local watch="" i=1
  for pid in "${rfs_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue   # an --init run that exited
    watch="$watch${watch:+,}$pid=brick$i"
    i=$((i + 1))
  done
  for n in a b; do
    "$bin/mount.replicafs" "$d/bench.vol" "$d/$n" -f \
        ${BENCH_MOUNT_OPTS:+-o "$BENCH_MOUNT_OPTS"} >"$d/mount-$n.log" 2>&1 &
    pid=$!
    rfs_pids+=("$pid")
    rfs_mnts+=("$d/$n")
    wait_mount "$d/$n" "$pid" || { log "mount $n failed:"; tail -5 "$d/mount-$n.log" >&2; return 1; }
    watch="$watch,$pid=mount-$n"
  done
  run_bench replicafs "$d/a" "$d/b" --watch-pid "$watch"
  if [ -n "$inodes" ]; then
    # What the mount holds now, with every file looked up and stat'ed: the
    # kernel keeps an inode (and the mount a table entry) for each.
    {
      echo "After stat_warm of $inodes empty files through mount A:"
      echo "- FUSE inodes in the kernel (fuse_inode slab, active objects):" \
        "$(awk '$1 == "fuse_inode" {print $2}' /proc/slabinfo)"
      echo "- mount A VmRSS now: $(awk '/^VmRSS/ {printf "%.1f MB", $2 / 1024}' \
        "/proc/${rfs_pids[${#rfs_pids[@]} - 2]}/status")"
    } >"$work/results/inodes.txt"
    cat "$work/results/inodes.txt" >&2
  fi
}
if ((do_rfs)); then
  if [ -x build-release/replicafsd ] && [ -x build-release/mount.replicafs ]; then
    run_replicafs || log "warning: the replicafs column failed; see above"
    cleanup_rfs
    rm -rf "$work/rfs"
  else
    log "note: no build-release/mount.replicafs yet: no replicafs column"
  fi
fi

# ---- the GlusterFS column ----
gluster_pids_of_vol() { # brick and self-heal PIDs, from the volume's status
  timeout 60 gluster --mode=script volume status "$1" --xml 2>/dev/null |
    sed -n 's:.*<pid>\([0-9][0-9]*\)</pid>.*:\1:p' | sort -u
}

run_gluster() {
  local d="$work/gl" n pid watch
  if ! command -v gluster >/dev/null || [ ! -x /usr/sbin/glusterd ]; then
    log "installing glusterfs-server from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq glusterfs-server >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq glusterfs-server >/dev/null; } ||
      { log "cannot install glusterfs-server"; return 1; }
  fi
  # GlusterFS quirk: the package's postinst starts nothing without systemd,
  # and `service glusterd start` is no use in a container either; glusterd
  # is started by hand and daemonises, so its PID comes from -p.
  if timeout 20 gluster --mode=script pool list >/dev/null 2>&1; then
    log "using the glusterd already running (it will not be stopped)"
  else
    /usr/sbin/glusterd -p "$work/glusterd.pid" || { log "glusterd did not start"; return 1; }
    for n in $(seq 100); do [ -s "$work/glusterd.pid" ] && break; sleep 0.1; done
    gl_glusterd_pid=$(cat "$work/glusterd.pid")
    for n in $(seq 60); do
      timeout 10 gluster --mode=script pool list >/dev/null 2>&1 && break
      sleep 0.5
    done
  fi
  mkdir -p "$d"/b1 "$d"/b2 "$d"/b3 "$d"/a "$d"/b
  # GlusterFS quirk: `volume create` refuses the brick host "127.0.0.1" (and
  # "localhost"): "Please provide a valid hostname/ip other than localhost,
  # 127.0.0.1 or loopback address".  It takes a name that resolves to
  # 127.0.0.1, and this machine's host name does (/etc/hosts), so the
  # bricks are named by it and all traffic still stays on 127.0.0.1.
  local host
  host=$(hostname)
  if [ "$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')" != 127.0.0.1 ]; then
    log "the host name '$host' does not resolve to 127.0.0.1, and gluster"
    log "refuses 127.0.0.1 itself: add '127.0.0.1 $host' to /etc/hosts"
    return 1
  fi
  gl_vol="rfsbench$$"
  # GlusterFS quirk: three bricks of one replica set on one host, and bricks
  # on the root filesystem, are refused without `force`.
  if ! timeout 120 gluster --mode=script volume create "$gl_vol" replica 3 \
       "$host:$d/b1" "$host:$d/b2" "$host:$d/b3" force; then
    gl_vol=""
    log "gluster volume create failed"; return 1
  fi
  timeout 120 gluster --mode=script volume start "$gl_vol" ||
    { log "gluster volume start failed"; return 1; }
  mapfile -t gl_pids < <(gluster_pids_of_vol "$gl_vol")
  watch=""
  for pid in "${gl_pids[@]}"; do
    case "$(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null)" in
      *--brick-name*" $d/b1 "*) watch="$watch${watch:+,}$pid=brick1" ;;
      *--brick-name*" $d/b2 "*) watch="$watch${watch:+,}$pid=brick2" ;;
      *--brick-name*" $d/b3 "*) watch="$watch${watch:+,}$pid=brick3" ;;
      *glustershd*) watch="$watch${watch:+,}$pid=self-heal" ;;
      *) watch="$watch${watch:+,}$pid" ;;
    esac
  done
  for n in a b; do
    # mount.glusterfs forks the client and returns once it is mounted
    mount -t glusterfs "127.0.0.1:/$gl_vol" "$d/$n" || { log "mount $n failed"; return 1; }
    gl_mnts+=("$d/$n")
    wait_mount "$d/$n" || { log "mount $n did not show"; return 1; }
  done
  # the FUSE client processes: the glusterfs whose command line ends in
  # one of our mount points
  local f c
  for f in /proc/[0-9]*/cmdline; do
    c=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
    case "$c" in
      *glusterfs*" $d/"[ab]" ")
        pid=${f#/proc/}; pid=${pid%/cmdline}
        gl_client_pids+=("$pid")
        watch="$watch${watch:+,}$pid=mount-${c: -2:1}" ;;
    esac
  done
  log "gluster volume $gl_vol up; watching PIDs $watch"
  run_bench gluster "$d/a" "$d/b" ${watch:+--watch-pid "$watch"}
}
if ((gluster)); then
  run_gluster || log "warning: the GlusterFS column failed; see above"
  cleanup_gluster
  rm -rf "$work/gl"
fi

# ---- the table ----
mkdir -p "$(dirname "$out")"
gver=$(gluster --version 2>/dev/null | head -1 || true)
python3 - "$work/results" "$out" "${scale[*]} ${extra[*]}" "$gver" <<'PY'
import json, os, platform, subprocess, sys, time

resdir, out, scale, gver = sys.argv[1:5]
cols = ["local", "replicafs", "gluster"]
runs = {}
for c in cols:
    p = os.path.join(resdir, c + ".json")
    if os.path.exists(p):
        with open(p) as f:
            runs[c] = json.load(f)

order = ["create", "stat_warm", "stat_cold", "read_warm", "read_cold",
         "readdir", "readdir_cold", "big_write", "big_read_cold",
         "xnode_create", "xnode_update", "delete"]
# issue #6 targets: (against, kind, bound); ratio = replicafs / against
targets = {
    "create": [("gluster", ">=", 10), ("local", ">=", 0.4)],
    "stat_warm": [("local", ">=", 0.5)],
    "read_warm": [("local", ">=", 0.4)],
    "read_cold": [("local", ">=", 0.5)],
    "readdir": [("local", ">=", 0.2)],
    "big_write": [("gluster", ">=", 1.2)],
    "big_read_cold": [("local", ">=", 0.8)],
    "delete": [("gluster", ">=", 10)],
    "xnode_update": [("ms", "<=", 10)],
}

def phase(c, name):
    r = runs.get(c)
    if not r:
        return None
    for p in r["phases"]:
        if p["phase"] == name:
            return p
    return None

def fmt(v):
    if v is None:
        return "n/a"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"

def cell(p):
    if p is None:
        return "n/a"
    s = fmt(p["rate"])
    if p.get("errors"):
        s += f" ({p['errors']} errors!)"
    if p.get("cold") is False:
        s += " (warm: not root)"
    if p.get("timeouts"):
        s += f" ({p['timeouts']} timeouts)"
    return s

def ratio(a, b):
    if a is None or b is None or not b["rate"] or a.get("errors"):
        return "n/a"
    q = a["rate"] / b["rate"]
    if q >= 100:
        return f"{q:,.0f}×"
    return f"{q:.2f}×" if q >= 1 else f"{q:.2g}×"

def target(name):
    t = targets.get(name)
    if not t:
        return "", ""
    words, met = [], []
    r = phase("replicafs", name)
    for against, kind, bound in t:
        if against == "ms":
            words.append(f"median {kind.replace('<=', '≤')} {bound} ms")
            if r is not None and not r.get("errors"):
                met.append(r["rate"] <= bound)
            continue
        words.append(f"{kind.replace('>=', '≥')} {bound}× {against}")
        o = phase(against, name)
        if r is not None and o is not None and o["rate"] and not r.get("errors"):
            met.append(r["rate"] / o["rate"] >= bound)
    verdict = "" if r is None or len(met) != len(t) else \
        ("yes" if all(met) else "**no**")
    return ", ".join(words), verdict

units = {}
for c in runs.values():
    for p in c["phases"]:
        units[p["phase"]] = p["unit"].replace("ms_median", "ms, median")

lines = []
cfg = next(iter(runs.values()))["config"] if runs else {}
lines.append(f"# replicafs benchmark, {time.strftime('%Y-%m-%d %H:%M')}")
lines.append("")
lines.append(f"Machine: {os.cpu_count()} cores, "
             f"{platform.system()} {platform.release()}; "
             f"{gver or 'GlusterFS not run'}.  Scale: "
             + ", ".join(f"{k}={v}" for k, v in cfg.items())
             + f".  bench-portal options: `{scale.strip() or '(defaults)'}`.")
lines.append("Rates are per second (higher is better) except the xnode rows, "
             "which are median milliseconds until mount B reads what mount A "
             "wrote (lower is better; for local, A and B are one directory).")
lines.append("Load average (1/5/15 min) at the start and end of each column: "
             + "; ".join(f"{c} {runs[c].get('loadavg_start', '?')} → "
                         f"{runs[c].get('loadavg_end', '?')}"
                         for c in cols if c in runs) + ".")
lines.append("")
lines.append("| phase (unit) | local | replicafs | gluster | replicafs/local "
             "| replicafs/gluster | gluster/local | target (issue #6) | met |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---|---|")
for name in order:
    ps = {c: phase(c, name) for c in cols}
    if all(v is None for v in ps.values()):
        continue
    t, met = target(name)
    lines.append(f"| {name} ({units.get(name, '')}) | {cell(ps['local'])} | "
                 f"{cell(ps['replicafs'])} | {cell(ps['gluster'])} | "
                 f"{ratio(ps['replicafs'], ps['local'])} | "
                 f"{ratio(ps['replicafs'], ps['gluster'])} | "
                 f"{ratio(ps['gluster'], ps['local'])} | {t} | {met} |")
mem = [(c, m) for c in cols if c in runs for m in runs[c].get("memory", [])]
if mem:
    lines.append("")
    lines.append("Memory (peak VmRSS sampled every 50 ms during the run; "
                 "VmHWM over the process's life):")
    lines.append("")
    lines.append("| column | process | pid | peak RSS MB | VmHWM MB |")
    lines.append("|---|---|---:|---:|---:|")
    for c, m in mem:
        who = f"{m.get('label') or '?'} ({m['comm']})"
        lines.append(f"| {c} | {who} | {m['pid']} | "
                     f"{m['rss_peak_kb'] / 1024:.1f} | {m['vmhwm_kb'] / 1024:.1f} |")
ino = os.path.join(resdir, "inodes.txt")
if os.path.exists(ino):
    lines.append("")
    with open(ino) as f:
        lines.extend(l.rstrip() for l in f)
    lines.append("")
    lines.append("Target (issue #6): a mount holding 200,000 cached inodes "
                 "stays under 200 MB RSS.")
lines.append("")
lines.append("Raw phase lines:")
lines.append("")
lines.append("```")
for c in cols:
    p = os.path.join(resdir, c + ".txt")
    if os.path.exists(p):
        with open(p) as f:
            for l in f:
                lines.append(f"[{c}] {l.rstrip()}")
lines.append("```")
text = "\n".join(lines) + "\n"
with open(out, "w") as f:
    f.write(text)
print(text)
PY
log "table written to $out"
