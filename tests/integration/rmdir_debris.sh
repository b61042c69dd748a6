#!/usr/bin/env bash
# A directory that holds only crash debris on one brick (a name without
# trusted.rfs.id, what a kill -9 mid-create leaves; clients cannot see it)
# is removed with it by rmdir on every brick, so heal has nothing left to
# fail on; a directory with a real object is still "not empty".  Found by
# the soak (scripts/soak.sh): heal failed for ever on such a leftover.
source "$(dirname "$0")/lib.sh"

volume_start
mount_volume mA
A=$T/mA
mkdir -p "$A/d/sub" "$A/e"
echo keep >"$A/e/real"
: >"$(brick_path 2 d/sub/.tmp-debris)"   # no id: debris
mkdir "$(brick_path 2 d/sub/debrisdir)"  # an empty debris folder
check "the debris is invisible" test -z "$(ls -A "$A/d/sub")"
rm -r "$A/d" || fail "rm -r of a folder with debris on one brick"
for i in 1 2 3; do
    check "d still on brick $i" test ! -e "$(brick_path "$i" d)"
done
check "d still through the mount" test ! -e "$A/d"
check "pending left on brick 1's root" test "$(brick_pending_sum "$T/brick1")" = 0
grep -q "removed names without an id" "$T/brick2.log" || fail "brick 2 does not say it swept"
err=$(rmdir "$A/e" 2>&1) && fail "rmdir of a folder with a file succeeded"
case $err in *"not empty"*) ;; *) fail "rmdir e: $err" ;; esac
log PASS
