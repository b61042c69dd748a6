/*
 * The heal engine: brings every brick of a volume back to the same content
 * after some of them missed changes (docs/heal.md).
 *
 * It works over plain brick connections (include/replicafs/client.h), one
 * object at a time, taking the same locks clients take, so it is safe while
 * mounts write.  Sequential by design: the caller owns the loop and nothing
 * else may run on it while a heal_*() call runs (they run it themselves with
 * brick_call_sync()).  Used by `replicafs heal` and `replicafs split-brain`.
 *
 * The pure decision (which bricks are sources, sinks, split-brain) is
 * heal_decide(), in heal_decide.c, unit-tested on its own.
 */
#ifndef RFS_CLIENT_HEAL_H
#define RFS_CLIENT_HEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "replicafs/proto.h"

struct vol_config;
struct healer;

/* ---- the decision ---- */

/* Markers of one object as read from the bricks (zero XATTROP). */
struct heal_marks {
    unsigned n;       /* bricks in the volume */
    uint32_t present; /* bricks that answered: they have the object */
    int64_t dirty[PROTO_MAX_BRICKS];
    int64_t pend[PROTO_MAX_BRICKS][PROTO_MAX_BRICKS]; /* [brick][blamed] */
};

struct heal_verdict {
    uint32_t blamed;  /* bricks some present brick blames (pending > 0) */
    uint32_t sources; /* present bricks nobody blames */
    uint32_t sinks;   /* present bricks somebody blames */
    bool split_brain; /* something is blamed and no present brick is clean */
    bool dirty;       /* some present brick has dirty != 0 */
};

/*
 * Decide from the markers alone.  A brick is blamed when another present
 * brick's pending counter for it is > 0 (a brick's counter for itself and
 * negative counters are ignored).  Sources: present and not blamed; sinks:
 * present and blamed; split-brain: some present brick is blamed and no
 * present brick is unblamed (two bricks blaming each other, or a cycle).
 * Never fails.
 */
void heal_decide(const struct heal_marks *m, struct heal_verdict *v);

/*
 * The largest set of bricks of `mask` (n bricks) whose answers are the
 * same (same(arg, a, b): brick a gave brick b's answer; an equivalence);
 * ties go to the set holding a brick of `prefer`, then to the set of the
 * lowest brick.  0 when mask is empty.  Heal's choice among sources that
 * differ and the quorum lookup's vote both use it, so that a lookup
 * answers what heal will keep (docs/heal.md, ties).
 */
uint32_t heal_largest_group(unsigned n, uint32_t mask, uint32_t prefer,
                            bool (*same)(const void *arg, unsigned a,
                                         unsigned b),
                            const void *arg);

/* ---- the engine ---- */

struct heal_stats {
    uint64_t objects;        /* objects looked at */
    uint64_t healed;         /* objects whose sinks were brought in line */
    uint64_t entries_created;/* names made on a sink (mkdir/create/...) */
    uint64_t entries_linked; /* names made on a sink by LINK (rename replay) */
    uint64_t entries_removed;/* names removed from a sink (recursively) */
    uint64_t files;          /* regular files whose data was copied */
    uint64_t bytes;          /* data bytes written to sinks */
    uint64_t bytes_same;     /* bytes found equal by block checksum */
    uint64_t meta;           /* SETATTRs of mode/owner/times sent */
    uint64_t split_brain;    /* objects skipped: split-brain */
    uint64_t deferred;       /* waiting for another object's heal first */
    uint64_t failed;         /* errors (a brick failed mid-heal...) */
    uint64_t stale;          /* index entries for objects gone everywhere */
};

/* Create a healer for vol (copied) on loop and connect to every brick.
 * Returns 0 or -errno; *out untouched on failure. */
int healer_new(uv_loop_t *loop, const struct vol_config *vol,
               unsigned timeout_ms, struct healer **out);
/* Run the loop for ms (links to down bricks reconnect meanwhile). */
void healer_idle(struct healer *h, unsigned ms);
/* Close the connections and free h (runs the loop until closed). */
void healer_free(struct healer *h);
/* Bricks up now (bit i = brick i+1). */
uint32_t healer_up_mask(const struct healer *h);
unsigned healer_nbricks(const struct healer *h);

/*
 * One pass over the heal indices of every up brick: each listed object is
 * healed (and objects entry heal creates on sinks after it).  With full,
 * the namespace is crawled from the root instead and every object is
 * looked at.  Counts are added to *st.  Returns 0, or -errno when nothing
 * could be done at all (no brick up).
 */
int heal_pass(struct healer *h, bool full, struct heal_stats *st);

