/*
 * Listings: READDIR (readdirplus: every entry with its attr) and HEAL_LIST.
 * Both run on the thread pool: io_uring has no getdents.
 *
 * READDIR rules: the cookie is the d_off of the last entry returned (so the
 * next call seeks there); ".", ".." and the root's ".replicafs" are never
 * returned; entries without trusted.rfs.id (put there behind the daemon's
 * back) are skipped; max_bytes bounds the entries blob.
 *
 * READDIR_SWEEP (the caller, heal, holds the directory's whole entry lock,
 * so no client is making or renaming a name in it): an entry without an id
 * whose ctime is before this run of the daemon started (less 20 ms, the
 * kernel's coarse clock: srv->sweep_before) is the debris of a crash
 * inside ops_create.c invariant 1's window, never an object being made
 * (this run makes names only after it started): it is removed.  A
 * directory that is not empty is left alone.  Without this, debris under
 * a name nobody makes again (an upload's temp name) stayed for ever.
 * Likewise an object that has its id but whose id resolves nowhere (no
 * ids/ entry, no orphans/ entry): a crash between the id and the ids/
 * link (or, for a folder, its ids/ symlink; only an empty one goes: bug
 * 22, a folder skipped here at first).  LOOKUP found it while nothing by id did, so heal took
 * the name for healed and the object's own heal waited for ever for the
 * entry heal to make it (bug 19).  Removed, the name is made again by the
 * entry heal that is listing; its id is forgotten from the fd cache on
 * the loop (readdir_done), so the new object is the one found by id.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "common/id.h"
#include "common/log.h"
#include "dents.h"
#include "healidx.h"
#include "ops.h"

/* ---- READDIR ---- */

struct op_readdir {
    struct get1 g;
    struct store_work w;
    struct req *r;
    struct obj *o;               /* referenced */
    bool is_root;
    uint64_t cookie;
    uint32_t max;
    uint8_t *buf;                /* owned until handed to the reply */
    size_t off;
    uint32_t count;
    uint64_t next;
    bool eof;
    int rc;
    struct dents d;
    bool sweep;                  /* READDIR_SWEEP */
    struct timespec before;      /* sweep names without id older than it */
    uint32_t swept;              /* debris removed */
    struct store *st;            /* borrowed: ids_fd and orphans_fd */
    uint32_t nforget;
    struct rfs_id forget[32];    /* ids of swept names with an id */
};

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Does id lead anywhere on this brick (ids/ or orphans/)?  Any doubt (an
 * error other than ENOENT) is a yes: only sure debris is removed. */
static bool id_resolves(struct store *st, const struct rfs_id *id)
{
    char path[IDS_PATH_LEN];
    struct stat sb;

    ids_path(id, path);
    if (fstatat(st->ids_fd, path, &sb, AT_SYMLINK_NOFOLLOW) == 0 ||
        errno != ENOENT)
        return true;
    /* orphans/<32hex>: the part after "hh/" */
    return fstatat(st->orphans_fd, path + 3, &sb, AT_SYMLINK_NOFOLLOW) == 0 ||
           errno != ENOENT;
}

