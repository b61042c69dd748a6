/*
 * Heal index (see healidx.h).
 *
 * Design.  An entry is a name in .replicafs/heal/: the object's hex id.
 * Adding is a hard link to one empty file, .replicafs/heal.base (linkat
 * fails with EEXIST when the entry is there, so we know whether it is new,
 * for the exact count); removing is unlinkat.  Both go through the ring.
 * Listing pages through the directory with getdents64 cookies on a pool
 * thread.
 *
 * Why links: every change marks its object dirty first and clears it
 * after, so a small-file create adds and removes two entries on each brick.
 * An empty file per entry cost an inode allocation each time, and ext4's
 * allocator scans its recently freed inodes (recently_deleted) on every
 * one: a third of a brick's CPU in a create-heavy run (docs/performance.md,
 * finding 3).  A link allocates nothing.  When the base is missing or full
 * (ext4 allows 65,000 links; a brick down for long can leave more objects
 * pending) the entry falls back to an empty file of its own: same name,
 * same meaning, the listing cannot tell them apart.
 *
 * Invariants:
 *  1. add and del are idempotent: EEXIST on add and ENOENT on del are
 *     success, so a retry after a crash or a lost reply is harmless.
 *  2. count changes only when an entry was really created or removed.
 *  3. markers.c orders index updates around the marker writes so that after
 *     a crash the index is a superset of the objects with nonzero markers
 *     (add before markers become nonzero, del after they are zero).
 *  4. An entry whose id resolves nowhere (no ids/ link, no orphans/ link,
 *     and not the root) names an object deleted for good: nothing can ever
 *     address it to clear its markers.  Listing drops it (skipped and
 *     unlinked), and so does the count at startup.  ops_ns.c removes the
 *     entry itself when it removes the ids/ link; this catches what that
 *     cannot (an orphan reaped later, a crash between the two unlinks, a
 *     brick from before).  An object's ids/ link exists before anything
 *     can mark it, so a live object is never dropped.  Entries dropped by
 *     a listing (on a pool thread) are not taken off `count` (the loop
 *     thread's): it is high by them until the next start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/id.h"
#include "dents.h"
#include "healidx.h"
#include "list.h"

/* Invariant 4: does the entry `hex` (a valid id) still name an object?
 * heal/ , ids/ and orphans/ are siblings in .replicafs.  Any error other
 * than ENOENT counts as "yes": only a sure answer drops an entry. */
static bool entry_live(int heal_fd, const char *hex, const struct rfs_id *id)
{
    char path[16 + 2 * RFS_ID_HEX_LEN];
    struct stat sb;

    if (rfs_id_is_root(id))
        return true;
    snprintf(path, sizeof(path), "../ids/%.2s/%s", hex, hex);
    if (fstatat(heal_fd, path, &sb, AT_SYMLINK_NOFOLLOW) == 0 ||
        errno != ENOENT)
        return true;
    snprintf(path, sizeof(path), "../orphans/%s", hex);
    if (fstatat(heal_fd, path, &sb, AT_SYMLINK_NOFOLLOW) == 0 ||
        errno != ENOENT)
        return true;
    return false;
}

/* Invariant 4: unlink a dead entry; true if it is gone. */
static bool drop_dead(int heal_fd, const char *name)
{
    struct rfs_id id;

    if (strlen(name) != RFS_ID_HEX_LEN || rfs_id_from_hex(name, &id) < 0 ||
        entry_live(heal_fd, name, &id))
        return false;
    return unlinkat(heal_fd, name, 0) == 0 || errno == ENOENT;
}

