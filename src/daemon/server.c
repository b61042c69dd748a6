/*
 * The server: listener, connection list, signals, graceful stop.
 *
 * Threads.  Everything runs on one libuv loop thread: sockets, the io_uring
 * completions (store.c) and every bit of daemon state.  libuv's thread pool
 * runs only the blocking syscalls io_uring lacks (getdents, fchmod...),
 * each on memory its work struct owns, and hands the result back to the
 * loop.  So no daemon structure needs a lock.
 *
 * Life cycle (which function moves it):
 *
 *   server_init --> server_listen --> SERVING
 *     --SIGTERM/SIGINT: server_stop--> STOPPING: listener closed, every
 *       connection drains (conn_drain: no more reads, in-flight ops finish
 *       and their replies are written, then it closes)
 *     --stop_tick: no connection left, store idle--> FINISHED: caches freed,
 *       ring and handles closed; uv_run() returns; server_fini()
 *
 * Invariants:
 *  1. No new request is read once STOPPING; every request read before is
 *     answered (or dropped with its connection) before the store closes.
 *  2. The store closes only with inflight == 0 (no SQE or pool work may
 *     complete into freed memory).
 *  3. After FINISHED every handle is closed, so uv_loop_close() == 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/id.h"
#include "common/log.h"
#include "conn.h"
#include "ops.h"
#include "pins.h"
#include "sums.h"
#include "server.h"

static void say(char *err, size_t errlen, const char *what, int rc)
{
    snprintf(err, errlen, "%s: %s", what, strerror(-rc));
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct server *srv = h->data;

    log_info("signal %d: stopping gracefully", signum);
    server_stop(srv);
}

static int check_root_id(struct server *srv, char *err, size_t errlen)
{
    struct rfs_id root = RFS_ROOT_ID, got;
    uint8_t buf[16];

    if (fgetxattr(srv->st.root_fd, IDS_XATTR_ID, buf, sizeof(buf)) != 16) {
        snprintf(err, errlen, "%s: brick root has no valid " IDS_XATTR_ID
                 " (%s)", srv->dir, strerror(errno));
        return -EINVAL;
    }
    ids_id_decode(buf, &got);
    if (!rfs_id_eq(&got, &root)) {
        snprintf(err, errlen, "%s: brick root carries a foreign id", srv->dir);
        return -EINVAL;
    }
    return 0;
}

/* Orphans are objects open when the daemon last stopped: nobody can hold
 * them now (pins.c).  Without a boot id, stored block sums must not outlive
 * this process: a random one makes them void at the next start (sums.c
 * invariant 1). */
static void init_sums_and_orphans(struct server *srv)
{
    int n = pins_purge_orphans(srv->st.orphans_fd);

    if (n > 0)
        log_info("purged %d orphaned object(s) from .replicafs/orphans", n);
    else if (n < 0)
        log_warn("cannot purge .replicafs/orphans: %s", strerror(-n));
    if (sums_boot_id(srv->boot_id) < 0) {
        log_warn("no kernel boot id: stored block sums last one run");
        if (getrandom(srv->boot_id, sizeof(srv->boot_id), 0) < 0) {
            uint64_t t = uv_hrtime() ^ ((uint64_t)getpid() << 40);

            memcpy(srv->boot_id, &t, sizeof(t));
        }
    }
}

static int init_state(struct server *srv, const struct server_opts *o,
                      char *err, size_t errlen)
{
    int rc = store_open(&srv->st, srv->loop, o->dir, SERVER_RING_DEPTH);

    if (rc < 0) {
        say(err, errlen, "cannot open the brick store (io_uring)", rc);
        return rc;
    }
    srv->st.inline_meta = !o->ring_metadata;
    rc = check_root_id(srv, err, errlen);
    if (rc == 0)
        init_sums_and_orphans(srv);
    if (rc == 0 && (rc = ids_init(&srv->ids, &srv->st, o->fd_cache)) < 0)
        say(err, errlen, "id cache", rc);
    if (rc == 0 && (rc = lockmgr_init(&srv->locks)) < 0)
        say(err, errlen, "lock manager", rc);
    if (rc == 0 && (rc = healidx_init(&srv->heal, &srv->st)) < 0)
        say(err, errlen, "heal index", rc);
    return rc;
}

int server_init(struct server *srv, uv_loop_t *loop,
                const struct server_opts *o, char *err, size_t errlen)
{
    int rc;

    memset(srv, 0, sizeof(*srv));
    /* Set back by more than one tick of the kernel's coarse clock, which
     * stamps ctimes: a name this run made can never look older than it. */
    clock_gettime(CLOCK_REALTIME, &srv->sweep_before);
    srv->sweep_before.tv_nsec -= 20000000L;
    if (srv->sweep_before.tv_nsec < 0) {
        srv->sweep_before.tv_nsec += 1000000000L;
        srv->sweep_before.tv_sec--;
    }
    srv->loop = loop;
    srv->vol = *o->vol;
    srv->brick = o->brick;
    snprintf(srv->dir, sizeof(srv->dir), "%s", o->dir);
    srv->max_reqs = o->max_reqs ? o->max_reqs : SERVER_MAX_REQS;
    srv->max_bytes = o->max_bytes ? o->max_bytes : SERVER_MAX_BYTES;
    srv->protocol_max = o->protocol_max ? o->protocol_max : PROTO_VERSION_MAX;
    srv->st.ring_ok = false;
    list_init(&srv->conns);
    list_init(&srv->creating);
    list_init(&srv->flushq);
    metrics_init(&srv->metrics, srv);
    rc = stamp_load(o->dir, &srv->stamp, err, errlen);
    if (rc == 0)
        rc = stamp_check(&srv->stamp, srv->vol.name, srv->brick, err, errlen);
    if (rc < 0)
        return rc;
    rc = init_state(srv, o, err, errlen);
    if (rc < 0)
        return rc;
    rc = suspect_load(srv);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot read the suspect mark: %s", o->dir,
                 strerror(-rc));
        return rc;
    }
    /* Whatever happened while it was not running, it did not see. */
    suspect_mark(srv, "started");
    uv_signal_init(loop, &srv->sigterm);
    uv_signal_init(loop, &srv->sigint);
    uv_timer_init(loop, &srv->stop_timer);
    leases_init(&srv->leases, loop, 0, o->lease_cap);
    uv_prepare_init(loop, &srv->flush);
    srv->sigterm.data = srv->sigint.data = srv->stop_timer.data = srv;
    srv->flush.data = srv;
    uv_prepare_start(&srv->flush, conn_flush_all);
    uv_signal_start(&srv->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&srv->sigint, signal_cb, SIGINT);
    srv->handles_ok = true;
    return 0;
}

