/*
 * Open objects pinned per connection, and the orphans they may become: an
 * object OPENed through a connection stays readable and writable after its
 * last name is removed, until that connection RELEASEs it (as many times as
 * it OPENed it) or closes.  Design block in pins.c; on-disk side in
 * docs/brick-layout.md ("Open objects without a name").
 */
#ifndef RFS_DAEMON_PINS_H
#define RFS_DAEMON_PINS_H

#include <stdbool.h>
#include <stddef.h>

#include "replicafs/proto.h"

struct server;
struct obj;

struct pin {
    struct pin *next;     /* hash chain; owned by struct pins */
    struct obj *o;        /* referenced (ids_ref) while the pin exists */
    unsigned count;       /* OPENs on this connection not yet RELEASEd */
};

struct pins { /* embedded in struct conn */
    struct pin **tab;     /* owned; NULL until the first pin */
    size_t nbuckets;      /* power of two, or 0 */
    size_t count;         /* pinned objects */
};

/* .replicafs/orphans/<32hex> relative to st->orphans_fd */
#define PINS_ORPHAN_LEN 33

void pins_init(struct pins *p);
/*
 * Pin o for this connection (one more OPEN).  The first pin of o on this
 * connection takes a reference on o.  0 or -ENOMEM (nothing changed).
 */
int pins_add(struct server *srv, struct pins *p, struct obj *o);
/*
 * One RELEASE of id: drop one pin count; at zero drop the pin, and if o was
 * an orphan with no pin left anywhere, reap it (orphans/ link unlinked, fd
 * closed).  0, or -ENOENT when this connection had no pin on id (a RELEASE
 * is a hint: the caller still answers 0).
 */
int pins_drop(struct server *srv, struct pins *p, const struct rfs_id *id);
/* The connection is gone: drop every pin as if RELEASEd.  p is empty and
 * its table freed after. */
void pins_drop_all(struct server *srv, struct pins *p);

/*
 * The object of id just lost its last name (only its ids/ link is left,
 * or not even that: linked == false).  If some connection pins it, move the
 * ids/ link to orphans/ (when linked) and keep the object; the last unpin
 * reaps it.  Returns true if the object is pinned and was taken care of
 * (the caller must NOT remove the ids/ link or forget the object), and then
 * calls done(arg) exactly once when the link is where it will stay (maybe
 * before returning; done may be NULL); false if the caller should drop it
 * as usual (done is not called).  o may be NULL (not cached: then it is
 * not pinned either, since a pin holds a reference).
 */
bool pins_orphan(struct server *srv, struct obj *o, bool linked,
                 void (*done)(void *arg), void *arg);

/*
 * Startup: remove whatever is in .replicafs/orphans (orphans_fd): objects
 * that were open when the daemon last stopped have no name and no opener
 * any more.  Returns the number removed or -errno.  Synchronous: runs once
 * before the loop serves anyone.
 */
int pins_purge_orphans(int orphans_fd);

#endif
