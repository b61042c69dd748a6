# Helpers for the shell integration tests (sourced, never run).
#
# Every test gets: its own temp dir ($T), free ports on 127.0.0.1, a volume
# of 3 bricks started with --init, mounts of it (two "web nodes"), a trap
# that unmounts (fusermount3 -u, lazy -uz as fallback) and kills only the
# PIDs it started, a watchdog for the whole test, and a repro line on
# failure.
#
# Env: RFS_BIN_DIR (build dir with replicafsd, mount.replicafs, replicafs),
#      RFS_SRC_DIR (source tree), RFS_TEST_TIMEOUT (s, default 600),
#      RFS_KEEP=1 keeps $T after a failure for a look.

set -euo pipefail

: "${RFS_BIN_DIR:?RFS_BIN_DIR must name the build directory}"
: "${RFS_SRC_DIR:?RFS_SRC_DIR must name the source directory}"

RFS_TEST=$(basename "$0" .sh)
RFS_TEST_TIMEOUT=${RFS_TEST_TIMEOUT:-600}
T=$(mktemp -d "/tmp/rfs-$RFS_TEST.XXXXXX")
VOL=$T/vol.vol
NBRICKS=3
declare -a BRICK_PID=() BRICK_PORT=()
declare -a MOUNTS=() MOUNT_PIDS=() OTHER_PIDS=()
WATCHDOG_PID=
rfs_failed=0

log() { printf '[%s %s] %s\n' "$(date +%T)" "$RFS_TEST" "$*" >&2; }

fail() {
    rfs_failed=1
    printf 'FAIL: %s: %s\n' "$RFS_TEST" "$*" >&2
    exit 1
}

# Assert: check CMD... runs and exits 0, else fail with its description.
check() {
    local what=$1
    shift
    "$@" || fail "$what"
}

