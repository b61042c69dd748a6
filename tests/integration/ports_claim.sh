#!/usr/bin/env bash
# The test port allocator (tests/ports.py): tests run two at a time, and a
# brick once failed with "address already in use" because its port, picked
# by binding port 0, came from the range outgoing connections also draw
# from.  Ports must come from below that range, two owners must never get
# the same port, and a dead owner's claims must be taken back.
source "$(dirname "$0")/lib.sh"

PY="python3 $RFS_SRC_DIR/tests/ports.py"
lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)

read -r -a mine <<<"$(free_ports 40)"
[ "${#mine[@]}" = 40 ] || fail "free_ports 40 gave ${#mine[@]} ports"
for p in "${mine[@]}"; do
    [ "$p" -lt "$lo" ] || fail "port $p is in the ephemeral range (from $lo)"
done

# Another owner, alive (a sleep of ours), asks for more while ours are held.
sleep 60 &
other=$!
OTHER_PIDS+=("$other")
read -r -a theirs <<<"$($PY claim 40 "$other")"
[ "${#theirs[@]}" = 40 ] || fail "the other owner got ${#theirs[@]} ports"
dups=$(printf '%s\n' "${mine[@]}" "${theirs[@]}" | sort | uniq -d | wc -l)
[ "$dups" = 0 ] || fail "$dups ports given to both owners"

# A claimed port nobody holds open yet is still not handed out again.
for p in "${theirs[@]}"; do
    [ "$(cat /tmp/rfs-ports/"$p")" = "$other" ] || fail "claim file of port $p"
done

# The other owner dies: its claims are free for the taking.
kill "$other"
wait "$other" 2>/dev/null || true
n=0
for p in "${theirs[@]}"; do
    [ -e /tmp/rfs-ports/"$p" ] && n=$((n + 1))
done
[ "$n" = 40 ] || fail "claims vanished before anyone asked ($n of 40 left)"
$PY release "$other"
for p in "${theirs[@]}"; do
    [ -e /tmp/rfs-ports/"$p" ] && fail "port $p still claimed after release"
done
for p in "${mine[@]}"; do
    [ "$(cat /tmp/rfs-ports/"$p")" = $$ ] || fail "release took our port $p"
done

# A claim left by a dead process (a crash skips the release) is reclaimed,
# and a live owner's is not.
p=${theirs[0]}
echo $$ >/tmp/rfs-ports/"$p"
rc=0
RFS_PORTS="$p-$p" $PY claim 1 "$other" 2>/dev/null || rc=$?
[ "$rc" != 0 ] || fail "port $p, claimed by a live owner, handed out again"
dead=$(sh -c 'echo $$')
echo "$dead" >/tmp/rfs-ports/"$p"
[ "$(RFS_PORTS="$p-$p" $PY claim 1 "$other")" = "$p" ] ||
    fail "a dead owner's claim on port $p was never taken back"
$PY release "$other"
log PASS
