#!/usr/bin/env bash
# A brick hung with SIGSTOP for longer than the ping timeout (2 s), then
# resumed: operations may stall up to the ping timeout but the application
# sees no error (--strict) and nothing acknowledged is lost.
source "$(dirname "$0")/lib.sh"
fo_start
wl_start a 20 $(fo_strict)
sleep 5
log "SIGSTOP brick 3"
brick_kill 3 STOP
sleep 7
log "SIGCONT brick 3"
brick_kill 3 CONT
wl_wait a || fail "workload saw an error with quorum up: $(tail -n 5 "$T/wl-a.log")"
log "acknowledged: $(wl_acked a)"
fo_verify
log PASS
