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
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuse/fs.h"

#define NOTIFY_QUEUE_MAX (1u << 20) /* beyond: drop, and say so */
#define NOTIFY_STOP_WAIT_S 2

enum nkind {
    N_INODE,      /* attributes and pages */
    N_INODE_ATTR, /* attributes only */
    N_ENTRY,      /* the name parent/name */
};

struct nitem {
    struct nitem *next;
    enum nkind kind;
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
    bool stop;                  /* under mu */
    bool done;                  /* under mu: the thread has left */
    unsigned long dropped;      /* under mu */
};

static void *notifier_main(void *arg)
{
    struct notifier *n = arg;

    pthread_mutex_lock(&n->mu);
    for (;;) {
        struct nitem *it;
        int rc;

        while (!n->head && !n->stop)
            pthread_cond_wait(&n->cv, &n->mu);
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
        free(it);
        pthread_mutex_lock(&n->mu);
    }
    n->done = true;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* Queue one invalidation.  0, or -ENOBUFS when it was dropped (queue
 * full, no memory, stopping). */
static int notifier_push(struct notifier *n, enum nkind kind, uint64_t ino,
                         const char *name)
{
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
        return -ENOBUFS;
    }
    it->next = NULL;
    it->kind = kind;
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
    return 0;
}

int notifier_start(struct rfs_fs *fs)
{
    struct notifier *n = calloc(1, sizeof(*n));
    int rc;

    if (!n)
        return -ENOMEM;
    n->se = fs->se;
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

/* Queue an invalidation for the loop thread's callers (invariant 3). */
static void push(struct rfs_fs *fs, enum nkind kind, uint64_t ino,
                 const char *name)
{
    if (notifier_push(fs->notifier, kind, ino, name) < 0)
        fs->list_epoch++;
}

void fs_on_inval(const struct inval_event *ev, void *arg)
{
    struct rfs_fs *fs = arg;
    struct inotab_ent *ent;

    if (!fs->notifier || fs->stopping)
        return; /* nothing is cached by the kernel yet, or any more */
    ent = inotab_by_id(&fs->inodes, &ev->id);
    /* A new blame may move a directory's reads to a brick that lists its
     * names in another order: a half-cached listing must not be finished
     * from there (ops.c invariant 6). */
    if (ent && (ev->what & INVAL_MARKERS))
        fs_listing_unvouch(ent);
    if (ent && (ev->what & (INVAL_ATTR | INVAL_DATA))) {
        ent->kstamp.valid = false;
        push(fs, (ev->what & INVAL_DATA) ? N_INODE : N_INODE_ATTR, ent->ino,
             NULL);
    }
    if ((ev->what & INVAL_ENTRY) && ev->name[0]) {
        ent = inotab_by_id(&fs->inodes, &ev->parent);
        if (ent) {
            /* The directory's times, link count and cached listing
             * changed too. */
            ent->kstamp.valid = false;
            fs_listing_unvouch(ent);
            push(fs, N_INODE, ent->ino, NULL);
            push(fs, N_ENTRY, ent->ino, ev->name);
        }
    }
}

void fs_inval_inode(struct rfs_fs *fs, fuse_ino_t ino)
{
    struct inotab_ent *ent = inotab_by_ino(&fs->inodes, ino);

    if (ent)
        ent->kstamp.valid = false;
    if (fs->notifier && !fs->stopping)
        push(fs, N_INODE, ino, NULL);
}

void fs_on_links_changed(void *arg)
{
    struct rfs_fs *fs = arg;

    /* While a link was down its brick's INVALs went nowhere, and reads
     * may now go to a brick that lists names in another order. */
    fs->list_epoch++;
}
