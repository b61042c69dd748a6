#!/usr/bin/env bash
# The heal index entry of a deleted object goes with it.  With brick 3 down,
# objects get markers on bricks 1 and 2 (a written file, a directory that
# got a new name, a file renamed over) and then lose their last name
# (unlink, rmdir, rename-over): their .replicafs/heal/<id> must go at once
# on bricks 1 and 2, except for a file still open (an orphan), which keeps
# it until it is closed.  An entry whose id resolves nowhere (made by hand
# here, as a crash or an older brick leaves it) is dropped by HEAL_LIST, so
# `replicafs status` shows no backlog after the heal.
source "$(dirname "$0")/lib.sh"
HC="python3 $(dirname "$0")/heal_check.py"
RFS="$RFS_BIN_DIR/replicafs"

volume_start
mount_volume mA "ping-timeout=2"
A=$T/mA
mkdir "$A/d" "$A/gone"
echo one >"$A/d/f"
echo victim >"$A/d/victim"
echo new >"$A/d/newer"
echo open >"$A/d/open"
sync
idf=$($HC idhex "$(brick_path 1 d/f)")
idgone=$($HC idhex "$(brick_path 1 gone)")
idvictim=$($HC idhex "$(brick_path 1 d/victim)")
idopen=$($HC idhex "$(brick_path 1 d/open)")

# in_index BRICK HEX: the brick's heal index lists it
in_index() { test -e "$T/brick$1/.replicafs/heal/$2"; }

log "brick 3 down: mark the objects on bricks 1 and 2"
brick_kill 3 KILL
wait_for 30 grep -q "brick 3 .* is down" "$T/mA.log" || fail "brick 3 not seen down"
echo two >>"$A/d/f"
echo sub >"$A/gone/x"
echo changed >>"$A/d/victim"
echo more >>"$A/d/open"
sync
for h in $idf $idgone $idvictim $idopen; do
    check "brick 1 indexes $h before" in_index 1 "$h"
done

log "the objects lose their last name"
exec 7<"$A/d/open" # keep it open: an orphan once unlinked
rm "$A/d/f"
rm "$A/gone/x"
rmdir "$A/gone"
mv "$A/d/newer" "$A/d/victim"
rm "$A/d/open"
sync
for b in 1 2; do
    for h in $idf $idgone $idvictim; do
        check "brick $b dropped the index entry of deleted $h" \
            bash -c "! test -e '$T/brick$b/.replicafs/heal/$h'"
    done
    check "brick $b keeps the entry of the open orphan" in_index "$b" "$idopen"
done
check "the orphan still reads" grep -q more <&7
exec 7<&-
sleep 0.5

log "a dead entry made by hand is dropped by HEAL_LIST"
dead=0123456789abcdef0123456789abcdef
: >"$T/brick1/.replicafs/heal/$dead"
"$RFS" heal --list --volume "$VOL" --json >"$T/list.json" || true
check "listing does not show the dead entry: $(cat "$T/list.json")" \
    bash -c "! grep -q $dead '$T/list.json'"
check "dead entry removed from brick 1" bash -c "! test -e '$T/brick1/.replicafs/heal/$dead'"
for b in 1 2; do
    check "the closed orphan's entry is dropped (brick $b)" \
        bash -c "! grep -q $idopen '$T/list.json'"
done

log "brick 3 back, heal: no backlog anywhere"
brick_start 3
wait_for 60 brick_seen_up mA 3 2 || fail "brick 3 not back"
"$RFS" heal --volume "$VOL" >"$T/heal.out" || fail "heal: $(cat "$T/heal.out")"
check "bricks equal" $HC same "$T" 3
check "no marker, empty heal indices" $HC clean "$T" 3
"$RFS" status --volume "$VOL" --json >"$T/status.json" || true
check "status shows no heal backlog: $(cat "$T/status.json")" \
    bash -c "! grep -Eq '\"heal_entries\":[1-9]' '$T/status.json'"
log "PASS"
