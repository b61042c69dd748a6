/*
 * The heal index: .replicafs/heal/<32hex>, one empty file per object whose
 * replication markers are not all zero (some change is not on every brick).
 * Heal walks this index instead of crawling the tree.  markers.c keeps it
 * exact; HEAL_LIST pages through it.  Design block in healidx.c.
 */
#ifndef RFS_DAEMON_HEALIDX_H
#define RFS_DAEMON_HEALIDX_H

#include <stdbool.h>
#include <stdint.h>

#include "replicafs/proto.h"
#include "store.h"

struct healidx {
    struct store *st;   /* borrowed */
    uint64_t count;     /* entries, for metrics (exact: kept by add/del) */
};

/* .replicafs/heal.base: the empty file every index entry is a link to. */
#define HEALIDX_BASE "heal.base"

struct healidx_op;
typedef void (*healidx_cb)(struct healidx_op *op, int status);

struct healidx_op { /* embedded in the caller's op */
    struct store_op sop;
    struct healidx *h;         /* borrowed */
    healidx_cb cb;
    char name[33];
    struct open_how how;
    int status;
};

/* Count the entries (a directory scan: call at start, off the hot path).
 * 0 or -errno. */
int healidx_init(struct healidx *h, struct store *st);

/* Put id in the index (idempotent).  cb(op, 0 or -errno) exactly once,
 * never before healidx_add() returns. */
void healidx_add(struct healidx *h, struct healidx_op *op,
                 const struct rfs_id *id, healidx_cb cb);
/* Take id out of the index (absent is fine).  Same callback rules. */
void healidx_del(struct healidx *h, struct healidx_op *op,
                 const struct rfs_id *id, healidx_cb cb);

/*
 * List up to max ids from the index directory heal_fd, starting after
 * `cookie` (0: from the start).  Writes count ids (16 bytes each, wire id
 * encoding) to out, *next gets the cookie to continue from and *eof is set
 * when the listing is complete.  Blocking: call from a pool thread or a
 * test.  Names that are not 32 hex digits are skipped.  0 or -errno.
 */
int healidx_list(int heal_fd, uint64_t cookie, uint32_t max, uint8_t *out,
                 uint32_t *count, uint64_t *next, bool *eof);

#endif
