/*
 * io_uring ring + eventfd + libuv thread pool: the brick's disk engine.
 *
 * Design.  Every disk operation of the daemon is a small state machine in
 * its own struct that embeds a struct store_op.  A step prepares one SQE
 * with user_data = &op; the kernel runs it; the eventfd registered with the
 * ring becomes readable; the uv_poll watching it reaps every CQE on the loop
 * thread and calls op->cb(op, res), which either prepares the next step or
 * finishes (replies and frees the op).  So the loop thread never blocks on
 * the disk and no lock is needed: all daemon state is touched only on the
 * loop thread, and the thread pool works only on what its work struct owns.
 *
 * Submission is batched: preps only fill SQEs; prepare_cb (a uv_prepare,
 * which runs once per loop iteration just before the loop blocks) submits
 * them all with one io_uring_submit().  A full SQ ring is submitted early.
 *
 *   op lifecycle:  prep --(prepare_cb: submit)--> in kernel
 *                    --(eventfd readable: poll_cb reaps)--> cb(op, res)
 *                  no SQE free after an early submit --> deferred
 *                    --(idle_cb)--> cb(op, -EAGAIN)
 *                  metadata call, inline_meta --(syscall now)--> deferred
 *                    --(idle_cb)--> cb(op, res)
 *
 * Inline metadata: io_uring runs no metadata call itself (openat2, statx,
 * link, unlink, rename, mkdir, symlink, xattrs): it hands each to a worker
 * thread, and on a cached tree the hand-off costs more than the call.  So
 * with inline_meta (the default; replicafsd --ring-metadata turns it off)
 * those calls run here on the loop thread and only their completion is
 * deferred.  Data read, write, fsync and close stay on the ring
 * (docs/daemon.md, "Threads and the loop").
 *
 * Invariants:
 *  1. Each prep leads to exactly one call of its cb, never from inside the
 *     prep itself (so a prep may be the last statement of a callback that
 *     goes on using its op until it returns).
 *  2. inflight counts preps + pool works whose cb/done has not run yet; the
 *     daemon shuts down only when it is 0 (graceful stop, server.c).
 *  3. user_data 0 is a fire-and-forget close (store_close_fd): no callback.
 *  4. Memory an SQE points to belongs to the op until its cb runs.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/xattr.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "list.h"
#include "store.h"

static void idle_cb(uv_idle_t *h);

/* Queue op's completion for idle_cb, in order (invariant 1).  The idle
 * handle keeps the loop from blocking while any is queued. */
static void done_later(struct store *st, struct store_op *op, int res)
{
    op->res = res;
    op->next = NULL;
    if (!st->deferred)
        uv_idle_start(&st->idle, idle_cb);
    if (st->deferred_tail)
        st->deferred_tail->next = op;
    else
        st->deferred = op;
    st->deferred_tail = op;
}

/* A metadata call done here, on the loop thread (see "Inline metadata"):
 * its result is delivered like a CQE's, from idle_cb. */
static void inline_done(struct store *st, struct store_op *op, store_cb cb,
                        long rc)
{
    op->cb = cb;
    st->inflight++;
    done_later(st, op, rc < 0 ? -errno : (int)rc);
}

static struct io_uring_sqe *get_sqe(struct store *st)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);

    if (!sqe) {
        /* SQ ring full inside one loop iteration: submit early and retry. */
        io_uring_submit(&st->ring);
        st->unsubmitted = 0;
        st->nsubmit++;
        sqe = io_uring_get_sqe(&st->ring);
    }
    return sqe;
}

/* Take an SQE for op, or queue op to fail with -EAGAIN (invariant 1). */
static struct io_uring_sqe *op_sqe(struct store *st, struct store_op *op,
                                   store_cb cb)
{
    struct io_uring_sqe *sqe = get_sqe(st);

    op->cb = cb;
    st->inflight++;
    if (!sqe) {
        done_later(st, op, -EAGAIN);
        return NULL;
    }
    return sqe;
}

static void op_queued(struct store *st, struct io_uring_sqe *sqe,
                      struct store_op *op)
{
    io_uring_sqe_set_data(sqe, op);
    st->unsubmitted++;
}

