#!/usr/bin/env bash
# kill -9 of one brick under load, restarted after a while: quorum holds
# throughout, so the application sees no error (--strict), and nothing
# acknowledged is lost or wrong through either mount.
source "$(dirname "$0")/lib.sh"
fo_start
wl_start a 20 $(fo_strict)
sleep 5
log "kill -9 brick 2"
brick_kill 2 KILL
sleep 6
log "restart brick 2"
brick_start 2
wl_wait a || fail "workload saw an error with quorum up: $(tail -n 5 "$T/wl-a.log")"
log "acknowledged: $(wl_acked a)"
fo_verify
log PASS
