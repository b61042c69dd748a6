/*
 * Counters and the Prometheus endpoint (--metrics ADDR:PORT): a tiny HTTP/1.0
 * server on the daemon's loop answering GET /metrics.  Counters are plain
 * integers bumped on the loop thread; no locking.
 */
#ifndef RFS_DAEMON_METRICS_H
#define RFS_DAEMON_METRICS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"
#include "replicafs/proto.h"

struct server;

struct metrics {
    uint64_t ops[OP__MAX];        /* replies sent, by opcode */
    uint64_t errors[OP__MAX];     /* replies with status != 0 */
    uint64_t lat_us[OP__MAX];     /* sum of request latencies */
    uint64_t bytes_read;          /* READ payload bytes */
    uint64_t bytes_written;       /* WRITE payload bytes */
    uint64_t conns_accepted;
    uint64_t auth_failures;
    uint64_t proto_errors;        /* connections closed for bad frames */
    uint64_t paused;              /* times a connection hit its limits */
    struct server *srv;           /* borrowed */
    uv_tcp_t listener;            /* closed in metrics_stop() */
    bool listening;
    struct list clients;          /* struct http_client.link */
};

void metrics_init(struct metrics *m, struct server *srv);
/* Serve on addr.  0 or -errno (bind/listen failure). */
int metrics_listen(struct metrics *m, uv_loop_t *loop,
                   const struct sockaddr_in *addr);
/* Close the listener and every HTTP client (handles close on the loop). */
void metrics_stop(struct metrics *m);
/* Render the exposition text into a malloc'd buffer; NULL on -ENOMEM. */
char *metrics_render(const struct metrics *m, size_t *len);

#endif
