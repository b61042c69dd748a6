/*
 * suspect: does this brick know that it missed nothing?
 *
 * A brick cannot see the changes made while it was away: only the other
 * bricks record them (pending markers).  With a quorum up that is enough;
 * with one brick left, its own word is all there is.  So the brick keeps a
 * "suspect" mark of its own, set whenever it may have missed a change
 * (it started, it lost a client that had changed something here, a change
 * failed here), and
 * cleared only by a heal that, with every brick up, found nothing pending
 * for it.  Clients refuse a lone suspect brick's word (docs/reliability.md,
 * rule 7).
 *
 * The mark is a generation number, persisted on the brick root as
 * trusted.rfs.suspect (two u64 LE: current, 0 = clean; last used), so a
 * heal clears only the generation it saw: a loss after it looked keeps the
 * brick suspect.
 */
#ifndef RFS_DAEMON_SUSPECT_H
#define RFS_DAEMON_SUSPECT_H

#include <stdbool.h>
#include <stdint.h>

struct server;

struct suspect {
    uint64_t gen;  /* 0: clean */
    uint64_t last; /* the last generation handed out (monotonic) */
};

/* Read the mark from the brick root (absent: clean).  0 or -errno. */
int suspect_load(struct server *srv);
/* The brick may have missed changes: a new generation, persisted. */
void suspect_mark(struct server *srv, const char *why);
/* Clear the mark if it is still generation gen.  true if it is clean now. */
bool suspect_clear(struct server *srv, uint64_t gen);

#endif
