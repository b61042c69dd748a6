/*
 * Fuzzing hook: run bytes through the daemon's request path (framing,
 * decoding, dispatch, the real store on a real brick directory) on a fake,
 * already authenticated connection with no socket.  Used by
 * tools/fuzz_dispatch.c (libFuzzer) and usable from unit tests.
 */
#ifndef RFS_DAEMON_FUZZHOOK_H
#define RFS_DAEMON_FUZZHOOK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Feed data (a stream of frames) to a fresh fake connection and run the loop
 * until every operation it started has finished and the connection is gone.
 * The first call sets up a brick in a temp directory with a few objects of
 * small, guessable ids: directories {0,2} and {0,3}, a file {0,4}, a
 * symlink {0,5}.  Returns 0, or -errno if the set-up failed.
 */
int daemon_fuzz_one(const uint8_t *data, size_t len);
/* Stop the fuzz server, free everything and remove its brick directory. */
void daemon_fuzz_fini(void);

#endif
