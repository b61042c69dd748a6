/*
 * CHECKSUM, and keeping the stored block sums honest on the write path.
 * The on-disk format, its trust rule and invariants are in sums.c.
 *
 *   CHECKSUM: object --> (pool) fstat, load sums/hh/<hex> if its stamp
 *     matches, read + xxh3 the blocks asked for that are not valid (all of
 *     them with CHECKSUM_DEEP), fstat again --> (loop) reply, then persist
 *     the image if nothing changed meanwhile (sums.c invariant 3).
 *   WRITE / truncating SETATTR: csum_write_begin (void the touched blocks)
 *     --> the change --> csum_write_end (stamp the new file state).
 *
 * Object sums state (obj.sums_state), a cache of "is there a sums file":
 *   UNKNOWN --begin: ENOENT--> ABSENT (writes cost nothing more)
 *   UNKNOWN/ABSENT --CHECKSUM persisted--> PRESENT
 *   PRESENT --begin: the stamp does not match (changed behind our back):
 *            file removed--> ABSENT
 *
 * Why the sums file I/O is synchronous on the loop: it only happens for
 * files that have stored sums (verified or healed before) and then change,
 * it is a few hundred bytes into the page cache (a bitmap and a header),
 * and doing it on the loop serialises it with the generation checks of
 * invariant 3 without a lock.  Persisting a whole image (8 bytes per block:
 * 128 KiB for a 1 GiB file at 64 KiB blocks) is likewise one pwrite.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "ops.h"
#include "sums.h"

enum csum_state {
    CSUM_UNKNOWN = 0,
    CSUM_ABSENT,
    CSUM_PRESENT,
};

static int sums_open(struct server *srv, const struct rfs_id *id, int flags)
{
    char path[SUMS_PATH_LEN];
    int fd;

    sums_path(id, path);
    fd = openat(srv->st.sums_fd, path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
    return fd < 0 ? -errno : fd;
}

static void sums_remove(struct server *srv, struct obj *o)
{
    char path[SUMS_PATH_LEN];

    sums_path(&o->id, path);
    if (unlinkat(srv->st.sums_fd, path, 0) < 0 && errno != ENOENT)
        log_warn("sums: cannot remove %s: %s", path, strerror(errno));
    o->sums_state = CSUM_ABSENT;
}

/* Does the stored stamp still describe the file?  (Only asked when no
 * change of ours is in flight, so any difference is someone else's.) */
static bool stamp_current(struct server *srv, int sfd, const struct stat *st)
{
    struct sums_stamp now, stored;

    sums_stamp_from_stat(&now, st, srv->boot_id);
    return sums_get_stamp(sfd, &stored) == 0 && sums_stamp_eq(&now, &stored);
}

void csum_write_begin(struct server *srv, struct obj *o, uint64_t off,
                      uint64_t len)
{
    uint64_t from, to;
    struct stat st;
    int sfd, rc;

    o->sums_gen++;
    o->sums_busy++;
    if (o->sums_state == CSUM_ABSENT)
        return;
    sfd = sums_open(srv, &o->id, O_RDWR);
    if (sfd == -ENOENT) {
        o->sums_state = CSUM_ABSENT;
        return;
    }
    if (sfd < 0 || fstat(o->fd, &st) < 0) {
        rc = sfd < 0 ? sfd : -errno;
        goto err_remove;
    }
    if (o->sums_busy == 1 && !stamp_current(srv, sfd, &st)) {
        rc = -ESTALE; /* changed behind the daemon: nothing in it is good */
        goto err_remove;
    }
    from = off < (uint64_t)st.st_size ? off : (uint64_t)st.st_size;
    to = len == CSUM_TO_END || off + len < off ? UINT64_MAX : off + len;
    rc = sums_invalidate(sfd, from, to);
    if (rc < 0)
        goto err_remove;
    close(sfd);
    o->sums_state = CSUM_PRESENT;
    return;
err_remove:
    /* A sums file we could not void must not survive the change. */
    if (sfd >= 0)
        close(sfd);
    if (rc != -ESTALE)
        log_warn("sums: cannot invalidate: %s; removing", strerror(-rc));
    sums_remove(srv, o);
}

