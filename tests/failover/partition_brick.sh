#!/usr/bin/env bash
# A network partition of one brick from everyone: brick 2 runs in its own
# network namespace, reachable only over a veth pair (10.x addresses inside
# namespaces this test creates); the link is cut with `ip link set down`
# for longer than the ping timeout and then restored.  Quorum holds, so
# nothing acknowledged is lost, wrong, partial or resurrected.
source "$(dirname "$0")/lib.sh"
NS=rfs-fo-$$
VA=rfa$$ VB=rfb$$
NET=10.$((RANDOM % 200 + 20)).$((RANDOM % 250)).
# Runs before the standard cleanup: the brick in the namespace goes first,
# then the veth pair and the namespace, then everything else.
fo_netns_cleanup() {
    local rc=$?
    set +e
    if [ -n "${BRICK_PID[2]:-}" ]; then
        kill -CONT "${BRICK_PID[2]}" 2>/dev/null
        kill -9 "${BRICK_PID[2]}" 2>/dev/null
        wait "${BRICK_PID[2]}" 2>/dev/null
        BRICK_PID[2]=
    fi
    ip link del "$VA" 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    (exit "$rc")
    rfs_cleanup
}
trap fo_netns_cleanup EXIT

ip netns add "$NS" || fail "ip netns add"
ip link add "$VA" type veth peer name "$VB" || fail "ip link add veth"
ip link set "$VB" netns "$NS"
ip addr add "${NET}1/30" dev "$VA"
ip link set "$VA" up
ip netns exec "$NS" ip addr add "${NET}2/30" dev "$VB"
ip netns exec "$NS" ip link set "$VB" up
ip netns exec "$NS" ip link set lo up

volume_create
sed -i "s/^address = 127.0.0.1:${BRICK_PORT[2]}\$/address = ${NET}2:${BRICK_PORT[2]}/" "$VOL"
grep -q "${NET}2" "$VOL" || fail "volume file not rewritten"
brick_start 1 --init
brick_start 3 --init
mkdir -p "$T/brick2"
ip netns exec "$NS" "$RFS_BIN_DIR/replicafsd" --volume "$VOL" --brick 2 \
    --dir "$T/brick2" --listen "${NET}2:${BRICK_PORT[2]}" --foreground --init \
    >>"$T/brick2.log" 2>&1 &
BRICK_PID[2]=$!
wait_for 30 bash -c "exec 3<>/dev/tcp/${NET}2/${BRICK_PORT[2]}" 2>/dev/null ||
    fail "brick 2 not reachable at ${NET}2:${BRICK_PORT[2]}"
mount_volume m1 "ping-timeout=2"
mount_volume m2 "ping-timeout=2"
wait_for 30 brick_seen_up m1 2 1 || fail "m1 never saw brick 2"
wl_start a 20 $(fo_strict)
sleep 5
log "cut the link to brick 2 ($VA down)"
ip link set "$VA" down
sleep 6
log "restore the link"
ip link set "$VA" up
ip addr add "${NET}1/30" dev "$VA" 2>/dev/null || true
wl_wait a || fail "workload saw an error: $(grep workload: "$T/wl-a.log")"
check "the mounts saw brick 2 go down" grep -q "brick 2 .* is down" "$T/m1.log"
wait_for 30 brick_seen_up m1 2 2 || fail "m1 did not reconnect to brick 2"
log "acknowledged: $(wl_acked a)"
fo_verify
log PASS