/* 1 and *id/attr filled for an entry to list; 0 to skip it. */
static int readdir_entry(struct op_readdir *op, int dfd, const char *name,
                         struct proto_attr *attr)
{
    char proc[PROTO_NAME_MAX + 64];
    uint8_t idbuf[16];
    struct rfs_id id;
    struct stat st;
    ssize_t n;

    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0; /* removed meanwhile */
    /* lgetxattr does not follow the last component: a symlink's own id. */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", dfd, name);
    n = lgetxattr(proc, IDS_XATTR_ID, idbuf, sizeof(idbuf));
    if (n != 16) {
        if (op->sweep && n < 0 && errno == ENODATA &&
            ts_before(&st.st_ctim, &op->before) &&
            unlinkat(dfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == 0)
            op->swept++;
        else
            log_debug("readdir: '%s' has no trusted.rfs.id: skipped", name);
        return 0;
    }
    ids_id_decode(idbuf, &id);
    if (op->sweep && ts_before(&st.st_ctim, &op->before) &&
        op->nforget < sizeof(op->forget) / sizeof(op->forget[0]) &&
        !id_resolves(op->st, &id) &&
        unlinkat(dfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == 0) {
        op->forget[op->nforget++] = id;
        op->swept++;
        return 0;
    }
    attr_from_stat(attr, &id, &st);
    return 1;
}

static void readdir_work(struct store_work *w)
{
    struct op_readdir *op = container_of(w, struct op_readdir, w);
    struct dirent64 *de = NULL;
    int rc;

    op->next = op->cookie;
    rc = dents_open(&op->d, op->o->fd, op->cookie);
    while (rc >= 0 && (rc = dents_next(&op->d, &de)) > 0) {
        struct proto_attr attr;
        const char *name = de->d_name;

        if (dents_is_dot(name) || (op->is_root && !strcmp(name, META_NAME)) ||
            !readdir_entry(op, op->d.fd, name, &attr)) {
            op->next = (uint64_t)de->d_off;
            continue;
        }
        if (proto_dirent_put(op->buf, op->max, &op->off, name, &attr) < 0)
            break; /* full (or an unsendable name): resume here next time */
        op->count++;
        op->next = (uint64_t)de->d_off;
    }
    dents_close(&op->d);
    op->eof = rc == 0;
    op->rc = rc < 0 ? rc : 0;
    if (op->rc == 0 && !op->eof && op->count == 0)
        op->rc = -EINVAL; /* max_bytes cannot hold even one entry */
}

static void readdir_done(struct store_work *w)
{
    struct op_readdir *op = container_of(w, struct op_readdir, w);
    struct server *srv = op->r->srv;
    struct readdir_rep rep = {.next_cookie = op->next, .eof = op->eof,
                              .count = op->count,
                              .entries = {op->buf, (uint32_t)op->off}};
    int64_t dirty;

    /* Read after the listing: a change it saw was marked before it was
     * made, and a mark still there now was not cleared by a quorum's
     * success.  Unreadable counts as dirty. */
    rep.dirty = markers_dirty_now(op->o, &dirty) < 0 || dirty != 0;

    for (uint32_t i = 0; i < op->nforget; i++)
        ids_forget_id(&srv->ids, &op->forget[i]);
    if (op->swept) {
        char hex[RFS_ID_HEX_LEN + 1];

        rfs_id_to_hex(&op->o->id, hex);
        log_warn("heal: removed %u names left by a crash (no id, or an id "
                 "that leads nowhere) in "
                 "directory %s", op->swept, hex);
    }
    ids_put(&srv->ids, op->o);
    if (op->rc == 0)
        req_reply_tail(op->r, 0, &rep, op->buf);
    else {
        free(op->buf);
        req_reply(op->r, op->rc, NULL);
    }
    free(op);
}

static void readdir_obj_cb(struct get1 *g, struct obj *o)
{
    struct op_readdir *op = container_of(g, struct op_readdir, g);
    struct req *r = op->r;

    if (!o) {
        free(op);
        return;
    }
    op->o = o;
    op->is_root = o == r->srv->ids.root;
    op->buf = o->type == S_IFDIR ? malloc(op->max) : NULL;
    if (!op->buf) {
        int rc = o->type == S_IFDIR ? -ENOMEM : -ENOTDIR;

        ids_put(&r->srv->ids, o);
        free(op);
        req_reply(r, rc, NULL);
        return;
    }
    store_queue_work(&r->srv->st, &op->w, readdir_work, readdir_done);
}

void op_readdir(struct req *r)
{
    const struct readdir_req *m = REQ_MSG(r, readdir_req);
    struct op_readdir *op;

    if (m->max_bytes == 0) {
        req_reply(r, -EINVAL, NULL);
        return;
    }
    op = calloc(1, sizeof(*op));
    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    op->cookie = m->cookie;
    op->sweep = m->flags & READDIR_SWEEP;
    op->before = r->srv->sweep_before;
    op->st = &r->srv->st;
    op->max = m->max_bytes < PROTO_READDIR_MAX ? m->max_bytes
                                               : PROTO_READDIR_MAX;
    get1_start(&op->g, r, &m->id, readdir_obj_cb);
}

/* ---- HEAL_LIST ---- */

struct op_heal_list {
    struct store_work w;
    struct req *r;
    uint8_t *buf;                /* owned until handed to the reply */
    uint64_t cookie;
    uint32_t max;
    uint32_t count;
    uint64_t next;
    bool eof;
    int rc;
};

static void heal_list_work(struct store_work *w)
{
    struct op_heal_list *op = container_of(w, struct op_heal_list, w);

    op->rc = healidx_list(w->st->heal_fd, op->cookie, op->max, op->buf,
                          &op->count, &op->next, &op->eof);
}

static void heal_list_done(struct store_work *w)
{
    struct op_heal_list *op = container_of(w, struct op_heal_list, w);
    struct heal_list_rep rep = {.next_cookie = op->next, .eof = op->eof,
                                .count = op->count,
                                .ids = {op->buf, op->count * 16}};

    if (op->rc == 0)
        req_reply_tail(op->r, 0, &rep, op->buf);
    else {
        free(op->buf);
        req_reply(op->r, op->rc, NULL);
    }
    free(op);
}

void op_heal_list(struct req *r)
{
    const struct heal_list_req *m = REQ_MSG(r, heal_list_req);
    struct op_heal_list *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    op->cookie = m->cookie;
    op->max = m->max ? m->max : PROTO_HEAL_LIST_MAX;
    op->buf = malloc((size_t)op->max * 16);
    if (!op->buf) {
        free(op);
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    store_queue_work(&r->srv->st, &op->w, heal_list_work, heal_list_done);
}
