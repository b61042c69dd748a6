/*
 * Rebuild: fill a replaced, empty brick with everything it should hold, from
 * the good bricks, while the volume stays online (docs/heal.md, "Rebuild").
 *
 * It drives the heal engine (heal.h) rather than copying on its own: the
 * target's root is blamed on the good bricks, and every object entry heal
 * then makes on the target is marked pending there and healed in turn.  So
 * the same locks as clients are taken, a file written meanwhile comes out
 * right, and the resume point of an interrupted rebuild is the heal index
 * of the good bricks itself: nothing is kept client-side.
 */
#ifndef RFS_CLIENT_REBUILD_H
#define RFS_CLIENT_REBUILD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "heal.h"

struct vol_config;

struct rebuild_progress {
    unsigned target, source;   /* 1-based bricks */
    uint64_t entries_total;    /* names on the source (not the root) */
    uint64_t entries_skipped;  /* of them already rebuilt before this run */
    uint64_t entries_done;     /* names made on the target by this run */
    uint64_t entries_linked;   /* of them: hard links (LINK, no data) */
    uint64_t bytes_total;      /* regular file data on the source */
    uint64_t bytes_skipped;    /* of it in files already rebuilt */
    uint64_t bytes_done;       /* data bytes written to the target */
    uint64_t bytes_same;       /* bytes found equal by block checksum */
    uint64_t files_done;       /* files whose data was copied */
    uint64_t failed;           /* objects that failed (retried next run) */
    uint64_t split_brain;      /* objects skipped: split-brain */
    uint64_t left;             /* objects still blamed for the target */
    double elapsed_s;
    bool interrupted;          /* the stop flag ended it */
};

struct rebuild_opts {
    unsigned brick;      /* 1-based target */
    double max_rate;     /* data bytes/s; 0: as fast as it goes */
    unsigned every_ms;   /* progress callback interval */
    void (*progress)(const struct rebuild_progress *p, void *arg);
    void *arg;
    volatile sig_atomic_t *stop; /* nonzero: stop before the next object */
    unsigned jobs;       /* > 1: files copied by that many forked workers */
    const struct vol_config *vol; /* borrowed: what workers connect to */
};

/*
 * Rebuild brick o->brick of h's volume.  *p is filled (and passed to
 * o->progress every o->every_ms and once at the end).  With o->jobs > 1
 * (and o->vol) this process makes the directories and every name, then
 * o->jobs forked workers (own connections, a share of the ids each, rate
 * max_rate / jobs each) copy the files; the rest is done here.  Returns 0 when
 * nothing is left for the target, 1 when something is (interrupted, a
 * failure, split-brain, a brick went down: run it again to resume),
 * -EINVAL (no such brick), -ENOTCONN (target down, or no other brick up),
 * or another -errno.
 */
int rebuild_run(struct healer *h, const struct rebuild_opts *o,
                struct rebuild_progress *p);

#endif
