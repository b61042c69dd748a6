#!/usr/bin/env bash
# Self-test of tools/workload.c on plain local directories (no replicafs):
# a clean run must verify, and every kind of damage must make verify fail
# and name it.  Needs only RFS_BIN_DIR (the build dir holding `workload`).
#
#   repro: RFS_BIN_DIR=build bash tests/integration/workload_selftest.sh
#
# Phases:
#   1. one run, 4 threads over two "mounts" (the same dir twice); two "brick"
#      copies (cp -a, with a fake .replicafs/ that must be skipped): OK
#   2. damage copies by hand: flipped byte (WRONG), deleted acknowledged file
#      (MISSING), deleted file brought back (RESURRECTED), file cut short
#      (PARTIAL), one brick differing or lacking a file (REPLICA), a second
#      mount showing other bytes (MOUNT), a stray
#      file (UNEXPECTED), a forged double O_EXCL win (EXCL), a forged stale
#      read (STALE-READ), a malformed log (exit 2)
#   3. two run processes at once on one dir, separate logs: thumbnails race
#      across processes, verify with both logs: OK
#   4. two processes reusing one --tag: LOG conflict reported
#   5. kill -9 of a run mid-flight: the open operations are uncertain, OK
#   6. (if tmpfs can be mounted) ENOSPC: failures counted, verify OK;
#      --strict exits 1 on the first error
#   7. the acknowledgement rules: for each operation and outcome (acked,
#      failed at a stage, killed), hand-written logs and trees made with
#      `workload gen` that verify must accept or must reject by name
set -uo pipefail

bin="${RFS_BIN_DIR:?RFS_BIN_DIR must point at the build dir}/workload"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }

work=$(mktemp -d /tmp/rfs-wl-selftest.XXXXXX)
pids=()
tmpfs_mnt=""
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "$tmpfs_mnt" ] && umount "$tmpfs_mnt" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

failures=0
start=$SECONDS
fail() { echo "[$((SECONDS - start))s] FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "[$((SECONDS - start))s] ok: $*"; }

# verify must exit 0 and say OK.
expect_ok() {
    local what=$1; shift
    local out rc
    out=$("$bin" verify "$@" 2>&1); rc=$?
    if [ $rc -eq 0 ] && grep -q '^verify: OK' <<<"$out"; then
        pass "$what: $(grep '^verify: files' <<<"$out")"
    else
        fail "$what: verify exited $rc"; echo "$out" | grep -v '^INFO' | head -20
    fi
}

# verify must exit 1 and print a line starting with the word, naming path.
expect_problem() {
    local what=$1 word=$2 path=$3; shift 3
    local out rc
    out=$("$bin" verify "$@" 2>&1); rc=$?
    if [ $rc -eq 1 ] && grep -q "^$word .*$path" <<<"$out"; then
        pass "$what: $(grep -m1 "^$word " <<<"$out" | cut -c1-150)"
    else
        fail "$what: want exit 1 and '$word ... $path', got exit $rc"
        echo "$out" | grep -v '^INFO' | head -20
    fi
}

# A final path whose only operation was an acknowledged upload of >= 16 bytes.
pick_upload() {
    awk 'function kv(k,   i) { for (i = 5; i <= NF; i++) if (index($i, k "=") == 1)
                                  return substr($i, length(k) + 2); return "" }
         $1 == "B" { n[$4]++; if ($3 == "upload") { up[$2] = $4; size[$4] = kv("size") + 0 } }
         $1 == "A" && ($2 in up) { acked[up[$2]] = 1 }
         END { for (p in acked) if (n[p] == 1 && size[p] >= 16) { print p; exit } }' "$1"
}
# A path whose deletion was acknowledged.
pick_deleted() {
    awk '$1 == "B" && $3 == "unlink" { u[$2] = $4 }
         $1 == "A" && ($2 in u) { print u[$2]; exit }' "$1"
}



# ---- phase 1: a clean run ---------------------------------------------------
base=$work/base
mkdir -p "$base"
log=$work/run.log
if ! "$bin" run --mount "$base" --mount "$base" --log "$log" --threads 4 --ops 800 \
        --seed 1234 --fsync-ratio 0.3 --max-size 262144 >"$work/run.out" 2>&1; then
    cat "$work/run.out"; fail "run on a local dir exited non-zero"; exit 1
fi
grep -q '^H 1 seed=1234 ' "$log" || fail "log has no H line"
grep -q '^E .*status=done' "$log" || fail "log has no E line with status=done"
for op in upload replace rewrite append truncate unlink thumb; do
    grep -q "^B [0-9.]* $op " "$log" || fail "the run never did $op"
