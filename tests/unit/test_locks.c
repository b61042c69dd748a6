/* Lock manager: grant, queue, release, relock counting, conn close. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "daemon/locks.h"

static struct lockmgr m;
static const struct rfs_id X = {7, 7};
static int conn_a, conn_b, conn_c; /* identities only */

struct waiter {
    struct lk_req lk;
    int calls;
    int status;
};

static void waiter_cb(struct lk_req *lk, int status)
{
    struct waiter *w = (struct waiter *)lk;

    w->calls++;
    w->status = status;
}

static void req_init(struct waiter *w, const void *conn, uint64_t owner,
                     uint32_t type, uint32_t flags, const char *name)
{
    memset(w, 0, sizeof(*w));
    w->lk.conn = conn;
    w->lk.owner = owner;
    w->lk.type = type;
    w->lk.flags = flags;
    w->lk.cb = waiter_cb;
    strcpy(w->lk.name, name);
    w->status = 12345;
}

static void setup(void)
{
    cr_assert_eq(lockmgr_init(&m), 0);
}

static void teardown(void)
{
    lockmgr_fini(&m);
}

TestSuite(locks, .init = setup, .fini = teardown);

Test(locks, readers_share_writer_waits)
{
    struct waiter r1, r2, w;

    req_init(&r1, &conn_a, 1, LK_RD, 0, "");
    req_init(&r2, &conn_b, 2, LK_RD, 0, "");
    req_init(&w, &conn_c, 3, LK_WR, 0, "");
    cr_assert_eq(lockmgr_lock(&m, &r1.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &r2.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &w.lk, LK_DOM_INODE, &X), 1);
    cr_assert_eq(m.nholds, 2);
    cr_assert_eq(m.nwaiters, 1);
    cr_assert_eq(lockmgr_unlock(&m, &conn_a, 1, LK_DOM_INODE, &X, ""), 0);
    cr_assert_eq(w.calls, 0, "one reader still holds it");
    cr_assert_eq(lockmgr_unlock(&m, &conn_b, 2, LK_DOM_INODE, &X, ""), 0);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(w.status, 0);
    cr_assert_eq(m.nholds, 1);
    cr_assert_eq(m.nwaiters, 0);
}

Test(locks, nonblock_conflict_is_eagain_and_leaves_nothing)
{
    struct waiter a, b;

    req_init(&a, &conn_a, 1, LK_WR, 0, "");
    req_init(&b, &conn_b, 2, LK_RD, LK_NONBLOCK, "");
    cr_assert_eq(lockmgr_lock(&m, &a.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &b.lk, LK_DOM_INODE, &X), -EAGAIN);
    cr_assert_eq(m.nwaiters, 0);
    cr_assert_eq(b.calls, 0);
}

