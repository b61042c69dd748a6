/*
 * inotab: object ids <-> kernel inode numbers, with lookup counts.
 *
 * The FUSE kernel module names objects by 64-bit inode numbers and counts
 * how many times each was handed out (lookup, create, readdirplus...); it
 * gives them back with forget.  This table hands out numbers (the root id
 * is always 1, FUSE_ROOT_ID), finds an entry by number or by id, and drops
 * an entry when its count falls to 0, so memory follows the kernel's inode
 * cache.  Numbers are never reused within one table (a 64-bit counter), so
 * a late forget or an old number can never name a different object.
 *
 * Not FUSE-specific (no libfuse here), so it is unit tested directly:
 * tests/unit/test_inotab.c.
 *
 * Invariants:
 *  1. Every entry is in both hashes (by ino and by id), and only once.
 *  2. An entry other than the root has nlookup > 0, except between
 *     inotab_add() and the caller's first inotab_ref().
 *  3. The root entry (ino 1) is never removed by inotab_forget().
 */
#ifndef RFS_CLIENT_INOTAB_H
#define RFS_CLIENT_INOTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replicafs/proto.h"

#define INOTAB_ROOT_INO 1u

/* What the kernel was last told of an object's size and times: its page
 * cache holds data of that version at most (fuse/ops.c decides keep_cache
 * at open by comparing with a fresh answer). */
struct inotab_kstamp {
    uint64_t size;
    struct proto_time mtime;
    struct proto_time ctime;
    bool valid;                     /* false: nothing known, or invalidated */
    uint64_t inval_seq;             /* the last kernel invalidation queued
                                       for it (fuse/notify.c); until that
                                       one is applied, what the kernel holds
                                       is not what it was last told */
};

/* What the kernel's cached listing of a directory rests on (fuse/ops.c
 * decides keep_cache at opendir from it, invariant 6). */
struct inotab_listing {
    uint64_t epoch;                 /* the caller's epoch when the kernel
                                       began it; 0: not vouched for */
    uint64_t since_ms;              /* when the kernel began it */
};

struct inotab_ent {
    uint64_t ino;
    struct rfs_id id;
    uint64_t nlookup;               /* the kernel's count */
    void *data;                     /* the caller's; see inotab_forget() */
    struct inotab_kstamp kstamp;    /* the caller's; zeroed by inotab_add() */
    struct inotab_listing listing;  /* the caller's; zeroed by inotab_add() */
    struct inotab_ent *next_ino;    /* hash chains (invariant 1) */
    struct inotab_ent *next_id;
};

struct inotab {
    struct inotab_ent **by_ino;     /* owned */
    struct inotab_ent **by_id;      /* owned */
    size_t cap;                     /* buckets in each; power of two */
    size_t count;
    uint64_t next_ino;
};

/* An empty table.  0 or -ENOMEM. */
int inotab_init(struct inotab *t);
/* Free every entry, calling free_data(data) on each (free_data may be
 * NULL).  The table is empty afterwards: lookups find nothing, adding is
 * not allowed until inotab_init(). */
void inotab_fini(struct inotab *t, void (*free_data)(void *data));

struct inotab_ent *inotab_by_ino(const struct inotab *t, uint64_t ino);
struct inotab_ent *inotab_by_id(const struct inotab *t,
                                const struct rfs_id *id);

/*
 * Add an entry for id (which must not be in the table) with nlookup 0 and
 * the caller's data.  The root id gets INOTAB_ROOT_INO, others the next
 * number.  Returns 0 with *out set, or -ENOMEM (table unchanged).
 */
int inotab_add(struct inotab *t, const struct rfs_id *id, void *data,
               struct inotab_ent **out);

/* The kernel got one more reference to e. */
static inline void inotab_ref(struct inotab_ent *e)
{
    e->nlookup++;
}

/*
 * The kernel dropped n references (forget).  When the count reaches 0 the
 * entry is removed and freed, and its data is returned for the caller to
 * release; otherwise (or for the root) NULL is returned.  n larger than the
 * count is treated as the count (a kernel bug must not underflow it).
 */
void *inotab_forget(struct inotab *t, struct inotab_ent *e, uint64_t n);

#endif
