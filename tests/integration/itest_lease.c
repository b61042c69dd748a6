/*
 * Read leases on one brick, seen from two raw connections (docs/protocol.md
 * "Read leases"): the holder H takes a lease with OPENX, the writer W
 * changes the file.  The brick must recall H's lease before it answers W,
 * hold W's reply until H gives the lease back or the recall wait (1 s)
 * runs out, and then tell H it lost every lease; a lease being recalled is
 * not granted again, and the refusal reaches H before its OPENX reply.
 *
 * Repro: build-dir/tests/itest_lease --jobs 1 --verbose
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/id.h"
#include "itest_util.h"

static struct itest_vol *V;
static struct brick_conn *H, *W;
static const struct rfs_id ROOT = {0, 1};

/* What H saw, in order: 'R' a recall, 'L' leases lost, 'X' an OPENX reply. */
static char seen[64];
static size_t nseen;
static struct rfs_id recalled; /* the id of the last recall */
static bool ack_recalls; /* H answers each recall at once */

static void note(char c)
{
    if (nseen + 1 < sizeof(seen))
        seen[nseen++] = c;
    seen[nseen] = 0;
}

static void ignore_cb(int status, const void *rep, void *arg)
{
    (void)status;
    (void)rep;
    (void)arg;
}

static void holder_event(struct brick_conn *bc, uint16_t op, const void *msg,
                         void *arg)
{
    const struct inval_event *ev = msg;

    (void)arg;
    if (op != OP_INVAL)
        return;
    if (ev->what & INVAL_LEASES_LOST)
        note('L');
    if (ev->what & INVAL_RECALL) {
        struct lease_ack_req ack = {.id = ev->id};

        note('R');
        recalled = ev->id;
        if (ack_recalls)
            cr_assert_eq(brick_call(bc, OP_LEASE_ACK, &ack, ignore_cb, NULL),
                         0);
    }
}