int healidx_init(struct healidx *h, struct store *st)
{
    struct dents d;
    struct dirent64 *de = NULL;
    int rc;

    h->st = st;
    h->count = 0;
    /* The base of every linked entry (Design); a brick from before links
     * has none yet.  Failing here only means entries of their own. */
    rc = openat(st->meta_fd, HEALIDX_BASE,
                O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (rc >= 0)
        close(rc);
    rc = dents_open(&d, st->heal_fd, 0);
    if (rc < 0)
        return rc;
    while ((rc = dents_next(&d, &de)) > 0)
        if (!dents_is_dot(de->d_name) && !drop_dead(st->heal_fd, de->d_name))
            h->count++;
    dents_close(&d);
    return rc;
}

static void add_cb(struct store_op *sop, int res)
{
    struct healidx_op *op = container_of(sop, struct healidx_op, sop);

    if (res >= 0) {
        store_close_fd(op->h->st, res);
        op->h->count++; /* invariant 2 */
        res = 0;
    } else if (res == -EEXIST) {
        res = 0; /* invariant 1 */
    }
    op->cb(op, res);
}

static void link_cb(struct store_op *sop, int res)
{
    struct healidx_op *op = container_of(sop, struct healidx_op, sop);

    if (res == -EMLINK || res == -ENOENT) {
        /* The base is full or gone: an entry of its own (see Design). */
        op->how = (struct open_how){.flags = O_WRONLY | O_CREAT | O_EXCL |
                                             O_NOFOLLOW,
                                    .mode = 0600,
                                    .resolve = STORE_RESOLVE};
        store_openat2(op->h->st, &op->sop, add_cb, op->h->st->heal_fd,
                      op->name, &op->how);
        return;
    }
    if (res == 0)
        op->h->count++; /* invariant 2 */
    op->cb(op, res == -EEXIST ? 0 : res); /* invariant 1 */
}

void healidx_add(struct healidx *h, struct healidx_op *op,
                 const struct rfs_id *id, healidx_cb cb)
{
    op->h = h;
    op->cb = cb;
    rfs_id_to_hex(id, op->name);
    store_linkat(h->st, &op->sop, link_cb, h->st->meta_fd, HEALIDX_BASE,
                 h->st->heal_fd, op->name, 0);
}

static void del_cb(struct store_op *sop, int res)
{
    struct healidx_op *op = container_of(sop, struct healidx_op, sop);

    if (res == 0)
        op->h->count--;
    op->cb(op, res == -ENOENT ? 0 : res);
}

void healidx_del(struct healidx *h, struct healidx_op *op,
                 const struct rfs_id *id, healidx_cb cb)
{
    op->h = h;
    op->cb = cb;
    rfs_id_to_hex(id, op->name);
    store_unlinkat(h->st, &op->sop, del_cb, h->st->heal_fd, op->name, 0);
}

int healidx_list(int heal_fd, uint64_t cookie, uint32_t max, uint8_t *out,
                 uint32_t *count, uint64_t *next, bool *eof)
{
    struct dents *d = malloc(sizeof(*d));
    struct dirent64 *de = NULL;
    uint32_t n = 0;
    uint64_t pos = cookie;
    int rc;

    if (!d)
        return -ENOMEM;
    rc = dents_open(d, heal_fd, cookie);
    if (rc < 0)
        goto out_free;
    *eof = false;
    while (n < max && (rc = dents_next(d, &de)) > 0) {
        struct rfs_id id;

        pos = (uint64_t)de->d_off;
        if (strlen(de->d_name) != RFS_ID_HEX_LEN ||
            rfs_id_from_hex(de->d_name, &id) < 0)
            continue;
        if (!entry_live(heal_fd, de->d_name, &id)) { /* invariant 4 */
            (void)unlinkat(heal_fd, de->d_name, 0);
            continue;
        }
        proto_id_put(out + 16 * n, &id);
        n++;
    }
    if (rc == 0)
        *eof = true;
    if (rc >= 0 && n == max && !*eof) {
        /* Peek: a full page that ends exactly at the end is eof too. */
        rc = dents_next(d, &de);
        if (rc == 0)
            *eof = true;
    }
    dents_close(d);
    if (rc >= 0) {
        *count = n;
        *next = pos;
        rc = 0;
    }
out_free:
    free(d);
    return rc;
}