Test(locks, same_holder_relock_is_counted)
{
    struct waiter a1, a2, b;

    req_init(&a1, &conn_a, 1, LK_WR, 0, "");
    req_init(&a2, &conn_a, 1, LK_WR, 0, "");
    req_init(&b, &conn_b, 2, LK_WR, 0, "");
    cr_assert_eq(lockmgr_lock(&m, &a1.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &b.lk, LK_DOM_INODE, &X), 1);
    /* re-lock is granted even with a waiter queued (no self-deadlock) */
    cr_assert_eq(lockmgr_lock(&m, &a2.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(m.nholds, 1, "one hold with count 2");
    lockmgr_unlock(&m, &conn_a, 1, LK_DOM_INODE, &X, "");
    cr_assert_eq(b.calls, 0);
    lockmgr_unlock(&m, &conn_a, 1, LK_DOM_INODE, &X, "");
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.status, 0);
}

Test(locks, same_owner_on_other_conn_is_another_holder)
{
    struct waiter a, b;

    req_init(&a, &conn_a, 1, LK_WR, 0, "");
    req_init(&b, &conn_b, 1, LK_WR, LK_NONBLOCK, "");
    cr_assert_eq(lockmgr_lock(&m, &a.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &b.lk, LK_DOM_INODE, &X), -EAGAIN);
}

Test(locks, fifo_writer_not_starved_by_later_readers)
{
    struct waiter r1, w, r2;

    req_init(&r1, &conn_a, 1, LK_RD, 0, "");
    req_init(&w, &conn_b, 2, LK_WR, 0, "");
    req_init(&r2, &conn_c, 3, LK_RD, 0, "");
    cr_assert_eq(lockmgr_lock(&m, &r1.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &w.lk, LK_DOM_INODE, &X), 1);
    cr_assert_eq(lockmgr_lock(&m, &r2.lk, LK_DOM_INODE, &X), 1,
                 "a reader queues behind a waiting writer");
    lockmgr_unlock(&m, &conn_a, 1, LK_DOM_INODE, &X, "");
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(r2.calls, 0);
    lockmgr_unlock(&m, &conn_b, 2, LK_DOM_INODE, &X, "");
    cr_assert_eq(r2.calls, 1);
}

Test(locks, entry_whole_dir_conflicts_with_every_name)
{
    struct waiter whole, x, y, y2;

    req_init(&whole, &conn_a, 1, LK_WR, 0, "");
    req_init(&x, &conn_b, 2, LK_WR, 0, "x");
    req_init(&y, &conn_b, 3, LK_WR, 0, "y");
    req_init(&y2, &conn_c, 4, LK_WR, LK_NONBLOCK, "y");
    cr_assert_eq(lockmgr_lock(&m, &x.lk, LK_DOM_ENTRY, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &y.lk, LK_DOM_ENTRY, &X), 0,
                 "different names do not conflict");
    cr_assert_eq(lockmgr_lock(&m, &y2.lk, LK_DOM_ENTRY, &X), -EAGAIN);
    cr_assert_eq(lockmgr_lock(&m, &whole.lk, LK_DOM_ENTRY, &X), 1);
    lockmgr_unlock(&m, &conn_b, 2, LK_DOM_ENTRY, &X, "x");
    cr_assert_eq(whole.calls, 0, "y still held");
    lockmgr_unlock(&m, &conn_b, 3, LK_DOM_ENTRY, &X, "y");
    cr_assert_eq(whole.calls, 1);
}

Test(locks, inode_and_entry_domains_are_separate)
{
    struct waiter a, b;

    req_init(&a, &conn_a, 1, LK_WR, 0, "");
    req_init(&b, &conn_b, 2, LK_WR, LK_NONBLOCK, "");
    cr_assert_eq(lockmgr_lock(&m, &a.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &b.lk, LK_DOM_ENTRY, &X), 0);
}

Test(locks, conn_gone_releases_drops_and_grants)
{
    struct waiter a, a_wait, b;
    const struct rfs_id Y = {8, 8};

    req_init(&a, &conn_a, 1, LK_WR, 0, "");
    req_init(&b, &conn_b, 2, LK_WR, 0, "");
    cr_assert_eq(lockmgr_lock(&m, &a.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &b.lk, LK_DOM_INODE, &X), 1);
    /* conn_a also waits on Y, held by conn_b */
    {
        struct waiter by;

        req_init(&by, &conn_b, 2, LK_WR, 0, "");
        cr_assert_eq(lockmgr_lock(&m, &by.lk, LK_DOM_INODE, &Y), 0);
    }
    req_init(&a_wait, &conn_a, 1, LK_RD, 0, "");
    cr_assert_eq(lockmgr_lock(&m, &a_wait.lk, LK_DOM_INODE, &Y), 1);
    lockmgr_conn_gone(&m, &conn_a);
    cr_assert_eq(a_wait.calls, 1);
    cr_assert_eq(a_wait.status, -ENOTCONN);
    cr_assert_eq(b.calls, 1, "conn_b's waiter on X is granted");
    cr_assert_eq(b.status, 0);
    cr_assert_eq(m.nwaiters, 0);
    cr_assert_eq(m.nholds, 2, "conn_b now holds X and Y");
    lockmgr_conn_gone(&m, &conn_b);
    cr_assert_eq(m.nholds, 0);
    cr_assert_eq(m.nres, 0, "resources are freed when empty");
}

Test(locks, unlock_not_held_is_enoent_and_cancels_own_waiter)
{
    struct waiter a, b;

    cr_assert_eq(lockmgr_unlock(&m, &conn_a, 1, LK_DOM_INODE, &X, ""), -ENOENT);
    req_init(&a, &conn_a, 1, LK_WR, 0, "");
    req_init(&b, &conn_b, 2, LK_WR, 0, "");
    cr_assert_eq(lockmgr_lock(&m, &a.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &b.lk, LK_DOM_INODE, &X), 1);
    cr_assert_eq(lockmgr_unlock(&m, &conn_b, 2, LK_DOM_INODE, &X, ""), 0);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.status, -EINTR);
    cr_assert_eq(m.nwaiters, 0);
}

Test(locks, upgrade_waits_for_other_readers)
{
    struct waiter a, b, up;

    req_init(&a, &conn_a, 1, LK_RD, 0, "");
    req_init(&b, &conn_b, 2, LK_RD, 0, "");
    req_init(&up, &conn_a, 1, LK_WR, 0, "");
    cr_assert_eq(lockmgr_lock(&m, &a.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &b.lk, LK_DOM_INODE, &X), 0);
    cr_assert_eq(lockmgr_lock(&m, &up.lk, LK_DOM_INODE, &X), 1);
    lockmgr_unlock(&m, &conn_b, 2, LK_DOM_INODE, &X, "");
    cr_assert_eq(up.calls, 1);
    cr_assert_eq(up.status, 0);
    cr_assert_eq(m.nholds, 1, "the upgrade merged into the existing hold");
}

Test(locks, bad_type_or_named_inode_lock_is_einval)
{
    struct waiter a, b;

    req_init(&a, &conn_a, 1, LK_UN, 0, "");
    req_init(&b, &conn_a, 1, LK_RD, 0, "name");
    cr_assert_eq(lockmgr_lock(&m, &a.lk, LK_DOM_INODE, &X), -EINVAL);
    cr_assert_eq(lockmgr_lock(&m, &b.lk, LK_DOM_INODE, &X), -EINVAL);
}