rfs_cleanup() {
    local rc=$? p m
    set +e
    trap - EXIT INT TERM
    [ "$rfs_failed" = 1 ] && rc=1
    [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
    # Stopped bricks must run again to die.
    for p in "${BRICK_PID[@]}" "${OTHER_PIDS[@]}"; do
        [ -n "$p" ] && kill -CONT "$p" 2>/dev/null
    done
    for p in "${OTHER_PIDS[@]}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null
    done
    for m in "${MOUNTS[@]}"; do
        if mountpoint -q "$m" 2>/dev/null; then
            fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
        fi
    done
    for p in "${MOUNT_PIDS[@]}" "${BRICK_PID[@]}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null
    done
    for p in "${MOUNT_PIDS[@]}" "${BRICK_PID[@]}" "${OTHER_PIDS[@]}"; do
        [ -n "$p" ] || continue
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    # A sanitizer build reports into the daemons' logs: that fails the test.
    if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T"/*.log \
        >/dev/null 2>&1; then
        echo "FAIL: $RFS_TEST: sanitizer report in $(grep -l -E \
            "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T"/*.log)" >&2
        rc=1
    fi
    if [ "$rc" != 0 ]; then
        echo "---- $RFS_TEST failed (rc $rc); logs from $T ----" >&2
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $(basename "$f") (last 30 lines) ----" >&2
            tail -n 30 "$f" >&2
        done
        echo "repro: RFS_BIN_DIR=$RFS_BIN_DIR RFS_SRC_DIR=$RFS_SRC_DIR RFS_KEEP=1 bash $0" >&2
    fi
    python3 "$RFS_SRC_DIR/tests/ports.py" release $$
    if [ "$rc" != 0 ] && [ "${RFS_KEEP:-0}" = 1 ]; then
        echo "kept $T" >&2
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap rfs_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The watchdog: after the timeout, detach the mounts (so no syscall stays
# blocked on them) and end the test, which runs the cleanup.  Its sleep
# must neither outlive it nor hold the test's output open (ctest waits for
# the pipe to close).
(
    set +e
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$RFS_TEST_TIMEOUT" </dev/null >/dev/null 2>&1 &
    sp=$!
    wait "$sp"
    echo "TIMEOUT: $RFS_TEST exceeded ${RFS_TEST_TIMEOUT}s" >&2
    for m in "$T"/m*; do fusermount3 -uz "$m" 2>/dev/null; done
    kill -TERM $$ 2>/dev/null
    # bash runs its TERM trap only once the foreground command ends: end
    # the test shell's own children (not this watchdog).
    for c in $(ps -o pid= --ppid $$); do
        [ "$c" != "$BASHPID" ] && kill -TERM "$c" 2>/dev/null
    done
) &
WATCHDOG_PID=$!

# Wait up to $1 seconds for "$2..." to succeed.
wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# count_ge N FILE PATTERN: at least N lines of FILE match PATTERN (for
# wait_for, which re-runs its command; a $(...) in its arguments would not).
count_ge() { test "$(grep -c -- "$3" "$2" 2>/dev/null)" -ge "$1"; }

# The mount NAME has seen brick N come up at least TIMES times.
brick_seen_up() { count_ge "$3" "$T/$1.log" "brick $2 .* is up"; }

# The mount NAME has seen brick N go down.
brick_seen_down() { count_ge 1 "$T/$1.log" "brick $2 .* is down"; }

# free_ports N: N distinct free ports on 127.0.0.1, claimed for this test
# until it ends, so that a test running beside it picks none of them
# (tests/ports.py says why bind-to-port-0 was not enough).
free_ports() { python3 "$RFS_SRC_DIR/tests/ports.py" claim "$1" $$; }
free_port() { free_ports 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Write $VOL and its key for $NBRICKS bricks on fresh ports.
volume_create() {
    local i ports
    read -r -a ports <<<"$(free_ports "$NBRICKS")"
    "$RFS_BIN_DIR/replicafs" keygen >"$T/vol.key"
    {
        echo "[volume]"
        echo "name = testvol"
        echo "replica = $NBRICKS"
        echo "secret-file = vol.key"
        for ((i = 1; i <= NBRICKS; i++)); do
            BRICK_PORT[$i]=${ports[$((i - 1))]}
            echo "[brick.$i]"
            echo "address = 127.0.0.1:${BRICK_PORT[$i]}"
        done
    } >"$VOL"
}

# brick_start N [--init]: start brick N in the foreground (its PID kept).
brick_start() {
    local i=$1
    shift
    mkdir -p "$T/brick$i"
    # RFS_BRICK_ARGS: more replicafsd options for every brick of the test
    # (tests/CMakeLists.txt runs some tests again with --ring-metadata).
    # shellcheck disable=SC2086
    "$RFS_BIN_DIR/replicafsd" --volume "$VOL" --brick "$i" --dir "$T/brick$i" \
        --listen "127.0.0.1:${BRICK_PORT[$i]}" --foreground ${RFS_BRICK_ARGS:-} "$@" \
        >>"$T/brick$i.log" 2>&1 &
    BRICK_PID[$i]=$!
    wait_for 30 port_open "${BRICK_PORT[$i]}" ||
        fail "brick $i did not start listening on ${BRICK_PORT[$i]}"
}

# brick_kill N [SIG]: signal brick N (default KILL) and, unless STOP, reap it.
brick_kill() {
    local i=$1 sig=${2:-KILL}
    kill "-$sig" "${BRICK_PID[$i]}"
    if [ "$sig" != STOP ] && [ "$sig" != CONT ]; then
        wait "${BRICK_PID[$i]}" 2>/dev/null || true
        BRICK_PID[$i]=
    fi
}

# bricks_start_metrics: start every brick with --init and a Prometheus
# endpoint (--metrics) on a port of its own, MPORT[N], none of them a
# brick's port.
declare -a MPORT=()
bricks_start_metrics() {
    local i ports
    read -r -a ports <<<"$(free_ports "$NBRICKS")"
    for ((i = 1; i <= NBRICKS; i++)); do
        MPORT[$i]=${ports[$((i - 1))]}
        brick_start "$i" --init --metrics "127.0.0.1:${MPORT[$i]}"
    done
}

# brick_ops N OP: requests of type OP (lower case: write, readdir...) that
# brick N (all: every brick, summed) answered since it started
# (bricks_start_metrics).
brick_ops() {
    local ports=${MPORT[*]}
    [ "$1" = all ] || ports=${MPORT[$1]}
    python3 - "$2" $ports <<'PY'
import re, sys, urllib.request
n = 0
for port in sys.argv[2:]:
    body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port,
                                  timeout=10).read().decode()
    m = re.search(r'^replicafs_ops_total\{op="%s"\} (\d+)' % sys.argv[1],
                  body, re.M)
    n += int(m.group(1)) if m else 0
print(n)
PY
}

# The usual start: a volume of 3 fresh bricks.
volume_start() {
    local i
    volume_create
    for ((i = 1; i <= NBRICKS; i++)); do
        brick_start "$i" --init
    done
}

# mount_volume NAME [OPTS]: mount at $T/NAME with -f (so its PID is ours to
# kill).  Call it directly, not in $(...): the PID must reach the cleanup.
mount_volume() {
    local name=$1 opts=${2:-} dir=$T/$1 pid
    mkdir -p "$dir"
    "$RFS_BIN_DIR/mount.replicafs" "$VOL" "$dir" -f ${opts:+-o "$opts"} \
        >>"$T/$name.log" 2>&1 &
    pid=$!
    MOUNTS+=("$dir")
    MOUNT_PIDS+=("$pid")
    wait_for 60 mountpoint -q "$dir" || fail "mount $name did not come up"
}

unmount_volume() {
    local dir=$1
    fusermount3 -u "$dir" 2>/dev/null || fusermount3 -uz "$dir"
}

# The brick's copy of a path (relative to the volume root).
brick_path() { echo "$T/brick$1/$2"; }

# Print a replication xattr (hex) of a brick object, or nothing.
brick_xattr() {
    python3 - "$1" "$2" <<'EOF'
import os, sys
try:
    print(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False).hex())
except OSError:
    pass
EOF
}

# Sum of the pending counters on a brick object (0 when none).
brick_pending_sum() {
    python3 - "$1" <<'EOF'
import os, struct, sys
try:
    v = os.getxattr(sys.argv[1], "trusted.rfs.pending", follow_symlinks=False)
except OSError:
    print(0); sys.exit(0)
n = len(v) // 8
print(sum(abs(x) for x in struct.unpack("<%dq" % n, v[:8 * n])))
EOF
}

# pending[N] (1-based brick) on a brick object.
brick_pending_for() {
    python3 - "$1" "$2" <<'EOF'
import os, struct, sys
try:
    v = os.getxattr(sys.argv[1], "trusted.rfs.pending", follow_symlinks=False)
except OSError:
    print(0); sys.exit(0)
i = int(sys.argv[2]) - 1
n = len(v) // 8
print(struct.unpack("<%dq" % n, v[:8 * n])[i] if i < n else 0)
EOF
}

# The object id (hex) of a brick object.
brick_id() { brick_xattr "$1" trusted.rfs.id; }

# same_ids_on_bricks REL...: each path has one and the same id on every
# brick (one python run for many paths).
same_ids_on_bricks() {
    python3 - "$T" "$NBRICKS" "$@" <<'EOF'
import os, sys
t, n, rels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
bad = 0
for rel in rels:
    ids = set()
    for i in range(1, n + 1):
        try:
            ids.add(os.getxattr("%s/brick%d/%s" % (t, i, rel), "trusted.rfs.id",
                                follow_symlinks=False).hex())
        except OSError as e:
            ids.add("missing on brick %d (%s)" % (i, e.strerror))
    if len(ids) != 1:
        print("%s: %s" % (rel, sorted(ids)), file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
EOF
}

# A sanitizer build (ASan runs several times slower).
sanitizer_build() { nm "$RFS_BIN_DIR/mount.replicafs" 2>/dev/null | grep -q __asan_init; }

# Bytes of the running test's volume on every brick are the same as $1.
same_on_bricks() {
    local rel=$1 i
    for ((i = 1; i <= NBRICKS; i++)); do
        cmp -s "$(brick_path 1 "$rel")" "$(brick_path "$i" "$rel")" || return 1
    done
}

# brick_set_dirty BRICK REL: dirty = 1 and the heal index entry, as the brick
# does when a change starts (and keeps when it never ends).
brick_set_dirty() { brick_marks "$1" "$2" dirty 1; }
# brick_blame BRICK REL P1 P2 P3: the pending counters (for bricks 1..3)
# and the heal index entry, as a post-op that saw bricks miss a change.
brick_blame() { brick_marks "$1" "$2" pending "$3,$4,$5"; }
brick_marks() {
    python3 - "$T/brick$1" "$2" "$3" "$4" <<'PY'
import os, struct, sys
root, rel, what, val = sys.argv[1:5]
p = os.path.join(root, rel)
hi, lo = struct.unpack("<QQ", os.getxattr(p, "trusted.rfs.id"))
open(os.path.join(root, ".replicafs/heal", "%016x%016x" % (hi, lo)), "w").close()
v = [int(x) for x in val.split(",")]
os.setxattr(p, "trusted.rfs." + what, struct.pack("<%dq" % len(v), *v))
PY
}
# brick_add_extra BRICK REL [TEXT]: a new file there (TEXT and a newline)
# with a fresh id and its ids/ link: a create only that brick did.
brick_add_extra() {
    python3 - "$T/brick$1" "$2" "${3:-only on one brick}" <<'PY'
import os, struct, sys
root, rel = sys.argv[1], sys.argv[2]
p = os.path.join(root, rel)
with open(p, "w") as f:
    f.write(sys.argv[3] + "\n")
raw = os.urandom(16)
os.setxattr(p, "trusted.rfs.id", raw)
hi, lo = struct.unpack("<QQ", raw)
hx = "%016x%016x" % (hi, lo)
os.link(p, os.path.join(root, ".replicafs/ids", hx[:2], hx))
PY
}
