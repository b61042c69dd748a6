#!/usr/bin/env bash
# The kernel's directory cache (docs/client.md "FUSE details", ops.c
# invariant 6; issue #6, readdir):
#  - a listing of a folder that did not change is served by the kernel: no
#    READDIR reaches a brick (the bricks' request counters say so);
#  - every change of the folder's names made through mount A (create,
#    unlink, rename in, out and within, mkdir, rmdir, link, symlink) shows
#    in mount B's next listing, although B had the listing cached and its
#    attribute and entry timeouts are 60 s: only the invalidation the bricks
#    push can explain it.  It travels brick -> B while A's syscall returns,
#    so B's listing is polled for at most POLL_S seconds (the bound
#    xmount_coherence.sh allows cached names and attributes); when one
#    listing was not enough, the delay is logged;
#  - the same changes made through B itself show in B's very next listing,
#    with no polling at all;
#  - a change of a child's attributes alone costs B no new READDIR;
#  - a listing of a folder too big for one page stays whole and in order;
#  - once a brick link went down and came back, B lists from the bricks
#    again (its kernel still held the listing: an INVAL may have been lost);
#  - a listing is kept no longer than entry_timeout, which bounds what a
#    race could leave in it, as for cached names;
#  - a listing read from a dirty copy of the folder (names heal may undo)
#    is not kept past its opendir.
source "$(dirname "$0")/lib.sh"

POLL_S=2

volume_create
bricks_start_metrics
mount_volume mA "attr_timeout=60,entry_timeout=60"
mount_volume mB "attr_timeout=60,entry_timeout=60"
A=$T/mA B=$T/mB

# READDIR requests answered by all bricks together.
readdirs() { brick_ops all readdir; }

# The names in DIR as `ls -l` sees them (one stat each), sorted.
listing() {
    python3 - "$1" <<'PY'
import os, sys
names = sorted(os.listdir(sys.argv[1]))
for n in names:
    os.lstat(os.path.join(sys.argv[1], n))
print(" ".join(names))
PY
}

# listing_costs DIR N: listing DIR makes exactly N READDIRs reach the
# bricks (N = any: at least one).
listing_costs() {
    local before after
    before=$(readdirs)
    listing "$1" >/dev/null
    after=$(readdirs)
    if [ "$2" = any ]; then
        test "$after" -gt "$before"
    else
        test $((after - before)) -eq "$2"
    fi
}

# cached DIR: the mount has DIR's listing cached: a listing of it reaches
# no brick.  It may take a few: invalidations the bricks pushed before (A's
# own changes, queued for the kernel) may still drop the pages one listing
# filled, and the kernel drops a listing whose folder mtime it sees change
# (the bricks' mtimes differ: docs/performance.md, finding 4).
cached() {
    local i
    for i in 1 2 3 4 5; do
        listing_costs "$1" 0 && return 0
        sleep 0.2
    done
    fail "the listing of $1 reached a brick 5 times running"
}
cached_on_b() { cached "$B/$1"; }

# expect_b REL WANT [poll]: B's listing of REL is WANT, at once, or (poll)
# within POLL_S seconds.
expect_b() {
    local rel=$1 want=$2 got start n=1
    start=$(date +%s%N)
    got=$(listing "$B/$rel")
    if [ "$got" != "$want" ] && [ "${3:-}" = poll ]; then
        while [ "$got" != "$want" ] &&
            [ $(($(date +%s%N) - start)) -lt $((POLL_S * 1000000000)) ]; do
            sleep 0.01
            got=$(listing "$B/$rel")
            n=$((n + 1))
        done
    fi
    [ "$got" = "$want" ] ||
        fail "B lists $rel as [$got], want [$want]"
    [ "$n" = 1 ] || log "  B's listing of $rel right at listing $n," \
        "$((($(date +%s%N) - start) / 1000000)) ms after the change"
}

mkdir "$A/d" "$A/other"
touch "$A/d/f1" "$A/d/f2" "$A/d/f3" "$A/other/o1" "$A/other/o2"

log "a second listing of an unchanged folder reaches no brick"
check "B's first listing of d went nowhere" listing_costs "$B/d" any
cached_on_b d
for _ in 1 2 3; do
    check "B's repeated listing of d reached a brick" listing_costs "$B/d" 0
done
expect_b d "f1 f2 f3"

# change_on MOUNT WHAT CMD...: with d and other cached on B, run CMD (paths
# relative to MOUNT) and check B's listings of both; poll only when MOUNT
# is A.
want_d="f1 f2 f3" want_other="o1 o2"
change_on() {
    local m=$1 what=$2 mode=
    shift 2
    [ "$m" = "$A" ] && mode=poll
    cached_on_b d
    cached_on_b other
    log "$what through $([ "$m" = "$A" ] && echo A || echo B)"
    (cd "$m" && "$@") || fail "$what: $*"
    expect_b d "$want_d" $mode
    expect_b other "$want_other" $mode
}