void csum_write_end(struct server *srv, struct obj *o)
{
    struct sums_stamp stamp;
    struct stat st;
    int sfd;

    if (o->sums_busy > 0)
        o->sums_busy--;
    if (o->sums_state != CSUM_PRESENT)
        return;
    sfd = sums_open(srv, &o->id, O_RDWR);
    if (sfd < 0) {
        if (sfd == -ENOENT)
            o->sums_state = CSUM_ABSENT;
        return;
    }
    if (fstat(o->fd, &st) == 0) {
        sums_stamp_from_stat(&stamp, &st, srv->boot_id);
        if (sums_set_stamp(sfd, &stamp) < 0) { /* old stamp: void, safe */
            close(sfd);
            sums_remove(srv, o);
            return;
        }
    }
    close(sfd);
}

/* ---- forget ---- */

struct csum_forget_op {
    struct store_op sop;
    char path[SUMS_PATH_LEN];
};

static void forget_cb(struct store_op *sop, int res)
{
    struct csum_forget_op *op = container_of(sop, struct csum_forget_op, sop);

    if (res < 0 && res != -ENOENT)
        log_warn("sums: cannot remove %s: %s", op->path, strerror(-res));
    free(op);
}

void csum_forget(struct server *srv, const struct rfs_id *id)
{
    struct csum_forget_op *op = malloc(sizeof(*op));

    if (!op)
        return; /* a stale sums file of a gone id is never read again */
    sums_path(id, op->path);
    store_unlinkat(&srv->st, &op->sop, forget_cb, srv->st.sums_fd, op->path,
                   0);
}

/* ---- CHECKSUM ---- */

struct op_csum {
    struct get1 g;
    struct store_work w;
    struct req *r;
    struct obj *o;               /* referenced */
    uint32_t gen0;               /* o->sums_gen at the start */
    bool quiet0;                 /* no change in flight at the start */
    bool deep;
    uint64_t offset, length;
    uint32_t bs;
    /* filled on the pool thread */
    int rc;
    bool loaded;                 /* a trusted image was on disk */
    bool changed;                /* the file moved during the computation */
    struct sums s;               /* owned */
    struct sums_stamp stamp;     /* of the file when we started */
    uint64_t size;
    uint32_t first, count, computed, mismatched;
};

static void csum_free(struct server *srv, struct op_csum *op)
{
    sums_fini(&op->s);
    if (op->o)
        ids_put(&srv->ids, op->o);
    free(op);
}

/* The image for a file of `size`: the trusted one on disk, or an empty
 * one (invariant 1 of sums.c). */
static int csum_image(struct op_csum *op, int sfd, const struct stat *st,
                      const uint8_t *boot)
{
    uint64_t nb = sums_blocks((uint64_t)st->st_size, op->bs);
    int rc;

    if (nb > UINT32_MAX)
        return -EFBIG;
    if (sfd >= 0 && sums_load(sfd, &op->s) == 0) {
        struct sums_stamp now;

        sums_stamp_from_stat(&now, st, boot);
        if (op->s.block_size == op->bs && sums_stamp_eq(&now, &op->s.stamp)) {
            op->loaded = true;
            return sums_resize(&op->s, (uint32_t)nb);
        }
        sums_fini(&op->s);
    }
    rc = sums_init(&op->s, op->bs, (uint32_t)nb);
    if (rc == 0)
        sums_stamp_from_stat(&op->s.stamp, st, boot);
    return rc;
}

static void csum_work(struct store_work *w)
{
    struct op_csum *op = container_of(w, struct op_csum, w);
    struct server *srv = op->r->srv;
    struct stat st0, st1;
    uint8_t *buf = NULL;
    uint64_t end, nb;
    int sfd;

    if (fstat(op->o->fd, &st0) < 0) {
        op->rc = -errno;
        return;
    }
    op->size = (uint64_t)st0.st_size;
    sfd = sums_open(srv, &op->o->id, O_RDONLY);
    op->rc = csum_image(op, sfd, &st0, srv->boot_id);
    if (sfd >= 0)
        close(sfd);
    if (op->rc < 0)
        return;
    op->stamp = op->s.stamp;
    nb = op->s.nblocks;
    op->first = (uint32_t)(op->offset / op->bs < nb ? op->offset / op->bs : nb);
    end = op->length == 0 || op->offset + op->length < op->offset
              ? nb
              : sums_blocks(op->offset + op->length, op->bs);
    if (end > nb)
        end = nb;
    if (end - op->first > PROTO_CSUM_MAX_BLOCKS)
        end = op->first + PROTO_CSUM_MAX_BLOCKS;
    op->count = (uint32_t)(end - op->first);
    if (op->count > 0 && !(buf = malloc(op->bs))) {
        op->rc = -ENOMEM;
        return;
    }
    if (op->count > 0)
        op->rc = sums_fill(op->o->fd, op->size, &op->s, op->first, op->count,
                           op->deep, buf, &op->computed, &op->mismatched);
    free(buf);
    if (fstat(op->o->fd, &st1) < 0) {
        op->changed = true;
        return;
    }
    sums_stamp_from_stat(&op->s.stamp, &st1, srv->boot_id);
    op->changed = !sums_stamp_eq(&op->s.stamp, &op->stamp);
}