done
grep -q '^A [0-9.]* lost$' "$log" || fail "no thumbnail creator ever got EEXIST"
grep -q '^R [0-9.]* .* ok$' "$log" || fail "no read check ran"
pass "run: $(grep 'total:' "$work/run.out")"

for b in b1 b2; do
    cp -a "$base" "$work/$b"
    mkdir -p "$work/$b/.replicafs/ids/ab" "$work/$b/.replicafs/heal"
    echo "volume = upload" >"$work/$b/.replicafs/stamp"
done
expect_ok "clean tree, two bricks" --log "$log" --mount "$base" --brick "$work/b1" --brick "$work/b2"

# ---- phase 2: faults, each injected into a copy and then undone ------------
target=$(pick_upload "$log")
deleted=$(pick_deleted "$log")
if [ -z "$target" ] || [ -z "$deleted" ]; then fail "log has no usable target"; exit 1; fi
echo "targets: $target (acknowledged upload), $deleted (acknowledged unlink)"

t=$work/t
cp -a "$base" "$t"
# Put a tree ($1) back as the run left it (base is never touched).
undo() {
    rm -f "$1/$target" "$1/$deleted" "$1/iblock/stray.jpg"
    cp -a "$base/$target" "$1/$target"
}
flip_byte() { # file offset
    local b
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf '%b' "\\0$(printf '%03o' $(((b + 1) % 256)))" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

flip_byte "$t/$target" 7
expect_problem "flipped byte" WRONG "$target" --log "$log" --mount "$t"
undo "$t"; rm "$t/$target"
expect_problem "deleted acknowledged file" MISSING "$target" --log "$log" --mount "$t"
undo "$t"; mkdir -p "$(dirname "$t/$deleted")"; echo "I am back" >"$t/$deleted"
expect_problem "resurrected deleted file" RESURRECTED "$deleted" --log "$log" --mount "$t"
undo "$t"; size=$(stat -c %s "$t/$target"); truncate -s $((size / 2)) "$t/$target"
expect_problem "truncated file under a final name" PARTIAL "$target" --log "$log" --mount "$t"
undo "$t"; : >"$t/$target"
expect_problem "empty file under a final name" PARTIAL "$target" --log "$log" --mount "$t"
undo "$t"; echo stray >"$t/iblock/stray.jpg"
expect_problem "file no operation wrote" UNEXPECTED "iblock/stray.jpg" --log "$log" --mount "$t"
undo "$t"; flip_byte "$t/$target" 1
expect_problem "second mount differs" MOUNT "t $target" --log "$log" --mount "$base" --mount "$t"
undo "$t"
expect_ok "every fault undone, as second mount" --log "$log" --mount "$base" --mount "$t"

b2=$work/b2
flip_byte "$b2/$target" 3
expect_problem "one brick's copy differs" REPLICA "b2 $target" \
    --log "$log" --mount "$base" --brick "$work/b1" --brick "$b2"
undo "$b2"; rm "$b2/$target"
expect_problem "one brick lacks a file" REPLICA "b2 $target.*missing on the brick" \
    --log "$log" --mount "$base" --brick "$work/b1" --brick "$b2"
undo "$b2"; echo x >"$b2/$deleted"
expect_problem "one brick has an extra file" REPLICA "b2 $deleted.*not through the mount" \
    --log "$log" --mount "$base" --brick "$work/b1" --brick "$b2"
undo "$b2"

# A thumbnail someone won: turn one of its losers into a second winner.  Two
# passes: a loser's "A lost" usually comes before the winner's "A won".
lost=$(awk 'NR == FNR { if ($1 == "B" && $3 == "thumb") t[$2] = $4
                        if ($1 == "A" && $3 == "won") won[t[$2]] = 1; next }
            $1 == "A" && $3 == "lost" && (t[$2] in won) { print $2; exit }' "$log" "$log")
[ -n "$lost" ] || fail "no thumbnail with both a winner and a loser"
thumb=$(awk -v id="$lost" '$1 == "B" && $2 == id { print $4 }' "$log")
sed "s/^A $lost lost\$/A $lost won/" "$log" >"$work/forged.log"
expect_problem "two O_EXCL winners" EXCL "$thumb" --log "$work/forged.log" --mount "$base"

cp "$log" "$work/stale.log"
echo "R 0.999999 $target m=1 mismatch size=1 h=0000000000000000 want_size=2 want_h=0000000000000001" \
    >>"$work/stale.log"
expect_problem "stale read recorded by run" STALE-READ "$target" --log "$work/stale.log" --mount "$base"

cp "$log" "$work/bad.log"; echo "B 0.1 frobnicate x r=1:1" >>"$work/bad.log"
"$bin" verify --log "$work/bad.log" --mount "$base" >/dev/null 2>&1
if [ $? -eq 2 ]; then pass "malformed log: exit 2"; else fail "malformed log must exit 2"; fi

# ---- phase 3: two processes at once, thumbnails race across them -----------
dual=$work/dual
mkdir -p "$dual"
"$bin" run --mount "$dual" --mount "$dual" --log "$work/p1.log" --threads 2 --seconds 1.5 \
    --seed 11 --max-size 4096 >/dev/null 2>&1 &
pids+=($!); p1=$!
"$bin" run --mount "$dual" --log "$work/p2.log" --threads 2 --seconds 1.5 \
    --seed 12 --max-size 4096 >/dev/null 2>&1 &
pids+=($!); p2=$!
wait $p1 || fail "run process 1 exited non-zero"
wait $p2 || fail "run process 2 exited non-zero"
pids=()
races=$(awk '$1 == "H" { f++ } $1 == "B" && $3 == "thumb" { t[f, $2] = $4 }
             $1 == "A" && ($3 == "won" || $3 == "lost") { seen[t[f, $2], f] = 1 }
             END { n = 0; for (k in seen) { split(k, a, SUBSEP); if (a[2] == 1 && ((a[1], 2) in seen)) n++ }
                   print n }' "$work/p1.log" "$work/p2.log")
if [ "${races:-0}" -gt 0 ]; then
    pass "$races thumbnail names raced across the two processes"
else
    fail "no thumbnail name was tried by both processes"
fi
expect_ok "two processes, two logs" --log "$work/p1.log" --log "$work/p2.log" --mount "$dual"

# ---- phase 4: a reused tag breaks the one-writer rule ------------------------
same=$work/same
mkdir -p "$same"
"$bin" run --mount "$same" --log "$work/s1.log" --threads 1 --ops 50 --seed 1 --tag reused \
    --max-size 4096 >/dev/null 2>&1
# Same seed too: the names also depend on the seed, so this makes the first
# upload's name identical in both runs.
"$bin" run --mount "$same" --log "$work/s2.log" --threads 1 --ops 50 --seed 1 --tag reused \
    --max-size 4096 >/dev/null 2>&1
expect_problem "two runs with one --tag" LOG "reused-0-" \
    --log "$work/s1.log" --log "$work/s2.log" --mount "$same"

# ---- phase 5: kill -9 mid-run --------------------------------------------------
killed=$work/killed
mkdir -p "$killed"
"$bin" run --mount "$killed" --mount "$killed" --log "$work/k.log" --threads 4 --seconds 30 \
    --seed 5 --max-size 131072 >/dev/null 2>&1 &
kp=$!; pids+=("$kp")
sleep 0.7
kill -9 "$kp"; wait "$kp" 2>/dev/null; pids=()
open_ops=$(awk '$1 == "B" { o[$2] = 1 } $1 == "A" || $1 == "F" { delete o[$2] }
                END { print length(o) }' "$work/k.log")
if [ "$open_ops" -gt 0 ]; then
    pass "kill -9 left $open_ops operations without an outcome"
else
    fail "kill -9 left no open operation (the uncertain path went untested)"
fi
expect_ok "after kill -9" --log "$work/k.log" --mount "$killed"

# ---- phase 6: ENOSPC on a small tmpfs ------------------------------------------
full=$work/full
mkdir -p "$full"
if mount -t tmpfs -o size=2m tmpfs "$full" 2>/dev/null; then
    tmpfs_mnt=$full
    "$bin" run --mount "$full" --mount "$full" --log "$work/f.log" --threads 4 --seconds 1 \
        --seed 9 --max-size 1048576 >"$work/f.out" 2>&1
    rc=$?
    nfail=$(grep -c '^F .*err=ENOSPC' "$work/f.log")
    if [ $rc -eq 0 ] && [ "$nfail" -gt 0 ]; then
        pass "ENOSPC: exit 0 with $nfail failures logged"
    else
        fail "ENOSPC run: exit $rc, $nfail ENOSPC failures"
    fi
    expect_ok "after ENOSPC" --log "$work/f.log" --mount "$full"
    "$bin" run --mount "$full" --log "$work/f2.log" --threads 2 --seconds 5 --seed 10 \
        --strict >"$work/f2.out" 2>&1
    rc=$?
    if [ $rc -eq 1 ] && grep -q 'status=strict-error' "$work/f2.log"; then
        pass "--strict: exit 1 at the first error"
    else
        fail "--strict on a full fs exited $rc"
    fi
    expect_ok "after --strict stop" --log "$work/f.log" --log "$work/f2.log" --mount "$full"
    umount "$full" && tmpfs_mnt=""
else
    echo "skip: cannot mount a tmpfs here (not root?); ENOSPC and --strict untested"
fi

# ---- phase 7: the acknowledgement rules, case by case --------------------------
# Hand-written logs (seed 1) and trees made with `workload gen`: for each kind
# of operation and outcome, the states verify must accept and the ones it must
# reject (invariants 2-6 at the top of tools/workload.c).
sem=$work/sem
hs() { "$bin" gen --seed 1 --path "$1" --recipe "$2" --hash; } # "size=N h=H"
lines() { printf '%s\n' "$@"; }

# sem_case NAME WANT PATH CONTENT [BYTES] < log-body
#   WANT: ok, or the problem word verify must print for PATH
#   CONTENT: absent, or the recipe whose first BYTES (default all) PATH holds
sem_case() {
    local name=$1 want=$2 path=$3 content=$4 bytes=${5:-} d=$sem/$1
    mkdir -p "$d/tree"
    { echo "H 1 seed=1 tag=x thumbset=s threads=2 mounts=1 pid=1 time=0"; cat; } >"$d/log"
    if [ "$content" != absent ]; then
        mkdir -p "$(dirname "$d/tree/$path")"
        "$bin" gen --seed 1 --path "$path" --recipe "$content" ${bytes:+--bytes "$bytes"} \
            >"$d/tree/$path"
    fi
    if [ "$want" = ok ]; then
        expect_ok "rule $name" --log "$d/log" --mount "$d/tree"
    else
        expect_problem "rule $name" "$want" "$path" --log "$d/log" --mount "$d/tree"
    fi
}
# cases PATH LOG "NAME WANT CONTENT [BYTES]"...: one sem_case per case, same log
cases() {
    local path=$1 log=$2 c
    shift 2
    for c in "$@"; do
        # shellcheck disable=SC2086
        set -- $c
        sem_case "$1" "$2" "$path" "${@:3}" < <(printf '%s\n' "$log")
    done
}

F=a/f
UP=$(lines "B 0.0 upload $F tmp=a/.tmp-x-0-0 m=0 fsync=0 $(hs $F 1:100) r=1:100" "A 0.0")
RW="B 0.1 rewrite $F m=0 fsync=0 $(hs $F 2:60) r=2:60"
cases $F "$(lines "$UP" "$RW" "A 0.1")" \
    "rewrite-acked-new ok 2:60" "rewrite-acked-old WRONG 1:100" \
    "rewrite-acked-prefix PARTIAL 2:60 59"
# write failed after the O_TRUNC open was acknowledged: any prefix of new
cases $F "$(lines "$UP" "$RW" "F 0.1 stage=write err=EIO acked=0")" \
    "rewrite-write-failed-prefix ok 2:60 25" "rewrite-write-failed-empty ok 2:60 0" \
    "rewrite-write-failed-new ok 2:60" "rewrite-write-failed-old WRONG 1:100"
# fsync succeeded, then close failed: fsync acknowledged every byte
cases $F "$(lines "$UP" "$RW" "F 0.1 stage=close err=EIO acked=60")" \
    "rewrite-fsynced-new ok 2:60" "rewrite-fsynced-prefix PARTIAL 2:60 25"
# the O_TRUNC open itself failed: old, or truncated to empty, nothing else
cases $F "$(lines "$UP" "$RW" "F 0.1 stage=open err=EIO acked=0")" \
    "rewrite-open-failed-old ok 1:100" "rewrite-open-failed-empty ok 2:60 0" \
    "rewrite-open-failed-prefix PARTIAL 2:60 25"
# killed mid-rewrite (no outcome line): old, or any prefix of new
cases $F "$(lines "$UP" "$RW")" \
    "rewrite-killed-old ok 1:100" "rewrite-killed-prefix ok 2:60 25" \
    "rewrite-killed-absent MISSING absent"

G=b/g
UPG="B 0.1 upload $G tmp=b/.tmp-x-0-1 m=0 fsync=0 $(hs $G 1:80) r=1:80"
cases $G "$(lines "$UPG" "A 0.1")" "upload-acked-absent MISSING absent" \
    "upload-acked-prefix PARTIAL 1:80 40"
# failed before the rename: the final name was never touched
cases $G "$(lines "$UPG" "F 0.1 stage=write err=ENOSPC acked=0")" \
    "upload-write-failed-absent ok absent" "upload-write-failed-present WRONG 1:80"
# rename failed or the process died: absent or complete, never partial
cases $G "$(lines "$UPG" "F 0.1 stage=rename err=EIO acked=0")" \
    "upload-rename-failed-absent ok absent" "upload-rename-failed-new ok 1:80" \
    "upload-rename-failed-prefix PARTIAL 1:80 40"
cases $G "$UPG" "upload-killed-new ok 1:80" "upload-killed-prefix PARTIAL 1:80 40"

RP="B 0.1 replace $F tmp=a/.tmp-x-0-1 m=0 fsync=0 $(hs $F 2:60) r=2:60"
cases $F "$(lines "$UP" "$RP" "A 0.1")" "replace-acked-old WRONG 1:100"
cases $F "$(lines "$UP" "$RP")" "replace-killed-old ok 1:100" "replace-killed-new ok 2:60" \
    "replace-killed-prefix PARTIAL 2:60 30"

AP="B 0.1 append $F m=0 fsync=0 add=40 $(hs $F 1:100,2:40) r=1:100,2:40"
cases $F "$(lines "$UP" "$AP" "A 0.1")" "append-acked-new ok 1:100,2:40" \
    "append-acked-old PARTIAL 1:100"
# a failed append keeps the old bytes and may add a prefix of the new ones
cases $F "$(lines "$UP" "$AP" "F 0.1 stage=write err=EIO acked=0")" \
    "append-write-failed-old ok 1:100" "append-write-failed-some ok 1:100,2:40 120" \
    "append-write-failed-short PARTIAL 1:100 90"
cases $F "$(lines "$UP" "$AP" "F 0.1 stage=open err=EIO acked=0")" \
    "append-open-failed-old ok 1:100" "append-open-failed-some PARTIAL 1:100,2:40 120"

TR="B 0.1 truncate $F m=0 $(hs $F 1:30) r=1:30"
cases $F "$(lines "$UP" "$TR" "F 0.1 stage=truncate err=EIO acked=0")" \
    "truncate-failed-old ok 1:100" "truncate-failed-new ok 1:30" \
    "truncate-failed-between PARTIAL 1:100 50"
TX="B 0.1 truncate $F m=0 $(hs $F 1:100,0:50) r=1:100,0:50"
cases $F "$(lines "$UP" "$TX" "A 0.1")" "truncate-extend-acked ok 1:100,0:50" \
    "truncate-extend-acked-old PARTIAL 1:100"

UL="B 0.1 unlink $F m=0 r=-"
cases $F "$(lines "$UP" "$UL" "A 0.1")" "unlink-acked ok absent" \
    "unlink-acked-back RESURRECTED 1:100"
cases $F "$(lines "$UP" "$UL" "F 0.1 stage=unlink err=EIO acked=0")" \
    "unlink-failed-old ok 1:100" "unlink-failed-absent ok absent"

# Thumbnails: creators 0 and 1 write different bytes (ver a0001 / a0002).
T=resize_cache/s/00/1_0.jpg
T0="B 0.0 thumb $T m=0 fsync=0 $(hs $T a0001:300) r=a0001:300"
T1="B 1.0 thumb $T m=0 fsync=0 $(hs $T a0002:300) r=a0002:300"
cases $T "$(lines "$T0" "$T1" "A 1.0 lost" "A 0.0 won")" "thumb-winner ok a0001:300" \
    "thumb-loser-bytes WRONG a0002:300" "thumb-winner-absent MISSING absent"
# the winner died while writing; someone got EEXIST, so the file exists
cases $T "$(lines "$T0" "$T1" "A 1.0 lost")" "thumb-killed-winner-prefix ok a0001:300 100" \
    "thumb-killed-winner-absent MISSING absent"
cases $T "$(lines "$T0" "$T1")" "thumb-all-killed-absent ok absent" \
    "thumb-all-killed-either ok a0002:300 10"
cases $T "$(lines "$T0" "$T1" "F 0.0 stage=open err=EIO acked=0" "A 1.0 lost")" \
    "thumb-open-failed-empty ok a0001:300 0" "thumb-open-failed-full WRONG a0001:300"
cases $T "$(lines "$T0" "$T1" "A 1.0 lost" "A 0.0 lost")" "thumb-all-eexist EXCL a0001:300"
cases $T "$(lines "$T0" "$T1" "A 1.0 won" "A 0.0 won")" "thumb-two-winners EXCL a0001:300"

echo "workload_selftest: $failures failure(s) in $((SECONDS - start)) s"
[ $failures -eq 0 ]