static void reap(struct store *st)
{
    struct io_uring_cqe *cqe;

    while (io_uring_peek_cqe(&st->ring, &cqe) == 0) {
        struct store_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;

        io_uring_cqe_seen(&st->ring, cqe);
        st->inflight--;
        if (op) /* invariant 3: NULL is a fire-and-forget close */
            op->cb(op, res);
    }
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct store *st = h->data;
    uint64_t n;

    (void)status;
    (void)events;
    /* Drain the counter first: a CQE posted after this read re-arms it. */
    if (read(st->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("store: eventfd read: %s", strerror(errno));
    reap(st);
}

/* Deliver the queued completions, those queued meanwhile too.  The handle
 * stops one turn later, when it finds nothing: a caller running the loop
 * once for its completion gets it back without blocking (unit tests). */
static void idle_cb(uv_idle_t *h)
{
    struct store *st = h->data;

    if (!st->deferred) {
        uv_idle_stop(&st->idle);
        return;
    }
    while (st->deferred) {
        struct store_op *op = st->deferred;

        st->deferred = op->next;
        if (!st->deferred)
            st->deferred_tail = NULL;
        st->inflight--;
        op->cb(op, op->res);
    }
}

static void prepare_cb(uv_prepare_t *h)
{
    struct store *st = h->data;

    if (st->unsubmitted) {
        int rc = io_uring_submit(&st->ring);

        st->nsubmit++;
        if (rc < 0) /* SQEs stay queued; the next iteration retries */
            log_warn("store: io_uring_submit: %s", strerror(-rc));
        else
            st->unsubmitted = 0;
    }
}

static int open_beneath(int dfd, const char *path, int flags)
{
    struct open_how how = {.flags = flags | O_CLOEXEC,
                           .resolve = STORE_RESOLVE};
    int fd = (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));

    return fd < 0 ? -errno : fd;
}

/* Directories added after the first stamped bricks: made on first use. */
static int open_or_make(int dfd, const char *name)
{
    if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
        return -errno;
    return open_beneath(dfd, name, O_RDONLY | O_DIRECTORY);
}

static int open_dirs(struct store *st, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    st->root_fd = fd;
    st->meta_fd = open_beneath(st->root_fd, ".replicafs", O_RDONLY | O_DIRECTORY);
    if (st->meta_fd < 0)
        return st->meta_fd;
    st->ids_fd = open_beneath(st->meta_fd, "ids", O_RDONLY | O_DIRECTORY);
    if (st->ids_fd < 0)
        return st->ids_fd;
    st->heal_fd = open_beneath(st->meta_fd, "heal", O_RDONLY | O_DIRECTORY);
    if (st->heal_fd < 0)
        return st->heal_fd;
    st->tmp_fd = open_beneath(st->meta_fd, "tmp", O_RDONLY | O_DIRECTORY);
    if (st->tmp_fd < 0)
        return st->tmp_fd;
    st->orphans_fd = open_or_make(st->meta_fd, "orphans");
    if (st->orphans_fd < 0)
        return st->orphans_fd;
    st->sums_fd = open_or_make(st->meta_fd, "sums");
    if (st->sums_fd < 0)
        return st->sums_fd;
    return 0;
}

static void close_dirs(struct store *st)
{
    int *fds[] = {&st->sums_fd, &st->orphans_fd, &st->tmp_fd, &st->heal_fd, &st->ids_fd, &st->meta_fd,
                  &st->root_fd};

    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

int store_open(struct store *st, uv_loop_t *loop, const char *dir,
               unsigned depth)
{
    int rc;

    memset(st, 0, sizeof(*st));
    st->loop = loop;
    st->efd = st->root_fd = st->meta_fd = st->ids_fd = st->heal_fd =
        st->tmp_fd = st->orphans_fd = st->sums_fd = -1;
    rc = open_dirs(st, dir);
    if (rc < 0)
        goto err_close_dirs;
    rc = io_uring_queue_init(depth, &st->ring, 0);
    if (rc < 0)
        goto err_close_dirs;
    st->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (st->efd < 0) {
        rc = -errno;
        goto err_exit_ring;
    }
    rc = io_uring_register_eventfd(&st->ring, st->efd);
    if (rc < 0)
        goto err_close_efd;
    rc = uv_poll_init(loop, &st->poll, st->efd);
    if (rc < 0)
        goto err_close_efd;
    st->poll.data = st;
    st->prepare.data = st;
    uv_prepare_init(loop, &st->prepare); /* cannot fail on unix */
    st->idle.data = st;
    uv_idle_init(loop, &st->idle);
    uv_poll_start(&st->poll, UV_READABLE, poll_cb);
    uv_prepare_start(&st->prepare, prepare_cb);
    st->ring_ok = true;
    st->inline_meta = true;
    return 0;
err_close_efd:
    close(st->efd);
    st->efd = -1;
err_exit_ring:
    io_uring_queue_exit(&st->ring);
err_close_dirs:
    close_dirs(st);
    return rc;
}

void store_close(struct store *st)
{
    assert(st->inflight == 0);
    if (!st->ring_ok)
        return;
    uv_close((uv_handle_t *)&st->poll, NULL);
    uv_close((uv_handle_t *)&st->prepare, NULL);
    uv_close((uv_handle_t *)&st->idle, NULL);
    io_uring_queue_exit(&st->ring);
    close(st->efd);
    st->efd = -1;
    close_dirs(st);
    st->ring_ok = false;
}

void store_openat2(struct store *st, struct store_op *op, store_cb cb, int dfd,
                   const char *path, struct open_how *how)
{
    struct io_uring_sqe *sqe;

    how->flags |= O_CLOEXEC;
    if (st->inline_meta) {
        inline_done(st, op, cb,
                    syscall(SYS_openat2, dfd, path, how, sizeof(*how)));
        return;
    }
    sqe = op_sqe(st, op, cb);
    if (!sqe)
        return;
    io_uring_prep_openat2(sqe, dfd, path, how);
    op_queued(st, sqe, op);
}

void store_statx(struct store *st, struct store_op *op, store_cb cb, int dfd,
                 const char *path, int flags, struct statx *stx)
{
    if (st->inline_meta) {
        inline_done(st, op, cb, statx(dfd, path, flags, STATX_BASIC_STATS, stx));
        return;
    }

    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_statx(sqe, dfd, path, flags, STATX_BASIC_STATS, stx);
    op_queued(st, sqe, op);
}

void store_read(struct store *st, struct store_op *op, store_cb cb, int fd,
                void *buf, unsigned len, uint64_t off)
{
    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_read(sqe, fd, buf, len, off);
    op_queued(st, sqe, op);
}

void store_write(struct store *st, struct store_op *op, store_cb cb, int fd,
                 const void *buf, unsigned len, uint64_t off)
{
    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_write(sqe, fd, buf, len, off);
    op_queued(st, sqe, op);
}

void store_fsync(struct store *st, struct store_op *op, store_cb cb, int fd,
                 bool datasync)
{
    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
    op_queued(st, sqe, op);
}

void store_mkdirat(struct store *st, struct store_op *op, store_cb cb, int dfd,
                   const char *path, mode_t mode)
{
    if (st->inline_meta) {
        inline_done(st, op, cb, mkdirat(dfd, path, mode));
        return;
    }

    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_mkdirat(sqe, dfd, path, mode);
    op_queued(st, sqe, op);
}

void store_symlinkat(struct store *st, struct store_op *op, store_cb cb,
                     const char *target, int dfd, const char *path)
{
    if (st->inline_meta) {
        inline_done(st, op, cb, symlinkat(target, dfd, path));
        return;
    }

    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_symlinkat(sqe, target, dfd, path);
    op_queued(st, sqe, op);
}

void store_linkat(struct store *st, struct store_op *op, store_cb cb,
                  int olddfd, const char *oldpath, int newdfd,
                  const char *newpath, int flags)
{
    if (st->inline_meta) {
        inline_done(st, op, cb, linkat(olddfd, oldpath, newdfd, newpath, flags));
        return;
    }

    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_linkat(sqe, olddfd, oldpath, newdfd, newpath, flags);
    op_queued(st, sqe, op);
}

void store_unlinkat(struct store *st, struct store_op *op, store_cb cb, int dfd,
                    const char *path, int flags)
{
    if (st->inline_meta) {
        inline_done(st, op, cb, unlinkat(dfd, path, flags));
        return;
    }

    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_unlinkat(sqe, dfd, path, flags);
    op_queued(st, sqe, op);
}

void store_renameat(struct store *st, struct store_op *op, store_cb cb,
                    int olddfd, const char *oldpath, int newdfd,
                    const char *newpath, unsigned flags)
{
    if (st->inline_meta) {
        inline_done(st, op, cb, syscall(SYS_renameat2, olddfd, oldpath, newdfd, newpath, flags));
        return;
    }

    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_renameat(sqe, olddfd, oldpath, newdfd, newpath, flags);
    op_queued(st, sqe, op);
}

void store_fgetxattr(struct store *st, struct store_op *op, store_cb cb, int fd,
                     const char *name, void *value, unsigned len)
{
    if (st->inline_meta) {
        inline_done(st, op, cb, fgetxattr(fd, name, value, len));
        return;
    }

    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_fgetxattr(sqe, fd, name, value, len);
    op_queued(st, sqe, op);
}

void store_fsetxattr(struct store *st, struct store_op *op, store_cb cb, int fd,
                     const char *name, const void *value, unsigned len,
                     int flags)
{
    if (st->inline_meta) {
        inline_done(st, op, cb, fsetxattr(fd, name, value, len, flags));
        return;
    }

    struct io_uring_sqe *sqe = op_sqe(st, op, cb);

    if (!sqe)
        return;
    io_uring_prep_fsetxattr(sqe, fd, name, (const char *)value, flags, len);
    op_queued(st, sqe, op);
}

void store_close_fd(struct store *st, int fd)
{
    struct io_uring_sqe *sqe;

    if (fd < 0)
        return;
    sqe = get_sqe(st);
    if (!sqe) { /* no SQE even after a submit: close here, rare */
        close(fd);
        return;
    }
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data(sqe, NULL); /* invariant 3 */
    st->inflight++;
    st->unsubmitted++;
}

static void work_cb(uv_work_t *req)
{
    struct store_work *w = container_of(req, struct store_work, req);

    w->work(w);
}

static void after_work_cb(uv_work_t *req, int status)
{
    struct store_work *w = container_of(req, struct store_work, req);

    (void)status; /* never cancelled: we do not call uv_cancel */
    w->st->inflight--;
    w->done(w);
}

void store_queue_work(struct store *st, struct store_work *w,
                      store_work_fn work, store_done_fn done)
{
    w->st = st;
    w->work = work;
    w->done = done;
    st->inflight++;
    /* uv_queue_work fails only for a NULL work_cb. */
    uv_queue_work(st->loop, &w->req, work_cb, after_work_cb);
}
