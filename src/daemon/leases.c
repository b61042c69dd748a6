/*
 * Read leases: the brick's side (docs/protocol.md "Read leases",
 * docs/daemon.md).
 *
 * Design
 * ======
 * A lease is a record (object id, connection), not an open object: a mount
 * that read 20,000 files holds 20,000 leases and no descriptor.  The table
 * hashes them by id, every holder of one id in the same chain, and each
 * connection lists its own.
 *
 *   OPENX+OPEN_LEASE --grant--> HELD --a change of id--> RECALLING
 *                                 ^                          |
 *                                 |          LEASE_ACK, W passed (all of
 *                                 |          the holder's leases go, with
 *                                 |          INVAL_LEASES_LOST first), or
 *                                 |          the connection closed
 *                                 +---- (a later OPENX) <----+ freed
 *
 * A change (WRITE, SETATTR, the last name going) calls leases_recall() for
 * every connection before it replies: the holder gets an INVAL with
 * INVAL_RECALL, and the change's reply is held (req.c) until every lease it
 * recalled is gone.  So when the writer hears "done", no mount can still
 * answer an open of the old version from its memory.  The changer's own
 * lease is recalled without holding the reply: the recall reaches it first
 * on the same connection.
 *
 * Invariants:
 *  1. At most one lease per (id, connection).  A lease is on its chain, on
 *     its connection's list, and on `recalling` iff recall_ms != 0.
 *  2. Every request waiting on a lease (struct lwait) is woken exactly
 *     once: when the lease is freed, whatever the reason.
 *  3. A recalled holder that does not answer within W loses every lease it
 *     has here, and is told so (INVAL_LEASES_LOST) before anything else
 *     this brick sends it afterwards: the client's rule for trusting its
 *     leases (a reply to a request sent less than L < W ago) rests on it.
 *  4. A lease pin (leases_pin) is one pin count on the holder's connection,
 *     dropped when the lease goes.
 *  5. A lease being recalled is not granted again (-EBUSY): the holder's
 *     LEASE_ACK would free the new grant with the old one.
 *  6. A connection holds at most `cap` leases that are not being recalled:
 *     a grant beyond that recalls its oldest one (a recall like any other,
 *     only no change waits for it).  With as many again unanswered, it is
 *     refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/id.h"
#include "common/log.h"
#include "conn.h"
#include "idhash.h"
#include "leases.h"
#include "pins.h"
#include "req.h"
#include "server.h"

struct lwait {
    struct lwait *next;
    struct req *r;              /* its reply waits (req.c) */
};

struct lease {
    struct rfs_id id;
    struct conn *c;             /* borrowed: frees its leases at close */
    struct lease *hnext;        /* hash chain */
    struct list clink;          /* on c->leases.all */
    struct list rlink;          /* on leases.recalling while recalled */
    uint64_t recall_ms;         /* uv_now() of the recall; 0: held */
    struct lwait *waiters;      /* owned */
    bool pinned;                /* invariant 4 */
};

static void timer_cb(uv_timer_t *t);

void leases_init(struct leases *ls, uv_loop_t *loop, unsigned wait_ms,
                 size_t cap)
{
    memset(ls, 0, sizeof(*ls));
    list_init(&ls->recalling);
    ls->wait_ms = wait_ms ? wait_ms : LEASE_RECALL_WAIT_MS;
    ls->cap = cap ? cap : LEASE_MAX_PER_CONN;
    if (loop) {
        uv_timer_init(loop, &ls->timer);
        ls->timer_ok = true;
    }
}

void leases_close(struct leases *ls)
{
    if (!ls->timer_ok)
        return;
    uv_timer_stop(&ls->timer);
    uv_close((uv_handle_t *)&ls->timer, NULL);
    ls->timer_ok = false;
}

void leases_fini(struct leases *ls)
{
    free(ls->tab);
    ls->tab = NULL;
    ls->nbuckets = 0;
}

void conn_leases_init(struct conn_leases *cl)
{
    list_init(&cl->all);
    cl->count = 0;
}

static struct lease **chain(struct leases *ls, const struct rfs_id *id)
{
    return &ls->tab[rfs_id_hash(id) & (ls->nbuckets - 1)];
}

static struct lease *find(struct leases *ls, const struct conn *c,
                          const struct rfs_id *id)
{
    struct lease *l;

    if (!ls->nbuckets)
        return NULL;
    for (l = *chain(ls, id); l; l = l->hnext)
        if (l->c == c && rfs_id_eq(&l->id, id))
            return l;
    return NULL;
}

static int grow(struct leases *ls)
{
    size_t n = ls->nbuckets ? ls->nbuckets * 2 : 64;
    struct lease **tab = calloc(n, sizeof(*tab));

    if (!tab)
        return ls->nbuckets ? 0 : -ENOMEM; /* longer chains still work */
    IDHASH_REHASH(struct lease, ls->tab, ls->nbuckets, tab, n, hnext, id);
    free(ls->tab);
    ls->tab = tab;
    ls->nbuckets = n;
    return 0;
}

/* Invariants 2 and 4: the lease leaves every list and is freed. */
static void lease_free(struct server *srv, struct lease *l)
{
    struct leases *ls = &srv->leases;
    struct lease **pp = chain(ls, &l->id);
    struct lwait *w;

    while (*pp != l)
        pp = &(*pp)->hnext;
    *pp = l->hnext;
    ls->count--;
    list_del(&l->clink);
    l->c->leases.count--;
    list_del(&l->rlink);
    if (l->pinned)
        (void)pins_drop(srv, &l->c->pins, &l->id);
    while ((w = l->waiters) != NULL) {
        l->waiters = w->next;
        req_recall_done(w->r);
        free(w);
    }
    free(l);
}