static void connection_cb(uv_stream_t *listener, int status)
{
    struct server *srv = listener->data;
    int rc;

    if (status < 0 || srv->stopping)
        return;
    rc = conn_accept(srv, listener);
    if (rc < 0)
        log_warn("accept: %s", strerror(-rc));
}

int server_listen(struct server *srv, const struct server_opts *o, char *err,
                  size_t errlen)
{
    int len = sizeof(srv->bound);
    int rc;

    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->listening = true;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&o->listen, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, connection_cb);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s",
                 inet_ntoa(o->listen.sin_addr), ntohs(o->listen.sin_port),
                 uv_strerror(rc));
        return rc;
    }
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&srv->bound, &len);
    if (o->metrics) {
        rc = metrics_listen(&srv->metrics, srv->loop, &o->metrics_addr);
        if (rc < 0) {
            snprintf(err, errlen, "cannot serve metrics on %s:%u: %s",
                     inet_ntoa(o->metrics_addr.sin_addr),
                     ntohs(o->metrics_addr.sin_port), strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static void finish(struct server *srv)
{
    if (srv->finished)
        return;
    srv->finished = true;
    uv_timer_stop(&srv->stop_timer);
    if (srv->handles_ok) {
        uv_close((uv_handle_t *)&srv->stop_timer, NULL);
        uv_close((uv_handle_t *)&srv->sigterm, NULL);
        uv_close((uv_handle_t *)&srv->sigint, NULL);
        uv_close((uv_handle_t *)&srv->flush, NULL);
        leases_close(&srv->leases);
        srv->handles_ok = false;
    }
    ids_fini(&srv->ids); /* closes cached fds synchronously */
    store_close(&srv->st); /* invariant 2: inflight is 0 here */
    log_info("stopped");
}

static void stop_tick(uv_timer_t *t)
{
    struct server *srv = t->data;

    if (srv->nconns == 0 && srv->st.inflight == 0)
        finish(srv); /* invariants 1 and 2 */
}

void server_poke(struct server *srv)
{
    if (srv->stopping)
        stop_tick(&srv->stop_timer);
}

void server_stop(struct server *srv)
{
    struct list *pos, *tmp;

    if (srv->stopping)
        return;
    srv->stopping = true;
    if (srv->listening) {
        uv_close((uv_handle_t *)&srv->listener, NULL);
        srv->listening = false;
    }
    metrics_stop(&srv->metrics);
    list_for_each_safe(pos, tmp, &srv->conns)
        conn_drain(container_of(pos, struct conn, link));
    if (srv->handles_ok)
        uv_timer_start(&srv->stop_timer, stop_tick, 0, 5);
    else
        finish(srv);
}

void server_fini(struct server *srv)
{
    if (!srv->finished) { /* init failed part way: nothing is in flight */
        srv->stopping = true;
        if (srv->listening) {
            uv_close((uv_handle_t *)&srv->listener, NULL);
            srv->listening = false;
        }
        metrics_stop(&srv->metrics);
        finish(srv);
    }
    lockmgr_fini(&srv->locks);
    leases_fini(&srv->leases);
    memset(srv->vol.key, 0, sizeof(srv->vol.key));
}

void server_inval(struct server *srv, const struct conn *except,
                  const struct rfs_id *id, uint32_t what,
                  const struct rfs_id *parent, const char *name,
                  struct req *recall_by)
{
    struct proto_hdr h = {.op = OP_INVAL, .kind = PROTO_EVENT, .reqid = 0};
    struct inval_event ev = {.id = *id};
    struct list *pos, *tmp;

    if (parent)
        ev.parent = *parent;
    if (name)
        snprintf(ev.name, sizeof(ev.name), "%s", name);
    list_for_each_safe(pos, tmp, &srv->conns) {
        struct conn *c = container_of(pos, struct conn, link);
        bool recall;

        if (c->state != CONN_READY || c->fake)
            continue;
        /* The changer's own lease goes too (it may have opened the file
         * from it): it hears only the recall, and its reply need not wait
         * for the answer, since the recall reaches it first on the same
         * connection. */
        recall = recall_by &&
                 leases_recall(srv, c == except ? NULL : recall_by, c, id);
        if (c == except && !recall)
            continue;
        if (c != except && c->wq_bytes >= srv->max_bytes) {
            /* It does not read: a lost invalidation would leave its cache
             * stale, so it must reconnect (and drop its cache) instead. */
            conn_close(c, "too slow to take invalidations");
            continue;
        }
        ev.what = c == except ? 0 : what;
        if (recall)
            ev.what |= INVAL_RECALL;
        conn_send(c, &h, 0, &ev, NULL);
    }
}
