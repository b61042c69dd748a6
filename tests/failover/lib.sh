# Helpers for the failover scenarios (sourced, never run).  Adds to
# tests/integration/lib.sh: a volume of 3 bricks and two mounts (ping
# timeout 2 s), the workload on both mounts, and the verify step, which
# checks the mounts now and the replicas only after a heal that succeeded.
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

WL=$RFS_BIN_DIR/workload
declare -a WL_LOGS=()
FO_SEED=${FO_SEED:-$RANDOM}

# Strict by default: quorum-holding scenarios fail on any application error
# (--strict) and every read-back across mounts is checked.  FO_STRICT=0
# relaxes both, for chasing one bug at a time.
if [ "${FO_STRICT:-1}" = 1 ]; then
    FO_RUN_FLAGS=()
else
    FO_RUN_FLAGS=(--no-read-check)
fi
# fo_strict: the flag that makes quorum-holding scenarios fail on any error.
fo_strict() { [ "${FO_STRICT:-1}" = 1 ] && echo --strict || true; }

# fo_start: 3 fresh bricks, mounts m1 and m2.
fo_start() {
    volume_start
    mount_volume m1 "ping-timeout=2"
    mount_volume m2 "ping-timeout=2"
    log "volume up: bricks ${BRICK_PORT[*]}, seed $FO_SEED"
    [ "${FO_STRICT:-1}" = 1 ] ||
        log "FO_STRICT=0: --strict and read-back checks OFF"
}

# wl_start NAME SECONDS [ARGS...]: the workload on both mounts in the
# background; its PID in WL_PID_<NAME>.  Its log is $T/wl-NAME.txt (not
# .log: the cleanup tails *.log, and its stderr goes to $T/wl-NAME.log).
wl_start() {
    local name=$1 secs=$2 pid
    shift 2
    "$WL" run --mount "$T/m1" --mount "$T/m2" --log "$T/wl-$name.txt" \
        --threads 4 --seconds "$secs" --seed "$FO_SEED" --max-size 262144 "${FO_RUN_FLAGS[@]}" \
        "$@" >"$T/wl-$name.log" 2>&1 &
    pid=$!
    OTHER_PIDS+=("$pid")
    WL_LOGS+=("$T/wl-$name.txt")
    printf -v "WL_PID_$name" %s "$pid"
}

# wl_wait NAME: 0 if the workload exited 0.
wl_wait() {
    local v="WL_PID_$1"
    wait "${!v}"
}

# wl_acked NAME: operations acknowledged so far in its log.
wl_acked() { grep -c '^A ' "$T/wl-$1.txt" 2>/dev/null || true; }

# heal_built: replicafs heal exists.
heal_built() { "$RFS_BIN_DIR/replicafs" heal --help >/dev/null 2>&1; }

# fo_verify: every acknowledged op through both mounts (no loss, no wrong
# bytes, no resurrection, no partial file); then, if heal exists, heal and
# check every brick equals the mount.
fo_verify() {
    local args=() l i
    for l in "${WL_LOGS[@]}"; do args+=(--log "$l"); done
    log "verify through the mounts (${#WL_LOGS[@]} logs)"
    "$WL" verify "${args[@]}" --mount "$T/m1" --mount "$T/m2" \
        >"$T/verify-mounts.out" 2>&1 ||
        { cat "$T/verify-mounts.out" >&2; fail "verify through the mounts"; }
    tail -n 2 "$T/verify-mounts.out" >&2
    if ! heal_built; then
        log "SKIP replica check: replicafs heal not built"
        return 0
    fi
    if [ "${FO_NO_REPLICA_CHECK:-0}" = 1 ]; then
        log "SKIP replica check: FO_NO_REPLICA_CHECK=1 (see the script's header)"
        return 0
    fi
    log "heal"
    # Bounded well inside the test's timeout, so that a heal that cannot
    # finish is reported with what it tried and what is left.
    if ! "$RFS_BIN_DIR/replicafs" heal --wait --timeout "${FO_HEAL_TIMEOUT:-120}" \
            --verbose --volume "$VOL" >"$T/heal.log" 2>&1; then
        sort "$T/heal.log" | uniq -c | sort -rn | head -n 20 >&2
        "$RFS_BIN_DIR/replicafs" heal --list --volume "$VOL" 2>&1 |
            grep -v " stale " | head -n 10 >&2 || true
        fail "replicafs heal --wait failed: $(tail -n 5 "$T/heal.log")"
    fi
    for ((i = 1; i <= NBRICKS; i++)); do args+=(--brick "$T/brick$i"); done
    "$WL" verify "${args[@]}" --mount "$T/m1" --mount "$T/m2" \
        >"$T/verify-bricks.out" 2>&1 ||
        { cat "$T/verify-bricks.out" >&2; fail "replicas differ after heal"; }
    tail -n 2 "$T/verify-bricks.out" >&2
}

