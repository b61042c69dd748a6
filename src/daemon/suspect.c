/*
 * suspect: the brick's own "I may have missed changes" mark (suspect.h).
 *
 * Invariants:
 *  1. The mark on disk is set before anything that could follow from the
 *     event is answered: suspect_mark() writes synchronously on the loop.
 *  2. Generations only grow (last), across restarts too, so a heal's clear
 *     for an old generation can never match a newer mark.
 *  3. A failure to persist leaves the in-memory mark set (the brick stays
 *     suspect for as long as it runs), and says so.
 */
#include <errno.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>

#include "common/log.h"
#include "server.h"
#include "suspect.h"

#define XATTR_SUSPECT "trusted.rfs.suspect"

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int persist(struct server *srv)
{
    uint8_t buf[16];

    put_u64(buf, srv->suspect.gen);
    put_u64(buf + 8, srv->suspect.last);
    if (setxattr(srv->dir, XATTR_SUSPECT, buf, sizeof(buf), 0) < 0)
        return -errno;
    return 0;
}

int suspect_load(struct server *srv)
{
    uint8_t buf[16];
    ssize_t n = getxattr(srv->dir, XATTR_SUSPECT, buf, sizeof(buf));

    memset(&srv->suspect, 0, sizeof(srv->suspect));
    if (n < 0)
        return errno == ENODATA ? 0 : -errno;
    if (n != sizeof(buf))
        return -EIO;
    srv->suspect.gen = get_u64(buf);
    srv->suspect.last = get_u64(buf + 8);
    return 0;
}

void suspect_mark(struct server *srv, const char *why)
{
    struct timespec ts;
    uint64_t now;
    int rc;

    /* Time-based, so that a brick whose xattr was lost still moves on. */
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    srv->suspect.last = now > srv->suspect.last ? now : srv->suspect.last + 1;
    if (!srv->suspect.gen)
        log_info("suspect: this brick may have missed changes (%s) until a "
                 "heal clears it", why);
    srv->suspect.gen = srv->suspect.last;
    rc = persist(srv);
    if (rc < 0)
        log_warn("suspect: cannot record the mark: %s", strerror(-rc));
}

bool suspect_clear(struct server *srv, uint64_t gen)
{
    int rc;

    if (!srv->suspect.gen)
        return true;
    if (gen != srv->suspect.gen)
        return false;
    srv->suspect.gen = 0;
    rc = persist(srv);
    if (rc < 0) { /* invariant 3 */
        log_warn("suspect: cannot clear the mark: %s", strerror(-rc));
        srv->suspect.gen = gen;
        return false;
    }
    log_info("suspect: cleared by heal");
    return true;
}
