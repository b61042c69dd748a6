/*
 * notify: the kernel's caches follow changes made through other mounts.
 *
 * Design
 * ======
 * A brick pushes an INVAL event to every other client the moment it
 * changes an object (docs/protocol.md).  The volume hands it to
 * fs_on_inval() on the loop thread, which maps object ids to inode numbers
 * and queues kernel invalidations for the notifier thread:
 *
 *   brick --INVAL--> loop: fs_on_inval --queue--> notifier thread
 *                                                   fuse_lowlevel_notify_*
 *
 * Why a thread: invalidating pages waits for page locks and invalidating
 * an entry takes the directory's lock, and the kernel may hold either while
 * it waits for a reply that only the loop thread sends.  Calling the kernel
 * from the loop could therefore deadlock; the notifier thread may block,
 * the loop never does.  (An attributes-only invalidation takes neither
 * lock; ops.c does those itself, at open.)
 *
 * A name added to or removed from a directory drops the directory's pages
 * too (N_INODE, not only its attributes): they hold the kernel's cached
 * listing (FOPEN_CACHE_DIR, ops.c invariant 6).
 *
 * Invariants:
 *  1. Only the loop thread touches the inode table; the queue carries inode
 *     numbers, which are never reused (client/inotab.h), so a late
 *     invalidation can only hit the object it was meant for, or nothing.
 *  2. After notifier_stop() no notification is written to the session fd
 *     (it is closed by the unmount that follows).
 *  3. An invalidation that cannot be queued bumps fs->list_epoch: no cached
 *     listing is kept past the next opendir once one may have been lost.
 *  4. Invalidations are numbered in queue order; an inode's
 *     kstamp.inval_seq is the number of the last one queued for it
 *     (INVAL_DROPPED when one was lost), and fs_inval_pending() is true
 *     until the thread has applied it.  While it is pending, the kernel may
 *     hold attributes and pages older than the last reply the loop sent:
 *     that reply may have been dropped by the kernel as older than a
 *     concurrent one, or may have kept pages whose mtime did not change.
 *     So an open then never keeps the page cache (ops.c invariant 5).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "fuse/fs.h"

#define NOTIFY_QUEUE_MAX (1u << 20) /* beyond: drop, and say so */
#define NOTIFY_STOP_WAIT_S 2
#define NOTIFY_DELAY_MAX_MS 60000u  /* RFS_TEST_NOTIFY_DELAY_MS's ceiling */

enum nkind {
    N_INODE,      /* attributes and pages */
    N_INODE_ATTR, /* attributes only */
    N_ENTRY,      /* the name parent/name */
};

struct nitem {
    struct nitem *next;
    enum nkind kind;
    uint64_t seq;    /* invariant 4 */
    uint64_t due_ms; /* apply no earlier (RFS_TEST_NOTIFY_DELAY_MS) */
    uint64_t ino;    /* N_ENTRY: the parent */
    size_t namelen;
    char name[];     /* N_ENTRY only, NUL-terminated */
};

struct notifier {
    struct fuse_session *se;    /* borrowed */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct nitem *head, *tail;  /* owned; under mu */
    size_t len;                 /* under mu */
    uint64_t queued;            /* under mu: the last seq given out */
    uint64_t applied;           /* under mu: the last seq applied */
    uint64_t delay_ms;          /* tests only: how long each item waits */
    bool stop;                  /* under mu */
    bool done;                  /* under mu: the thread has left */
    unsigned long dropped;      /* under mu */
};

/* Wait on n->cv until due_ms or stop (mu held).  Tests slow the thread
 * down this way to open the window invariant 4 closes. */
static void wait_due(struct notifier *n, uint64_t due_ms)
{
    while (!n->stop) {
        uint64_t now = mono_ms();
        struct timespec until;

        if (now >= due_ms)
            return;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)((due_ms - now) / 1000u);
        until.tv_nsec += (long)((due_ms - now) % 1000u) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&n->cv, &n->mu, &until);
    }
}