/*
 * Split the work of later passes between processes (each with its own
 * healer): with dirs_only only directories are healed (entry heal makes
 * every missing object on the sinks, marked pending); with nparts > 1 only
 * objects whose id hash is `part` modulo nparts (in --full, directories
 * are still walked by all).  (false, 0, 0) undoes it.
 */
void heal_set_split(struct healer *h, bool dirs_only, unsigned nparts,
                    unsigned part);

/* With on, every object a pass does not find clean is told on stderr, one
 * line each: what was done to which brick, or why not (split-brain,
 * deferred, the error of the step that failed).  For `heal --verbose`. */
void heal_set_verbose(struct healer *h, bool on);
/*
 * First call of a forked heal or rebuild worker: it gets signal sig when
 * its parent (pid `parent`, taken before the fork) dies, and exits at once
 * if that already happened.  A killed `replicafs heal` or `rebuild` stops
 * all of its work: an admin who kills it does not expect workers to go on,
 * and what they did is safe to cut off at any point (docs/heal.md); a
 * rebuild worker asks for SIGTERM, which its inherited handler turns into
 * "stop after the object in hand".  Comparing with the pid, not with 1,
 * also holds under a subreaper.
 */
void heal_worker_bind(pid_t parent, int sig);

/*
 * The bricks' suspect marks (daemon/suspect.h; docs/heal.md, "Suspect
 * bricks").  heal_suspect_read() reads the generation of every up brick
 * (zero XATTROP on the root: the reply's `suspect`); gen[b] = 0 when brick
 * b is clean, and *read gets the bricks that answered.  heal_suspect_clear()
 * asks each brick of mask to clear its mark if it is still gen[b] (a later
 * event keeps it); *cleared gets the bricks clean afterwards.  Only call it
 * when every brick is up and the run left nothing to heal.  0 or -errno.
 */
int heal_suspect_read(struct healer *h, uint64_t *gen, uint32_t *read);
int heal_suspect_clear(struct healer *h, uint32_t mask, const uint64_t *gen,
                       uint32_t *cleared);

/* Object state as `heal --list` and `split-brain list` show it. */
struct heal_item {
    struct rfs_id id;
    uint32_t type;      /* S_IF* of the object; 0 if gone everywhere */
    bool orphan;        /* a file with no name left, kept while open */
    uint32_t indexed;   /* bricks whose heal index lists it */
    struct heal_marks m;
    struct heal_verdict v;
};

/*
 * Every object in some up brick's heal index, with its markers (read
 * without locks: a snapshot).  *items is malloc'ed (free()); 0 or -errno.
 */
int heal_list(struct healer *h, struct heal_item **items, size_t *n);

/*
 * Find the volume path of each id (a crawl from the root on one up brick,
 * stopping when all are found).  paths[i] gets a malloc'ed "/a/b" or NULL
 * when not found.  0 or -errno.
 */
int heal_find_paths(struct healer *h, const struct rfs_id *ids, size_t n,
                    char **paths);

/* Resolve a volume path ("/a/b" or "a/b") to its id by LOOKUPs on brick b
 * (0-based).  0 or -errno. */
int heal_lookup_path(struct healer *h, unsigned b, const char *path,
                     struct rfs_id *id, struct proto_attr *attr);

/* How split-brain resolve picks the source. */
enum heal_pick {
    HEAL_PICK_BRICK = 0,  /* the given brick */
    HEAL_PICK_MTIME = 1,  /* the latest mtime */
    HEAL_PICK_SIZE = 2,   /* the bigger file */
};

/*
 * Heal one object with a forced source: every other present up brick is a
 * sink, whatever the markers say, and every pending counter between up
 * bricks is cleared afterwards.  brick is 1-based (HEAL_PICK_BRICK only).
 * *chosen gets the 1-based source used.  0 or -errno (-ENOENT: no such
 * object; -EINVAL: the chosen brick lacks it or is down).
 */
int heal_resolve(struct healer *h, const struct rfs_id *id, enum heal_pick pick,
                 unsigned brick, unsigned *chosen, struct heal_stats *st);

/* ---- rebuild support (src/client/rebuild.c) ---- */

/* One request to brick b (0-based) on the healer's connection, run to
 * completion (brick_call_sync()).  0 or -errno (-ENOTCONN: brick down). */
int heal_call(struct healer *h, unsigned b, uint16_t op, const void *req,
              void *rep, void **frame);

/*
 * Heal one object as a pass would (its markers decide).  *made gets the
 * ids entry heal made on sinks (malloc'ed, free(); NULL when none): they
 * are marked pending and need a heal_object() of their own.  Returns
 * 0, 1 (split-brain), 2 (deferred), -ENOENT (gone everywhere), -errno.
 */
int heal_object(struct healer *h, const struct rfs_id *id,
                struct rfs_id **made, size_t *nmade, struct heal_stats *st);

#endif