/* Run the loop until H has seen n events (or 5 s). */
static void wait_seen(size_t n)
{
    uint64_t end = itest_now_ms() + 5000;

    while (nseen < n && itest_now_ms() < end) {
        uv_run(&V->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    cr_assert_geq(nseen, n, "H saw only '%s'", seen);
}

static void setup(void)
{
    struct brick_conn_opts o = {.on_event = holder_event};

    V = itest_vol_new("itlease", 1);
    itest_start_all(V);
    H = itest_connect_opts(V, 1, &o, NULL);
    W = itest_connect(V, 1);
    nseen = 0;
    seen[0] = 0;
    ack_recalls = false;
}

static void teardown(void)
{
    itest_vol_free(V);
    V = NULL;
}

TestSuite(lease, .init = setup, .fini = teardown, .timeout = 60);

/* A brick whose connections may hold 2 leases each (RFS_LEASE_CAP). */
static void setup_cap2(void)
{
    setenv("RFS_LEASE_CAP", "2", 1);
    setup();
}

TestSuite(lease_cap, .init = setup_cap2, .fini = teardown, .timeout = 60);

static void make_file(const char *name, struct rfs_id *id)
{
    IT_OK(it_create(W, &ROOT, name, CREATE_EXCL, id, NULL));
    IT_OK(it_write(W, id, 0, "v1", 2));
}

static void take_lease(const struct rfs_id *id)
{
    struct open_req q = {.id = *id, .flags = O_RDONLY | OPEN_LEASE};
    struct openx_rep rep;
    struct release_req rel = {.id = *id};

    IT_OK(brick_call_sync(H, OP_OPENX, &q, &rep, NULL));
    IT_OK(brick_call_sync(H, OP_RELEASE, &rel, NULL, NULL));
}

/* W's write, timed in ms. */
static uint64_t timed_write(const struct rfs_id *id, const char *text)
{
    uint64_t t0 = itest_now_ms();

    IT_OK(it_write(W, id, 0, text, (uint32_t)strlen(text)));
    return itest_now_ms() - t0;
}

Test(lease, a_write_waits_for_the_holder_to_give_it_back)
{
    struct rfs_id id;
    uint64_t ms;

    make_file("f", &id);
    take_lease(&id);
    ack_recalls = true;
    ms = timed_write(&id, "v2");
    cr_assert_str_eq(seen, "R", "H saw '%s'", seen);
    cr_assert(ms < 900, "the write took %llu ms with a prompt holder",
              (unsigned long long)ms);
    /* Given back: the next write recalls nothing. */
    nseen = 0;
    seen[0] = 0;
    timed_write(&id, "v3");
    cr_assert_str_eq(seen, "", "H saw '%s' without a lease", seen);
}

Test(lease, a_silent_holder_loses_every_lease_after_the_recall_wait)
{
    struct rfs_id a, b;
    uint64_t ms;

    make_file("a", &a);
    make_file("b", &b);
    take_lease(&a);
    take_lease(&b);
    ms = timed_write(&a, "v2");
    cr_assert(ms >= 900, "the write took only %llu ms: it did not wait",
              (unsigned long long)ms);
    cr_assert(ms < 5000, "the write took %llu ms", (unsigned long long)ms);
    cr_assert_str_eq(seen, "RL", "H saw '%s'", seen);
    /* The lease on b went with it: a change of b recalls nothing. */
    nseen = 0;
    seen[0] = 0;
    ms = timed_write(&b, "v2");
    cr_assert_str_eq(seen, "", "H saw '%s' after losing its leases", seen);
    cr_assert(ms < 900);
}

Test(lease, a_lease_being_recalled_is_refused_before_the_openx_reply)
{
    struct rfs_id id;
    struct open_req q = {.flags = O_RDONLY | OPEN_LEASE};
    struct openx_rep rep;

    make_file("f", &id);
    take_lease(&id);
    /* W's write recalls it; H does not answer yet and asks again. */
    IT_OK(brick_call(W, OP_WRITE,
                     &(struct write_req){.id = id, .offset = 0,
                                         .data = {(const uint8_t *)"v2", 2}},
                     ignore_cb, NULL));
    wait_seen(1);
    q.id = id;
    IT_OK(brick_call_sync(H, OP_OPENX, &q, &rep, NULL));
    note('X');
    cr_assert_str_eq(seen, "RRX", "H saw '%s'", seen);
}

Test(lease, an_unlinked_leased_file_waits_for_the_holders_open)
{
    struct rfs_id id;
    struct lease_ack_req ack;
    struct open_req q = {.flags = O_RDONLY};
    struct proto_attr a;
    char buf[8];
    uint32_t got = 0;

    make_file("u", &id);
    take_lease(&id);
    /* W's unlink recalls the lease; its reply waits.  H, as a mount with
     * the file open from its lease does, OPENs it and gives it back. */
    IT_OK(brick_call(W, OP_UNLINK,
                     &(struct unlink_req){.parent = ROOT, .name = "u"},
                     ignore_cb, NULL));
    wait_seen(1);
    q.id = id;
    IT_OK(brick_call_sync(H, OP_OPEN, &q, &a, NULL));
    cr_assert_str_eq(seen, "R", "H saw '%s'", seen);
    ack.id = id;
    IT_OK(brick_call_sync(H, OP_LEASE_ACK, &ack, NULL, NULL));
    IT_OK(it_read(H, &id, 0, sizeof(buf), buf, &got));
    cr_assert_eq(got, 2);
    cr_assert_eq(memcmp(buf, "v1", 2), 0);
    IT_RC(it_lookup(W, &ROOT, "u", NULL), -ENOENT);
}

/* Past its cap a connection's oldest lease is recalled to make room, before
 * the reply of the OPENX that asked for the new one. */
Test(lease_cap, the_oldest_lease_makes_room)
{
    struct rfs_id a, b, c;
    struct open_req q = {.flags = O_RDONLY | OPEN_LEASE};
    struct openx_rep rep;
    struct lease_ack_req ack;

    IT_OK(it_create(W, &ROOT, "a", CREATE_EXCL, &a, NULL));
    IT_OK(it_create(W, &ROOT, "b", CREATE_EXCL, &b, NULL));
    IT_OK(it_create(W, &ROOT, "c", CREATE_EXCL, &c, NULL));
    take_lease(&a);
    take_lease(&b);
    cr_assert_str_eq(seen, "", "H saw '%s' under its cap", seen);
    q.id = c;
    IT_OK(brick_call_sync(H, OP_OPENX, &q, &rep, NULL));
    note('X');
    cr_assert_str_eq(seen, "RX", "H saw '%s'", seen);
    cr_assert(rfs_id_eq(&recalled, &a), "the recall was not for the oldest");
    ack.id = a;
    IT_OK(brick_call_sync(H, OP_LEASE_ACK, &ack, NULL, NULL));
    /* b and c are held: a write of b recalls it, a write of a does not. */
    nseen = 0;
    seen[0] = 0;
    ack_recalls = true;
    timed_write(&a, "x");
    cr_assert_str_eq(seen, "", "a is still leased: H saw '%s'", seen);
    timed_write(&b, "x");
    cr_assert_str_eq(seen, "R", "b is not leased: H saw '%s'", seen);
}

/* A blame (pending counter) written after the data reached the brick must
 * recall the leases granted in between: an open served from one reads
 * where the holder's cached blame says, so the blame waits for the holder
 * like a change does (bug 27 in docs/reliability.md). */
Test(lease, a_blame_waits_for_the_holder_to_give_it_back)
{
    struct rfs_id id;
    struct xattrop_req x = {.npending = 2};
    struct xattrop_rep rep;
    uint64_t t0, ms;

    make_file("f", &id);
    take_lease(&id);
    x.id = id;
    x.pending[1] = 1;
    t0 = itest_now_ms();
    IT_OK(brick_call_sync(W, OP_XATTROP, &x, &rep, NULL));
    ms = itest_now_ms() - t0;
    cr_assert_str_eq(seen, "RL", "H saw '%s'", seen);
    cr_assert(ms >= 900, "the blame took only %llu ms: it did not wait",
              (unsigned long long)ms);
    cr_assert_eq(rep.pending[1], 1);
    /* A zero XATTROP (a markers read) recalls nothing. */
    take_lease(&id);
    nseen = 0;
    seen[0] = 0;
    x.pending[1] = 0;
    IT_OK(brick_call_sync(W, OP_XATTROP, &x, &rep, NULL));
    cr_assert_str_eq(seen, "", "H saw '%s' after a markers read", seen);
}
