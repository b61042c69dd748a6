#!/usr/bin/env bash
# Names the mount answers itself (docs/client.md, "Names answered by the
# mount"; fuse/ops.c invariant 7).  With 0.2 s kernel timeouts the kernel
# asks the mount again and again; the mount must answer those LOOKUPs
# without the bricks while nothing changed, and never with a name or
# attributes older than a change made through another mount or itself.
source "$(dirname "$0")/lib.sh"

volume_create
bricks_start_metrics
mount_volume mA
mount_volume mB attr_timeout=0.2,entry_timeout=0.2
A=$T/mA B=$T/mB

python3 - "$A" <<'PY' || fail "write"
import os, sys
os.makedirs(os.path.join(sys.argv[1], "up/a"))
for i in range(30):
    with open(os.path.join(sys.argv[1], f"up/a/f{i}"), "wb") as f:
        f.write(bytes([i]) * 1000)
PY

# stat_all M: size and mode of every file of up/a through mount M.
stat_all() {
    python3 - "$1" <<'PY'
import os, sys
for n in sorted(os.listdir(os.path.join(sys.argv[1], "up/a"))):
    try:
        st = os.stat(os.path.join(sys.argv[1], "up/a", n))
        print(n, st.st_size, oct(st.st_mode), st.st_ino)
    except FileNotFoundError:
        print(n, "gone")
PY
}
probe() { # probe M NAME...: stat those names (not listed first)
    python3 - "$@" <<'PY'
import os, sys
for n in sys.argv[2:]:
    try:
        st = os.stat(os.path.join(sys.argv[1], "up/a", n))
        with open(os.path.join(sys.argv[1], "up/a", n), "rb") as f:
            data = f.read()
        print(n, st.st_size, oct(st.st_mode & 0o7777), data[:1].hex())
    except FileNotFoundError:
        print(n, "gone")
PY
}
names=$(seq -f 'f%g' 0 29)

log "B learns the names, then asks again after its kernel timeouts"
probe "$B" $names >/dev/null
sleep 0.5
probe "$B" $names >/dev/null
l0=$(brick_ops all lookup)
for _ in 1 2 3; do
    sleep 0.5
    probe "$B" $names >"$T/probe.out"
done
l1=$(brick_ops all lookup)
log "LOOKUPs the bricks answered for 90 re-lookups of unchanged names: $((l1 - l0))"
[ $((l1 - l0)) -le 10 ] || fail "$((l1 - l0)) LOOKUPs reached the bricks for unchanged names"

log "changes through A: unlink, rename over, rewrite, chmod, new name"
sleep 0.5
probe "$B" f1 f2 f3 f4 >/dev/null # all four vouched for by B now
rm "$A/up/a/f1"
printf 'Z%.0s' $(seq 500) >"$A/up/a/new2" && mv "$A/up/a/new2" "$A/up/a/f2"
printf 'Y%.0s' $(seq 1000) >"$A/up/a/f3"
chmod 600 "$A/up/a/f4"
sleep 0.5 # B's kernel asks the mount again: the mount must not answer old
got=$(probe "$B" f1 f2 f3 f4)
want="f1 gone
f2 500 0o644 5a
f3 1000 0o644 59
f4 1000 0o600 04"
[ "$got" = "$want" ] || fail "B after A's changes:
$got
want:
$want"

log "changes through B itself"
sleep 0.5
probe "$B" f5 f6 f7 >/dev/null
printf 'X%.0s' $(seq 10) >>"$B/up/a/f5"
mv "$B/up/a/f6" "$B/up/a/f6b"
touch -d @1000000000 "$B/up/a/f7"
sleep 0.5
got=$(probe "$B" f5 f6 f6b)
want="f5 1010 0o644 05
f6 gone
f6b 1000 0o644 06"
[ "$got" = "$want" ] || fail "B after its own changes:
$got
want:
$want"
[ "$(stat -c %Y "$B/up/a/f7")" = 1000000000 ] || fail "f7's mtime through B"
[ "$(stat -c %Y "$A/up/a/f7")" = 1000000000 ] || fail "f7's mtime through A"

log "A writes while B keeps looking"
for i in 1 2 3 4 5; do
    printf "%0${i}00d" 0 >"$A/up/a/f8"
    sleep 0.3
    [ "$(stat -c %s "$B/up/a/f8")" = "${i}00" ] || fail "f8 through B: $(stat -c %s "$B/up/a/f8"), want ${i}00"
done

log "a mount started with -o nonamecache asks the bricks every time"
mount_volume mC attr_timeout=0.2,entry_timeout=0.2,nonamecache
probe "$T/mC" $names >/dev/null
l0=$(brick_ops all lookup)
sleep 0.5
probe "$T/mC" $names >/dev/null
l1=$(brick_ops all lookup)
[ $((l1 - l0)) -ge 25 ] || fail "nonamecache: only $((l1 - l0)) LOOKUPs for 28 names"
log PASS