/* Invariant 3 of sums.c: only when no change of ours ran meanwhile and the
 * file did not move under the computation. */
static void csum_persist(struct op_csum *op)
{
    struct server *srv = op->r->srv;
    struct obj *o = op->o;
    char path[SUMS_PATH_LEN], dir[3];
    int sfd, rc;

    if (op->computed == 0 || op->changed || !op->quiet0 || o->sums_busy ||
        o->sums_gen != op->gen0)
        return;
    sums_path(&o->id, path);
    memcpy(dir, path, 2);
    dir[2] = '\0';
    if (mkdirat(srv->st.sums_fd, dir, 0700) < 0 && errno != EEXIST) {
        log_warn("sums: mkdir %s: %s", dir, strerror(errno));
        return;
    }
    sfd = sums_open(srv, &o->id, O_RDWR | O_CREAT);
    if (sfd < 0) {
        log_warn("sums: open %s: %s", path, strerror(-sfd));
        return;
    }
    rc = sums_store(sfd, &op->s);
    close(sfd);
    if (rc < 0) {
        log_warn("sums: write %s: %s", path, strerror(-rc));
        sums_remove(srv, o); /* possibly torn: sums_load refuses it anyway */
        return;
    }
    o->sums_state = CSUM_PRESENT;
}

static void csum_done(struct store_work *w)
{
    struct op_csum *op = container_of(w, struct op_csum, w);
    struct checksum_rep rep = {0};
    struct server *srv = op->r->srv;
    struct req *r = op->r;
    uint8_t *blob = NULL;

    if (op->rc == 0 && op->mismatched > 0)
        log_warn("sums: %u block(s) of an object differ from their stored "
                 "sums: changed on disk without a write (corruption?)",
                 op->mismatched);
    if (op->rc == 0 && !(blob = malloc((size_t)op->count * 8 + 1)))
        op->rc = -ENOMEM;
    if (op->rc < 0) {
        int rc = op->rc;

        csum_free(srv, op);
        req_reply(r, rc, NULL);
        return;
    }
    for (uint32_t i = 0; i < op->count; i++) {
        uint64_t v = op->s.sum[op->first + i];

        for (int k = 0; k < 8; k++)
            blob[8 * i + k] = (uint8_t)(v >> (8 * k));
    }
    rep.size = op->size;
    rep.count = op->count;
    rep.sums = (struct proto_bytes){blob, op->count * 8};
    csum_persist(op);
    csum_free(srv, op);
    req_reply_tail(r, 0, &rep, blob); /* blob goes with the reply */
}

static void csum_obj_cb(struct get1 *g, struct obj *o)
{
    struct op_csum *op = container_of(g, struct op_csum, g);
    struct req *r = op->r;
    int rc = 0;

    if (!o) {
        free(op);
        return;
    }
    op->o = o;
    if (o->type == S_IFDIR)
        rc = -EISDIR;
    else if (o->type != S_IFREG)
        rc = -EINVAL;
    if (rc < 0) {
        ids_put(&r->srv->ids, o);
        free(op);
        req_reply(r, rc, NULL);
        return;
    }
    op->gen0 = o->sums_gen;
    op->quiet0 = o->sums_busy == 0;
    store_queue_work(&r->srv->st, &op->w, csum_work, csum_done);
}

void op_checksum(struct req *r)
{
    const struct checksum_req *m = REQ_MSG(r, checksum_req);
    struct op_csum *op;

    if (!sums_block_size_ok(m->block_size) || m->offset % m->block_size) {
        req_reply(r, -EINVAL, NULL);
        return;
    }
    op = calloc(1, sizeof(*op));
    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    op->deep = m->flags & CHECKSUM_DEEP;
    op->offset = m->offset;
    op->length = m->length;
    op->bs = m->block_size;
    get1_start(&op->g, r, &m->id, csum_obj_cb);
}
