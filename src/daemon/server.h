/*
 * The daemon: one libuv loop serving one brick.  Owns the listener, the
 * connections, the store (io_uring), the id cache, the lock manager, the heal
 * index and the metrics.  Design block in server.c.
 */
#ifndef RFS_DAEMON_SERVER_H
#define RFS_DAEMON_SERVER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "common/config.h"
#include "healidx.h"
#include "ids.h"
#include "leases.h"
#include "list.h"
#include "locks.h"
#include "metrics.h"
#include "stamp.h"
#include "suspect.h"
#include "store.h"

#define SERVER_MAX_REQS 256                 /* in flight per connection */
#define SERVER_MAX_BYTES (64u * 1024 * 1024) /* frames + queued replies */
#define SERVER_RING_DEPTH 1024

struct server_opts {
    const char *dir;               /* brick directory (stamped) */
    const struct vol_config *vol;  /* copied */
    unsigned brick;                /* 1-based */
    struct sockaddr_in listen;     /* port 0: any free port */
    bool metrics;                  /* serve metrics_addr */
    struct sockaddr_in metrics_addr;
    size_t fd_cache;               /* 0: IDS_DEFAULT_CAP */
    unsigned max_reqs;             /* 0: SERVER_MAX_REQS */
    size_t max_bytes;              /* 0: SERVER_MAX_BYTES */
    bool ring_metadata;            /* metadata calls through io_uring too */
    unsigned protocol_max;         /* highest version to agree on; 0: ours */
    size_t lease_cap;              /* read leases per connection; 0: default */
};

struct server {
    uv_loop_t *loop;               /* borrowed */
    struct vol_config vol;         /* copy; holds the key */
    unsigned brick;
    char dir[4096];
    struct stamp stamp;
    struct store st;
    struct ids ids;
    struct lockmgr locks;
    struct healidx heal;
    struct leases leases;          /* read leases (leases.c) */
    struct metrics metrics;
    uv_tcp_t listener;             /* closed by server_stop() */
    bool listening;
    struct sockaddr_in bound;      /* actual listen address */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_timer_t stop_timer;         /* polls for the end of a graceful stop */
    uv_prepare_t flush;            /* writes the replies queued this
                                      iteration (conn.c invariant 7) */
    struct list flushq;            /* struct conn.flush_link: conns with
                                      replies queued */
    struct list conns;             /* struct conn.link */
    struct list creating;          /* struct op_new.creating (ops_create) */
    unsigned nconns;
    uint64_t next_cid;
    bool stopping;
    bool finished;                 /* every handle closed or closing */
    bool handles_ok;               /* signals, stop_timer and flush
                                      initialised */
    unsigned max_reqs;
    size_t max_bytes;
    uint32_t protocol_max;         /* the highest version HELLO agrees on */
    int exit_status;
    uint8_t boot_id[16];           /* kernel boot id: sums.c invariant 1 */
    struct suspect suspect;        /* may have missed changes (suspect.h) */
    struct timespec sweep_before;  /* server_init() time less a margin:
                                      READDIR_SWEEP removes names without
                                      an id older than it (ops_dir.c) */
};

/*
 * Open the brick (stamp must match: checked here again), set up the store,
 * caches and signal handlers.  0 or -errno with a message in err.  On
 * failure nothing stays registered on the loop that needs more than a
 * uv_run to close (call server_fini() either way after uv_run).
 */
int server_init(struct server *srv, uv_loop_t *loop,
                const struct server_opts *o, char *err, size_t errlen);
/* Bind and listen (and the metrics endpoint).  0 or -errno with message. */
int server_listen(struct server *srv, const struct server_opts *o, char *err,
                  size_t errlen);
/*
 * Begin a graceful stop: stop accepting, stop reading requests, let in-flight
 * operations finish and their replies go out, close clients, then close
 * every handle so uv_run() returns.  Idempotent.
 */
void server_stop(struct server *srv);
/* Free what is left after uv_run() returned. */
void server_fini(struct server *srv);

/* Recheck whether a graceful stop can move on. */
void server_poke(struct server *srv);

#endif
