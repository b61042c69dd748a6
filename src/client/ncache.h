/*
 * ncache: names the mount may answer a kernel LOOKUP from without asking
 * a brick (docs/client.md, "Names answered by the mount").
 *
 * The kernel forgets a cached name after entry_timeout (the ping timeout,
 * the bound on what a mount cut off from the bricks may serve), then asks
 * again; on a warm read pass over many files that is one brick round trip
 * per file every few seconds (performance.md, finding 11).  The bricks push
 * an INVAL for every change of a name or an object to every other client,
 * so while the links stay up and no INVAL came, what a LOOKUP answered is
 * still the answer.  This table keeps those answers: (folder inode, name)
 * -> the child's inode and the attributes the brick gave.  The rules of
 * when one may be used live in fuse/ops.c (invariant 7); this is the table.
 *
 * Not FUSE-specific, so unit tested directly: tests/unit/test_ncache.c.
 *
 * Invariants:
 *  1. At most one entry per (parent, name) and at most one per child inode
 *     (a put replaces both), so dropping by inode drops every name that
 *     could answer with it.
 *  2. Every entry is in both hashes, once.
 */
#ifndef RFS_CLIENT_NCACHE_H
#define RFS_CLIENT_NCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "replicafs/proto.h"

struct ncache_ent {
    uint64_t parent;              /* the folder's kernel inode number */
    uint64_t ino;                 /* the child's */
    uint64_t epoch;               /* the caller's epoch when it was learned */
    struct proto_attr attr;       /* what the brick answered */
    struct ncache_ent *next_name; /* hash chains (invariant 2) */
    struct ncache_ent *next_ino;
    char name[];                  /* NUL-terminated */
};

struct ncache {
    struct ncache_ent **by_name;  /* owned */
    struct ncache_ent **by_ino;   /* owned */
    size_t cap;                   /* buckets in each; power of two */
    size_t count;
};

/* An empty table.  0 or -ENOMEM. */
int ncache_init(struct ncache *c);
/* Free every entry and the table; lookups find nothing afterwards. */
void ncache_fini(struct ncache *c);
/* Remember (parent, name) -> ino with attr, learned at epoch; replaces
 * the entries of that name and of that inode (invariant 1).  0 or
 * -ENOMEM (then nothing is remembered of the name or the inode). */
int ncache_put(struct ncache *c, uint64_t parent, const char *name,
               uint64_t ino, uint64_t epoch, const struct proto_attr *attr);
/* The entry of (parent, name), or NULL.  Valid until the next change. */
const struct ncache_ent *ncache_get(const struct ncache *c, uint64_t parent,
                                    const char *name);
/* The entry that leads to ino, or NULL.  Valid until the next change. */
const struct ncache_ent *ncache_get_ino(const struct ncache *c, uint64_t ino);
/* Forget (parent, name) / whatever names ino. */
void ncache_drop_name(struct ncache *c, uint64_t parent, const char *name);
void ncache_drop_ino(struct ncache *c, uint64_t ino);

#endif
