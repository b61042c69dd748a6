/*
 * Data operations: READ, WRITE, FSYNC, on the object's cached fd through
 * the ring.  Short reads and writes are continued (liburing's lesson: a
 * short count is not an error and not the end); a read that returns 0 is
 * the end of the file.
 *
 * READ replies hand their buffer to the connection, which sends it as the
 * second iovec of the reply (no copy) and frees it when written.
 */
#include <errno.h>
#include <stdlib.h>

#include "conn.h"
#include "ops.h"

static int data_type_check(const struct obj *o)
{
    if (o->type == S_IFDIR)
        return -EISDIR;
    return o->type == S_IFREG ? 0 : -EINVAL;
}

/* ---- READ ---- */

struct op_read {
    struct get1 g;
    struct store_op sop;
    struct req *r;
    struct obj *o;               /* referenced */
    uint8_t *buf;                /* owned until handed to the reply */
    uint32_t want;
    uint32_t got;
    uint64_t off;
};

static void read_finish(struct op_read *op, int rc)
{
    struct server *srv = op->r->srv;
    struct read_rep rep = {.data = {op->buf, op->got}};

    if (op->o)
        ids_put(&srv->ids, op->o);
    if (rc == 0)
        srv->metrics.bytes_read += op->got;
    if (rc == 0 && op->buf)
        req_reply_tail(op->r, 0, &rep, op->buf); /* buf goes with the reply */
    else {
        free(op->buf);
        req_reply(op->r, rc, &rep);
    }
    free(op);
}

static void read_data_cb(struct store_op *sop, int res)
{
    struct op_read *op = container_of(sop, struct op_read, sop);

    if (res < 0) {
        read_finish(op, res);
        return;
    }
    op->got += (uint32_t)res;
    if (res == 0 || op->got == op->want) {
        read_finish(op, 0);
        return;
    }
    store_read(&op->r->srv->st, &op->sop, read_data_cb, op->o->fd,
               op->buf + op->got, op->want - op->got, op->off + op->got);
}

static void read_obj_cb(struct get1 *g, struct obj *o)
{
    struct op_read *op = container_of(g, struct op_read, g);
    int rc;

    if (!o) {
        free(op);
        return;
    }
    op->o = o;
    rc = data_type_check(o);
    if (rc < 0 || op->want == 0) {
        read_finish(op, rc);
        return;
    }
    op->buf = malloc(op->want);
    if (!op->buf) {
        read_finish(op, -ENOMEM);
        return;
    }
    store_read(&op->r->srv->st, &op->sop, read_data_cb, o->fd, op->buf,
               op->want, op->off);
}

void op_read(struct req *r)
{
    const struct read_req *m = REQ_MSG(r, read_req);
    struct op_read *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    op->want = m->size;
    op->off = m->offset;
    get1_start(&op->g, r, &m->id, read_obj_cb);
}

/* ---- WRITE ---- */

struct op_write {
    struct get1 g;
    struct store_op sop;
    struct req *r;
    struct obj *o;               /* referenced */
    const uint8_t *data;         /* borrowed: points into r->frame */
    uint32_t len;
    uint32_t done;
    uint64_t off;
    bool sums_begun;             /* csum_write_begin ran: end it */
    struct statx stx;
};

static void write_finish(struct op_write *op, int rc)
{
    struct req *r = op->r;
    struct server *srv = r->srv;
    struct write_rep rep = {.count = op->done};

    if (op->sums_begun)
        csum_write_end(srv, op->o);
    if (rc == 0) {
        attr_from_statx(&rep.attr, &op->o->id, &op->stx);
        srv->metrics.bytes_written += op->done;
        server_inval(srv, r->c, &op->o->id, INVAL_DATA | INVAL_ATTR, NULL,
                     NULL, r);
    }
    if (op->o)
        ids_put(&srv->ids, op->o);
    free(op);
    req_reply(r, rc, &rep);
}

static void write_stat_cb(struct store_op *sop, int res)
{
    write_finish(container_of(sop, struct op_write, sop), res);
}

static void write_data_cb(struct store_op *sop, int res)
{
    struct op_write *op = container_of(sop, struct op_write, sop);
    struct store *st = &op->r->srv->st;

    if (res <= 0) { /* 0: no progress; do not spin */
        write_finish(op, res < 0 ? res : -EIO);
        return;
    }
    op->done += (uint32_t)res;
    if (op->done < op->len) {
        store_write(st, &op->sop, write_data_cb, op->o->fd, op->data + op->done,
                    op->len - op->done, op->off + op->done);
        return;
    }
    store_statx(st, &op->sop, write_stat_cb, op->o->fd, "", AT_EMPTY_PATH,
                &op->stx);
}

static void write_obj_cb(struct get1 *g, struct obj *o)
{
    struct op_write *op = container_of(g, struct op_write, g);
    struct store *st = &op->r->srv->st;
    int rc;

    if (!o) {
        free(op);
        return;
    }
    op->o = o;
    rc = data_type_check(o);
    if (rc < 0) {
        write_finish(op, rc);
        return;
    }
    if (op->len == 0) { /* nothing to write: still answer with the attr */
        store_statx(st, &op->sop, write_stat_cb, o->fd, "", AT_EMPTY_PATH,
                    &op->stx);
        return;
    }
    /* Stored block sums of what changes are void before it changes. */
    csum_write_begin(op->r->srv, o, op->off, op->len);
    op->sums_begun = true;
    store_write(st, &op->sop, write_data_cb, o->fd, op->data, op->len, op->off);
}

void op_write(struct req *r)
{
    const struct write_req *m = REQ_MSG(r, write_req);
    struct op_write *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    op->data = m->data.data;
    op->len = m->data.len;
    op->off = m->offset;
    get1_start(&op->g, r, &m->id, write_obj_cb);
}

/* ---- FSYNC ---- */

struct op_fsync {
    struct get1 g;
    struct store_op sop;
    struct req *r;
    struct obj *o;               /* referenced */
};

static void fsync_done_cb(struct store_op *sop, int res)
{
    struct op_fsync *op = container_of(sop, struct op_fsync, sop);
    struct req *r = op->r;

    ids_put(&r->srv->ids, op->o);
    free(op);
    req_reply(r, res, NULL);
}

static void fsync_obj_cb(struct get1 *g, struct obj *o)
{
    struct op_fsync *op = container_of(g, struct op_fsync, g);

    if (!o) {
        free(op);
        return;
    }
    op->o = o;
    if (o->opath) { /* a symlink or fifo has no data to sync */
        fsync_done_cb(&op->sop, 0);
        return;
    }
    /* A directory's fd syncs the directory (its entries). */
    store_fsync(&op->r->srv->st, &op->sop, fsync_done_cb, o->fd,
                REQ_MSG(op->r, fsync_req)->datasync != 0);
}

void op_fsync(struct req *r)
{
    struct op_fsync *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    get1_start(&op->g, r, &REQ_MSG(r, fsync_req)->id, fsync_obj_cb);
}