static void *notifier_main(void *arg)
{
    struct notifier *n = arg;

    pthread_mutex_lock(&n->mu);
    for (;;) {
        struct nitem *it;
        int rc;

        while (!n->head && !n->stop)
            pthread_cond_wait(&n->cv, &n->mu);
        if (n->head && n->delay_ms)
            wait_due(n, n->head->due_ms);
        if (n->stop)
            break;
        it = n->head;
        n->head = it->next;
        if (!n->head)
            n->tail = NULL;
        n->len--;
        pthread_mutex_unlock(&n->mu);
        if (it->kind == N_ENTRY)
            rc = fuse_lowlevel_notify_inval_entry(n->se, it->ino, it->name,
                                                  it->namelen);
        else
            rc = fuse_lowlevel_notify_inval_inode(
                n->se, it->ino, it->kind == N_INODE ? 0 : -1, 0);
        /* -ENOENT: the kernel has already forgotten it, nothing to do. */
        if (rc < 0 && rc != -ENOENT)
            log_debug("invalidate ino %llu: %s",
                      (unsigned long long)it->ino, strerror(-rc));
        pthread_mutex_lock(&n->mu);
        n->applied = it->seq;
        free(it);
    }
    n->done = true;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* Queue one invalidation.  Its number (invariant 4), or INVAL_DROPPED
 * when it was dropped (queue full, no memory, stopping). */
static uint64_t notifier_push(struct notifier *n, enum nkind kind,
                              uint64_t ino, const char *name)
{
    uint64_t seq;
    size_t len = name ? strlen(name) : 0;
    struct nitem *it = malloc(sizeof(*it) + len + 1);

    pthread_mutex_lock(&n->mu);
    if (!it || n->len >= NOTIFY_QUEUE_MAX || n->stop) {
        /* Losing one costs staleness until the attr/entry timeout, the
         * bound that holds without invalidations at all. */
        if (!n->stop && n->dropped++ % 10000 == 0)
            log_warn("kernel invalidation queue full: cached entries may "
                     "stay stale until their timeout");
        pthread_mutex_unlock(&n->mu);
        free(it);
        return INVAL_DROPPED;
    }
    it->next = NULL;
    it->kind = kind;
    it->seq = seq = ++n->queued;
    it->due_ms = n->delay_ms ? mono_ms() + n->delay_ms : 0;
    it->ino = ino;
    it->namelen = len;
    memcpy(it->name, name ? name : "", len + 1);
    if (n->tail)
        n->tail->next = it;
    else
        n->head = it;
    n->tail = it;
    n->len++;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    return seq;
}

int notifier_start(struct rfs_fs *fs)
{
    struct notifier *n = calloc(1, sizeof(*n));
    int rc;

    if (!n)
        return -ENOMEM;
    n->se = fs->se;
    if (getenv("RFS_TEST_NOTIFY_DELAY_MS")) {
        n->delay_ms = strtoull(getenv("RFS_TEST_NOTIFY_DELAY_MS"), NULL, 10);
        if (n->delay_ms > NOTIFY_DELAY_MAX_MS)
            n->delay_ms = NOTIFY_DELAY_MAX_MS;
        log_warn("kernel invalidations delayed by %llu ms (a test setting)",
                 (unsigned long long)n->delay_ms);
    }
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    rc = pthread_create(&n->thread, NULL, notifier_main, n);
    if (rc != 0) {
        pthread_cond_destroy(&n->cv);
        pthread_mutex_destroy(&n->mu);
        free(n);
        return -rc;
    }
    fs->notifier = n;
    return 0;
}

void notifier_stop(struct rfs_fs *fs)
{
    struct notifier *n = fs->notifier;
    struct timespec until;
    bool done;

    if (!n)
        return;
    fs->notifier = NULL;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += NOTIFY_STOP_WAIT_S;
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_broadcast(&n->cv);
    while (!n->done &&
           pthread_cond_timedwait(&n->cv, &n->mu, &until) != ETIMEDOUT)
        ;
    done = n->done;
    pthread_mutex_unlock(&n->mu);
    if (!done) {
        /* Stuck in the kernel behind a request only this thread could
         * answer: the unmount ends it; leak n rather than free it under
         * the thread's feet. */
        log_warn("notifier thread did not stop; leaving it");
        pthread_detach(n->thread);
        return;
    }
    pthread_join(n->thread, NULL);
    while (n->head) {
        struct nitem *it = n->head;

        n->head = it->next;
        free(it);
    }
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

/* Queue an invalidation for the loop thread's callers (invariant 3); its
 * number, for the inode's kstamp.inval_seq (invariant 4). */
static uint64_t push(struct rfs_fs *fs, enum nkind kind, uint64_t ino,
                     const char *name)
{
    uint64_t seq = notifier_push(fs->notifier, kind, ino, name);

    if (seq == INVAL_DROPPED) {
        fs->list_epoch++;
        fs->nc_epoch++;
    }
    return seq;
}

/* Queue an invalidation of ent's attributes (and pages, when `pages`):
 * what the kernel holds of it is in doubt until it is applied. */
static void push_inode(struct rfs_fs *fs, struct inotab_ent *ent, bool pages)
{
    ent->kstamp.valid = false;
    ent->kstamp.inval_seq = push(fs, pages ? N_INODE : N_INODE_ATTR,
                                 ent->ino, NULL);
}

bool fs_inval_pending(struct rfs_fs *fs, const struct inotab_ent *ent)
{
    struct notifier *n = fs->notifier;
    bool pending;

    if (!n || ent->kstamp.inval_seq == 0)
        return false;
    if (ent->kstamp.inval_seq == INVAL_DROPPED)
        return true;
    pthread_mutex_lock(&n->mu);
    pending = n->applied < ent->kstamp.inval_seq;
    pthread_mutex_unlock(&n->mu);
    return pending;
}

void fs_on_inval(const struct inval_event *ev, void *arg)
{
    struct rfs_fs *fs = arg;
    struct inotab_ent *ent;

    fs->inval_gen++; /* no LOOKUP answer on its way is kept (ops.c inv. 7) */
    if (!fs->notifier || fs->stopping)
        return; /* nothing is cached by the kernel yet, or any more */
    ent = inotab_by_id(&fs->inodes, &ev->id);
    if (ent && ev->what)
        ncache_drop_ino(&fs->names, ent->ino);
    /* A new blame may move a directory's reads to a brick that lists its
     * names in another order: a half-cached listing must not be finished
     * from there (ops.c invariant 6). */
    if (ent && (ev->what & INVAL_MARKERS))
        fs_listing_unvouch(ent);
    if (ent && (ev->what & (INVAL_ATTR | INVAL_DATA)))
        push_inode(fs, ent, ev->what & INVAL_DATA);
    if ((ev->what & INVAL_ENTRY) && ev->name[0]) {
        ent = inotab_by_id(&fs->inodes, &ev->parent);
        if (ent) {
            ncache_drop_name(&fs->names, ent->ino, ev->name);
            ncache_drop_ino(&fs->names, ent->ino); /* its times, nlink */
            /* The directory's times, link count and cached listing
             * changed too. */
            fs_listing_unvouch(ent);
            push_inode(fs, ent, true);
            push(fs, N_ENTRY, ent->ino, ev->name);
        }
    }
}

void fs_inval_inode(struct rfs_fs *fs, fuse_ino_t ino)
{
    struct inotab_ent *ent = inotab_by_ino(&fs->inodes, ino);

    if (fs->notifier && !fs->stopping) {
        if (ent)
            push_inode(fs, ent, true);
        else
            push(fs, N_INODE, ino, NULL);
    } else if (ent) {
        ent->kstamp.valid = false;
    }
}

void fs_on_links_changed(void *arg)
{
    struct rfs_fs *fs = arg;

    /* While a link was down its brick's INVALs went nowhere, and reads
     * may now go to a brick that lists names in another order. */
    fs->list_epoch++;
    fs->nc_epoch++;
}
