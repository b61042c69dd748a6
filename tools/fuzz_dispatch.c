/*
 * libFuzzer driver for the daemon's request path: each input is a byte
 * stream of frames fed to an authenticated fake connection of a real
 * in-process brick (src/daemon/fuzzhook.c), so framing, decoding, dispatch,
 * the handlers and the io_uring store all run on fuzzed requests.
 *
 * Build and run (clang):
 *   cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DRFS_FUZZ=ON
 *   ninja -C build-fuzz fuzz_dispatch
 *   ./build-fuzz/fuzz_dispatch -max_total_time=60 -max_len=70000
 * The brick lives in /tmp/rfs-fuzz-XXXXXX and is removed at exit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "daemon/fuzzhook.h"

static void cleanup(void)
{
    daemon_fuzz_fini();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (daemon_fuzz_one(data, size) < 0)
        abort(); /* the harness itself could not start: not a finding */
    return 0;
}
