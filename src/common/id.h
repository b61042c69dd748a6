/* Object ids: generation, comparison, hex form.  See proto.h struct rfs_id. */
#ifndef RFS_COMMON_ID_H
#define RFS_COMMON_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "replicafs/proto.h"

#define RFS_ID_HEX_LEN 32 /* without the NUL */

/* A fresh random id (libsodium randombytes); never the root id or zero. */
void rfs_id_random(struct rfs_id *id);
bool rfs_id_eq(const struct rfs_id *a, const struct rfs_id *b);
bool rfs_id_is_root(const struct rfs_id *id);
bool rfs_id_is_zero(const struct rfs_id *id);
/* 32 lowercase hex digits + NUL into out[33]. */
void rfs_id_to_hex(const struct rfs_id *id, char out[RFS_ID_HEX_LEN + 1]);
/* Parse exactly 32 hex digits (either case).  0 or -EINVAL (*id untouched). */
int rfs_id_from_hex(const char *hex, struct rfs_id *id);
/* 64-bit hash for hash tables and for spreading reads over bricks. */
uint64_t rfs_id_hash(const struct rfs_id *id);

#endif