static void send_what(struct conn *c, const struct rfs_id *id, uint32_t what)
{
    struct proto_hdr h = {.op = OP_INVAL, .kind = PROTO_EVENT, .reqid = 0};
    struct inval_event ev = {.what = what};

    if (id)
        ev.id = *id;
    conn_send(c, &h, 0, &ev, NULL);
}

void leases_refuse(struct server *srv, struct conn *c,
                   const struct rfs_id *id)
{
    (void)srv;
    send_what(c, id, INVAL_RECALL);
}

static void arm(struct leases *ls)
{
    struct lease *l;
    uint64_t now, due;

    if (!ls->timer_ok || list_empty(&ls->recalling))
        return;
    l = container_of(list_first(&ls->recalling), struct lease, rlink);
    now = uv_now(ls->timer.loop);
    due = l->recall_ms + ls->wait_ms;
    uv_timer_start(&ls->timer, timer_cb, due > now ? due - now : 0, 0);
}

/* Invariant 3: c is told first, then every lease it has here goes. */
static void lose_all(struct server *srv, struct conn *c)
{
    send_what(c, NULL, INVAL_LEASES_LOST);
    leases_conn_gone(srv, c);
}

/* Invariant 1's recall state, entered once. */
static void start_recall(struct leases *ls, struct lease *l)
{
    if (l->recall_ms)
        return;
    l->recall_ms = ls->timer_ok ? uv_now(ls->timer.loop) : 1;
    if (!l->recall_ms)
        l->recall_ms = 1;
    list_add_tail(&ls->recalling, &l->rlink);
    ls->recalled++;
    if (ls->recalling.next == &l->rlink)
        arm(ls);
}

bool leases_recall(struct server *srv, struct req *r, struct conn *c,
                   const struct rfs_id *id)
{
    struct leases *ls = &srv->leases;
    struct lease *l = find(ls, c, id);
    struct lwait *w;

    if (!l)
        return false;
    start_recall(ls, l);
    if (!r)
        return true;
    w = malloc(sizeof(*w));
    if (!w) {
        /* Cannot wait for it: take it away now (invariant 3's way). */
        log_warn("leases: no memory to wait for a recall: dropping the "
                 "leases of conn %llu", (unsigned long long)c->cid);
        lose_all(srv, c);
        return true;
    }
    w->r = r;
    w->next = l->waiters;
    l->waiters = w;
    req_recall_wait(r);
    return true;
}

int leases_grant(struct server *srv, struct conn *c, const struct rfs_id *id)
{
    struct leases *ls = &srv->leases;
    struct lease *l = find(ls, c, id);

    if (l)
        return l->recall_ms ? -EBUSY : 0; /* invariant 5 */
    if (c->leases.count >= ls->cap) {
        /* Invariant 6: make room by recalling its oldest lease. */
        struct list *pos;

        for (pos = c->leases.all.next; pos != &c->leases.all;
             pos = pos->next) {
            struct lease *old = container_of(pos, struct lease, clink);

            if (!old->recall_ms) {
                start_recall(ls, old);
                send_what(c, &old->id, INVAL_RECALL);
                ls->evicted++;
                break;
            }
        }
        if (c->leases.count >= 2 * ls->cap)
            return -ENOSPC; /* it does not answer its recalls */
    }
    if (ls->count >= ls->nbuckets && grow(ls) < 0)
        return -ENOMEM;
    l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->id = *id;
    l->c = c;
    list_init(&l->rlink);
    list_add_tail(&c->leases.all, &l->clink);
    c->leases.count++;
    l->hnext = *chain(ls, id);
    *chain(ls, id) = l;
    ls->count++;
    return 0;
}

void leases_ack(struct server *srv, struct conn *c, const struct rfs_id *id)
{
    struct lease *l = find(&srv->leases, c, id);

    if (!l)
        return;
    lease_free(srv, l);
}

unsigned leases_pin(struct server *srv, const struct rfs_id *id,
                    struct obj *o)
{
    struct leases *ls = &srv->leases;
    unsigned n = 0;

    if (!ls->nbuckets)
        return 0;
    for (struct lease *l = *chain(ls, id); l; l = l->hnext) {
        if (l->pinned || !rfs_id_eq(&l->id, id))
            continue;
        if (pins_add(srv, &l->c->pins, o) < 0)
            continue; /* its cached opens lose the object: logged below */
        l->pinned = true;
        n++;
    }
    return n;
}

bool leases_held(struct server *srv, const struct rfs_id *id)
{
    struct leases *ls = &srv->leases;

    if (!ls->count)
        return false;
    for (struct lease *l = *chain(ls, id); l; l = l->hnext)
        if (rfs_id_eq(&l->id, id))
            return true;
    return false;
}

void leases_conn_gone(struct server *srv, struct conn *c)
{
    while (!list_empty(&c->leases.all))
        lease_free(srv, container_of(list_first(&c->leases.all),
                                     struct lease, clink));
}

/* Invariant 3: the oldest recalls that ran out take their holders' leases. */
static void timer_cb(uv_timer_t *t)
{
    struct leases *ls = container_of(t, struct leases, timer);
    struct server *srv = container_of(ls, struct server, leases);
    uint64_t now = uv_now(t->loop);

    while (!list_empty(&ls->recalling)) {
        struct lease *l = container_of(list_first(&ls->recalling),
                                       struct lease, rlink);
        struct conn *c = l->c;

        if (l->recall_ms + ls->wait_ms > now)
            break;
        log_warn("conn %llu (%s): a lease recall was not answered in %u ms: "
                 "all %zu of its leases here are dropped",
                 (unsigned long long)c->cid, c->peer, ls->wait_ms,
                 c->leases.count);
        ls->expired++;
        lose_all(srv, c);
    }
    arm(ls);
}
