#!/usr/bin/env bash
# Install what is missing, build, and run every test through ctest.
#
#   scripts/test.sh              Release-with-debug build in build/, all tests,
#                                then 30 s of libFuzzer per driver (clang, build-fuzz/)
#   scripts/test.sh --sanitize   unit and integration tests on an ASan+UBSan
#                                build (build-asan/); no fuzz run, and the
#                                failover scenarios only with -L failover
#   scripts/test.sh -L unit      only tests with that ctest label
#                                (unit, integration, failover, fuzz)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

sanitize=0
fuzz=1
label=""
while (($#)); do
  case "$1" in
    --sanitize) sanitize=1; fuzz=0 ;;
    --no-fuzz) fuzz=0 ;;
    -L) label="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

bash scripts/setup.sh

build=build
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if ((sanitize)); then
  build=build-asan
  cmake_args+=(-DRFS_SANITIZE=ON)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
ninja -C "$build"

ctest_args=(--test-dir "$build" --output-on-failure --timeout 900)
[ -n "$label" ] && ctest_args+=(-L "$label")
# Unit tests are quick and independent.  Integration tests each start
# their own daemons and mounts on free ports (claimed through
# tests/ports.py, so two tests never share one) and temp dirs, and most of
# their time is waiting (timeouts, sleeps), so two run at once: that
# halves their wall time, and runs them under the load a busy web node
# gives.  The failover scenarios measure times against ping timeouts and
# kill and cut things on purpose: they run one at a time.
if [ -z "$label" ] || [ "$label" = unit ]; then
  ctest "${ctest_args[@]}" -L unit -j 2
fi
if [ -z "$label" ] && ((sanitize)); then
  # The failover scenarios run on the normal build only: they drive the
  # same code as the integration tests, for minutes, and under ASan they
  # would double CI's time for no new path.
  ctest "${ctest_args[@]}" -L integration -j 2
elif [ -z "$label" ]; then
  ctest "${ctest_args[@]}" -LE 'unit|failover' -j 2
  ctest "${ctest_args[@]}" -L failover
elif [ "$label" != unit ] && [ "$label" != fuzz ]; then
  ctest "${ctest_args[@]}"
fi

if ((fuzz)) && { [ -z "$label" ] || [ "$label" = fuzz ]; }; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRFS_FUZZ=ON >/dev/null
  ninja -C build-fuzz $(ninja -C build-fuzz -t targets all | grep -o '^fuzz_[a-z_]*' | sort -u)
  ctest --test-dir build-fuzz --output-on-failure -L fuzz
fi
echo "test.sh: all tests passed"