# expect_erofs: a write through each mount is refused with EROFS.
expect_erofs() {
    local m out
    for m in m1 m2; do
        out=$(python3 - "$T/$m" <<'PY' 2>&1
import errno, os, sys
try:
    fd = os.open(os.path.join(sys.argv[1], "erofs-probe"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"x"); os.close(fd)
    print("accepted")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
PY
)
        [ "$out" = EROFS ] || fail "a write through $m without quorum gave '$out', not EROFS"
    done
}

# fo_blame_check BAD REF: every regular file whose copy on brick BAD differs
# from brick REF's (other bytes, missing, or extra on BAD) is blamed: some
# other brick has pending[BAD] > 0 on the file or on its folder, so heal
# knows to repair it.  A silent divergence fails (exit 1, listed).  Prints
# "blame: ... differing and blamed: N ..." for the caller to check that the
# fault did make bricks differ.  Run it when the volume is quiet.
fo_blame_check() {
    python3 - "$T" "$NBRICKS" "$1" "$2" <<'PY'
import os, struct, sys
t, n, bad, ref = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
root = {i: os.path.realpath("%s/brick%d" % (t, i)) for i in range(1, n + 1)}

def pend(p, i):
    try:
        v = os.getxattr(p, "trusted.rfs.pending", follow_symlinks=False)
    except OSError:
        return 0
    k = len(v) // 8
    return struct.unpack("<%dq" % k, v[:8 * k])[i - 1] if i <= k else 0

def blamed(rel):
    for i in root:
        if i == bad:
            continue
        for p in (os.path.join(root[i], rel), os.path.join(root[i], os.path.dirname(rel))):
            if os.path.lexists(p) and pend(p, bad) > 0:
                return True
    return False

def files(r):
    out = set()
    for d, dirs, fs in os.walk(r):
        if d == r and ".replicafs" in dirs:
            dirs.remove(".replicafs")
        for f in fs:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out.add(os.path.relpath(p, r))
    return out

def data(p):
    try:
        with open(p, "rb") as f:
            return f.read()
    except OSError:
        return None

fb, fr = files(root[bad]), files(root[ref])
same = diff_blamed = 0
silent = []
for rel in sorted(fb | fr):
    pb, pr = os.path.join(root[bad], rel), os.path.join(root[ref], rel)
    if rel in fb and rel in fr and data(pb) == data(pr):
        same += 1
    elif blamed(rel):
        diff_blamed += 1
    else:
        what = ("missing on brick %d" % bad) if rel not in fb else \
               ("extra on brick %d" % bad) if rel not in fr else \
               "size %d on brick %d, %d on brick %d" % (
                   os.path.getsize(pb), bad, os.path.getsize(pr), ref)
        silent.append("%s: %s" % (rel, what))
print("blame: files equal on bricks %d and %d: %d; differing and blamed: %d; "
      "differing and NOT blamed: %d" % (bad, ref, same, diff_blamed, len(silent)))
for s in silent[:20]:
    print("  NOT BLAMED " + s)
sys.exit(1 if silent else 0)
PY
}

# ---- a partition of mount 1 from brick 2 (network namespaces) ----
#
#   root ns: bricks 1 and 3 on 10.R.1.1, mount 2 (and the workload)
#      |  \__ veth 10.R.2.1 <-> 10.R.2.2 (root <-> ns B)
#      |          ns B: brick 2 on 10.R.9.2 (its lo)
#   veth 10.R.1.1 <-> 10.R.1.2             |
#      |            veth 10.R.3.2 (B) <-> 10.R.3.1 (M)
#   ns M: mount 1; route to 10.R.9.2 via 10.R.3.2 (never via root)
#
# Mount 1 runs under `nsenter --net` only, so its FUSE mount stays in our
# mount namespace.  fo_pm_cut downs ns B's end of the M <-> B link: mount
# 1's packets to brick 2 vanish (no reset, as in a real partition) while
# mount 2 reaches brick 2 through root <-> B.  R is random (10.20-219.x.x)
# and not in use here.  fo_pm_start installs its own EXIT trap, which takes
# the namespaces down and then runs rfs_cleanup.

# fo_pm_cleanup: the EXIT trap of fo_pm_start.
fo_pm_cleanup() {
    local rc=$?
    set +e
    if mountpoint -q "$T/m1" 2>/dev/null; then
        fusermount3 -u "$T/m1" 2>/dev/null || fusermount3 -uz "$T/m1" 2>/dev/null
    fi
    if [ -n "${BRICK_PID[2]:-}" ]; then
        kill -CONT "${BRICK_PID[2]}" 2>/dev/null
        kill -9 "${BRICK_PID[2]}" 2>/dev/null
        wait "${BRICK_PID[2]}" 2>/dev/null
        BRICK_PID[2]=
    fi
    [ -n "${PM_BRICK2:-}" ] && ip route del "$PM_BRICK2/32" 2>/dev/null
    ip link del "$PM_VRM0" 2>/dev/null
    ip link del "$PM_VRB0" 2>/dev/null
    ip netns del "$PM_NSM" 2>/dev/null
    ip netns del "$PM_NSB" 2>/dev/null
    (exit "$rc")
    rfs_cleanup
}

pm_in_m() { nsenter --net="/run/netns/$PM_NSM" "$@"; }
pm_in_b() { nsenter --net="/run/netns/$PM_NSB" "$@"; }
pm_reachable() { bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# fo_pm_start: the namespaces and links above, 3 fresh bricks, mount 1 in
# ns M and mount 2 in the root namespace (options $FO_PM_M1_OPTS and
# $FO_PM_M2_OPTS, default ping-timeout=2), all bricks seen up by both.
fo_pm_start() {
    local r i host
    for _ in $(seq 20); do
        r=$((RANDOM % 200 + 20))
        ip -o addr | grep -q "inet 10\.$r\." || break
    done
    PM_NET=10.$r
    PM_NSM=rfs-pm-m$$ PM_NSB=rfs-pm-b$$
    PM_VRM0=rpm$$a PM_VRM1=rpm$$b # root <-> M
    PM_VRB0=rpb$$a PM_VRB1=rpb$$b # root <-> B
    PM_VMB0=rmb$$a PM_VMB1=rmb$$b # M <-> B
    PM_BRICK2=$PM_NET.9.2
    trap fo_pm_cleanup EXIT
    ip netns add "$PM_NSM" || fail "ip netns add"
    ip netns add "$PM_NSB" || fail "ip netns add"
    ip link add "$PM_VRM0" type veth peer name "$PM_VRM1" netns "$PM_NSM" || fail "veth root-M"
    ip link add "$PM_VRB0" type veth peer name "$PM_VRB1" netns "$PM_NSB" || fail "veth root-B"
    pm_in_m ip link add "$PM_VMB0" type veth peer name "$PM_VMB1" netns "$PM_NSB" || fail "veth M-B"
    ip addr add "$PM_NET.1.1/30" dev "$PM_VRM0"
    ip addr add "$PM_NET.2.1/30" dev "$PM_VRB0"
    ip link set "$PM_VRM0" up
    ip link set "$PM_VRB0" up
    pm_in_m ip addr add "$PM_NET.1.2/30" dev "$PM_VRM1"
    pm_in_m ip addr add "$PM_NET.3.1/30" dev "$PM_VMB0"
    pm_in_m ip link set lo up
    pm_in_m ip link set "$PM_VRM1" up
    pm_in_m ip link set "$PM_VMB0" up
    pm_in_b ip addr add "$PM_NET.2.2/30" dev "$PM_VRB1"
    pm_in_b ip addr add "$PM_NET.3.2/30" dev "$PM_VMB1"
    pm_in_b ip addr add "$PM_BRICK2/32" dev lo
    pm_in_b ip link set lo up
    pm_in_b ip link set "$PM_VRB1" up
    pm_in_b ip link set "$PM_VMB1" up
    ip route add "$PM_BRICK2/32" via "$PM_NET.2.2" || fail "route root -> brick 2"
    pm_in_m ip route add "$PM_BRICK2/32" via "$PM_NET.3.2" || fail "route M -> brick 2"

    volume_create
    for i in 1 2 3; do
        host=$PM_NET.1.1
        [ "$i" = 2 ] && host=$PM_BRICK2
        sed -i "s/^address = 127.0.0.1:${BRICK_PORT[$i]}\$/address = $host:${BRICK_PORT[$i]}/" "$VOL"
        grep -q "^address = $host:${BRICK_PORT[$i]}\$" "$VOL" || fail "volume file not rewritten"
        mkdir -p "$T/brick$i"
        if [ "$i" = 2 ]; then
            # nsenter execs the daemon, so $! is its PID (through a shell
            # function it would be a subshell's).
            nsenter --net="/run/netns/$PM_NSB" "$RFS_BIN_DIR/replicafsd" --volume "$VOL" \
                --brick 2 --dir "$T/brick2" --listen "$host:${BRICK_PORT[2]}" \
                --foreground --init >>"$T/brick2.log" 2>&1 &
        else
            "$RFS_BIN_DIR/replicafsd" --volume "$VOL" --brick "$i" --dir "$T/brick$i" \
                --listen "$host:${BRICK_PORT[$i]}" --foreground --init >>"$T/brick$i.log" 2>&1 &
        fi
        BRICK_PID[$i]=$!
        wait_for 30 pm_reachable "$host" "${BRICK_PORT[$i]}" ||
            fail "brick $i not reachable at $host:${BRICK_PORT[$i]}"
        pm_in_m bash -c "exec 3<>/dev/tcp/$host/${BRICK_PORT[$i]}" 2>/dev/null ||
            fail "ns M does not reach brick $i"
    done
    mkdir -p "$T/m1"
    nsenter --net="/run/netns/$PM_NSM" "$RFS_BIN_DIR/mount.replicafs" "$VOL" "$T/m1" -f \
        -o "${FO_PM_M1_OPTS:-ping-timeout=2}" >>"$T/m1.log" 2>&1 &
    MOUNTS+=("$T/m1")
    MOUNT_PIDS+=("$!")
    wait_for 60 mountpoint -q "$T/m1" || fail "mount m1 (in ns M) did not come up"
    mount_volume m2 "${FO_PM_M2_OPTS:-ping-timeout=2}"
    for i in m1 m2; do
        wait_for 30 count_ge 1 "$T/$i.log" "all 3 bricks .* are up" || fail "$i did not see all 3 bricks"
    done
    log "volume up: bricks 1, 3 on $PM_NET.1.1, brick 2 on $PM_BRICK2 (ns B), m1 in ns M; seed $FO_SEED"
}

# fo_pm_cut: mount 1 loses brick 2 (after the ping timeout it is down).
fo_pm_cut() {
    log "cut mount 1 from brick 2 ($PM_VMB1 down in ns B)"
    pm_in_b ip link set "$PM_VMB1" down
}

# fo_pm_restore: the link back (its routes restored if they went).
fo_pm_restore() {
    log "restore the link from mount 1 to brick 2"
    pm_in_b ip link set "$PM_VMB1" up
    pm_in_m ip route replace "$PM_BRICK2/32" via "$PM_NET.3.2"
}

# ---- one brick on a small tmpfs ----

# fo_disk_cleanup: the EXIT trap of fo_disk_start: brick 1 ends before its
# tmpfs is unmounted (lazily if something still holds it); with RFS_KEEP=1
# a failed test keeps a copy of the brick.
fo_disk_cleanup() {
    local rc=$?
    set +e
    [ "$rfs_failed" = 1 ] && rc=1
    if [ -n "${BRICK_PID[1]:-}" ]; then
        kill -CONT "${BRICK_PID[1]}" 2>/dev/null
        kill "${BRICK_PID[1]}" 2>/dev/null
        for _ in $(seq 50); do kill -0 "${BRICK_PID[1]}" 2>/dev/null || break; sleep 0.1; done
        kill -9 "${BRICK_PID[1]}" 2>/dev/null
        wait "${BRICK_PID[1]}" 2>/dev/null
        BRICK_PID[1]=
    fi
    if [ "$rc" != 0 ] && [ "${RFS_KEEP:-0}" = 1 ] && [ -d "$FD_DISK/brick" ]; then
        cp -a "$FD_DISK/brick" "$T/brick1-kept" && rm -f "$T/brick1" &&
            mv "$T/brick1-kept" "$T/brick1"
    fi
    if mountpoint -q "$FD_DISK" 2>/dev/null; then
        umount "$FD_DISK" 2>/dev/null || umount -l "$FD_DISK"
    fi
    (exit "$rc")
    rfs_cleanup
}

# fo_disk_start MB FREE_KB: brick 1 on a tmpfs of MB MiB mounted at
# $FD_DISK ($T/brick1 is a symlink to its brick/ folder), a ballast file
# beside the brick leaving about FREE_KB KiB; bricks 2 and 3 on the normal
# disk; mounts m1 and m2.
fo_disk_start() {
    local mb=$1 free=$2 i
    FD_DISK=$T/disk1
    mkdir -p "$FD_DISK"
    trap fo_disk_cleanup EXIT
    mount -t tmpfs -o "size=${mb}m,mode=0755" rfs-fo-disk "$FD_DISK" || fail "mount tmpfs"
    mkdir "$FD_DISK/brick"
    ln -s "$FD_DISK/brick" "$T/brick1"
    dd if=/dev/zero of="$FD_DISK/ballast" bs=1k count=$((mb * 1024 - free)) status=none ||
        fail "ballast"
    volume_create
    for i in 1 2 3; do brick_start "$i" --init; done
    mount_volume m1 "ping-timeout=2"
    mount_volume m2 "ping-timeout=2"
    log "volume up: bricks ${BRICK_PORT[*]}, seed $FO_SEED; brick 1 on a $mb MiB tmpfs, $(fo_disk_avail) KiB free"
}

# fo_disk_avail: KiB free on brick 1's tmpfs.
fo_disk_avail() { df -k --output=avail "$FD_DISK" | tail -n 1 | tr -d ' '; }
# fo_disk_full: less than 512 KiB free.
fo_disk_full() { [ "$(fo_disk_avail)" -lt 512 ]; }
