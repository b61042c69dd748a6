/*
 * Chained hash tables keyed by object id (ids.c, pins.c, leases.c): the
 * one step they all share, moving every node into a bigger bucket array.
 */
#ifndef RFS_DAEMON_IDHASH_H
#define RFS_DAEMON_IDHASH_H

#include <stddef.h>

#include "common/id.h"

/*
 * Move every node of tab (n buckets) into ntab (nn buckets, a power of two,
 * all NULL).  type is the node struct, next its chain member, and idpath
 * the member path of its struct rfs_id (id, o->id...).  Nodes keep their
 * relative order within a bucket reversed, which no table relies on.
 */
#define IDHASH_REHASH(type, tab, n, ntab, nn, next, idpath)                    \
    do {                                                                       \
        for (size_t i_ = 0; i_ < (n); i_++) {                                  \
            while ((tab)[i_]) {                                                \
                type *x_ = (tab)[i_];                                          \
                size_t b_ = rfs_id_hash(&x_->idpath) & ((nn) - 1);             \
                                                                               \
                (tab)[i_] = x_->next;                                          \
                x_->next = (ntab)[b_];                                         \
                (ntab)[b_] = x_;                                               \
            }                                                                  \
        }                                                                      \
    } while (0)

#endif
