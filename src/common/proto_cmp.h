/* Field-wise comparison of two decoded protocol messages, for tests and the
 * fuzz driver (it lives with the codec because it walks the codec's tables).
 * Not part of the wire contract, hence not in include/replicafs/proto.h. */
#ifndef RFS_COMMON_PROTO_CMP_H
#define RFS_COMMON_PROTO_CMP_H

#include <stdbool.h>
#include <stdint.h>

#include "replicafs/proto.h"

/* true when a and b (both proto_msg_size(op, kind) structs) carry the same
 * wire fields: bytes fields compare by content, names as strings, padding and
 * unused array slots are ignored.  false also for an op/kind without a
 * message; empty messages are always equal. */
bool proto_msg_equal(uint16_t op, uint8_t kind, const void *a, const void *b);

#endif