for m in "$A" "$B"; do
    p=$([ "$m" = "$A" ] && echo a || echo b)
    want_d=$(tr ' ' '\n' <<<"$want_d ${p}new" | sort | xargs)
    change_on "$m" create touch "d/${p}new"
    want_d=$(tr ' ' '\n' <<<"$want_d" | grep -vx "${p}new" | sort | xargs)
    change_on "$m" unlink rm "d/${p}new"
    want_d=$(tr ' ' '\n' <<<"$want_d ${p}mv" | grep -vx f1 | sort | xargs)
    change_on "$m" "rename within" mv d/f1 "d/${p}mv"
    want_d=$(tr ' ' '\n' <<<"$want_d o1" | sort | xargs) want_other=o2
    change_on "$m" "rename in" mv other/o1 d/o1
    want_d=$(tr ' ' '\n' <<<"$want_d" | grep -vx o1 | sort | xargs)
    want_other="o1 o2"
    change_on "$m" "rename out" mv d/o1 other/o1
    want_d=$(tr ' ' '\n' <<<"$want_d ${p}sub" | sort | xargs)
    change_on "$m" mkdir mkdir "d/${p}sub"
    want_d=$(tr ' ' '\n' <<<"$want_d" | grep -vx "${p}sub" | sort | xargs)
    change_on "$m" rmdir rmdir "d/${p}sub"
    want_d=$(tr ' ' '\n' <<<"$want_d ${p}hard" | sort | xargs)
    change_on "$m" link ln other/o2 "d/${p}hard"
    want_d=$(tr ' ' '\n' <<<"$want_d ${p}sym" | sort | xargs)
    change_on "$m" symlink ln -s ../other/o2 "d/${p}sym"
    # Put f1 back for the second round.
    want_d=$(tr ' ' '\n' <<<"$want_d f1" | grep -vx "${p}mv" | sort | xargs)
    change_on "$m" "rename back" mv "d/${p}mv" d/f1
done

log "a child's attributes changed through A: B lists from its cache, stats afresh"
cached_on_b d
chmod 0600 "$A/d/f2"
mode_is() { test "$(stat -c %a "$1")" = "$2"; }
wait_for "$POLL_S" mode_is "$B/d/f2" 600 || fail "B's stat kept f2's old mode"
check "B's listing after a chmod of a child reached a brick" \
    listing_costs "$B/d" 0

log "a folder of 400 names (many pages of dirents) is cached whole"
mkdir "$A/big"
python3 - "$A/big" <<'PY'
import os, sys
for i in range(400):
    open(os.path.join(sys.argv[1], "entry-with-a-longish-name-%04d" % i), "w").close()
PY
cached_on_b big
first=$(ls -f "$B/big" | tr '\n' ' ')   # in readdir order, unsorted
check "B's listing of big reached a brick" listing_costs "$B/big" 0
again=$(ls -f "$B/big" | tr '\n' ' ')
[ "$first" = "$again" ] || fail "B's cached listing of big differs from the first"
check "big lists 402 entries" test "$(wc -w <<<"$first")" = 402
rm "$A/big/entry-with-a-longish-name-0200"
expect_b big "$(ls "$A/big" | xargs)" poll
check "B's listing of big has 399 names" test "$(ls "$B/big" | wc -l)" = 399

log "after a brick link went down and came back, B lists from the bricks"
cached_on_b d
brick_kill 1
wait_for 30 count_ge 1 "$T/mB.log" "brick 1 .* is down" ||
    fail "B did not see brick 1 go down"
brick_start 1 --metrics "127.0.0.1:${MPORT[1]}"
wait_for 30 brick_seen_up mB 1 2 || fail "B did not reconnect to brick 1"
wait_for 30 brick_seen_up mA 1 2 || fail "A did not reconnect to brick 1"
check "B kept a listing it cannot vouch for after a reconnect" \
    listing_costs "$B/d" any
check "B's listing after the reconnect is not cached again" \
    listing_costs "$B/d" 0
expect_b d "$want_d"

log "a cached listing is kept no longer than entry_timeout (here 3 s)"
mount_volume mC "attr_timeout=60,entry_timeout=3"
check "C's first listing of d went nowhere" listing_costs "$T/mC/d" any
cached "$T/mC/d"
sleep 3.5
check "C kept its listing of d past entry_timeout" \
    listing_costs "$T/mC/d" any

log "a listing from a dirty copy of the folder is kept for its opendir only"
mkdir "$A/dirty"
touch "$A/dirty/x"
mount_volume mD "attr_timeout=60,entry_timeout=5,prefer-brick=1"
check "D's first listing of dirty went nowhere" \
    listing_costs "$T/mD/dirty" any
cached "$T/mD/dirty"
brick_set_dirty 1 dirty # no INVAL: D's listing stays vouched until it ages
sleep 5.2
check "D's listing of dirty, past entry_timeout, went nowhere" \
    listing_costs "$T/mD/dirty" any
check "D kept a listing that came from a dirty copy" \
    listing_costs "$T/mD/dirty" any
log PASS
