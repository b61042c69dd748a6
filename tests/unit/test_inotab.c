/* Unit tests of client/inotab.c: ids <-> inode numbers with lookup counts. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "client/inotab.h"
#include "common/id.h"

static struct rfs_id id_of(uint64_t n)
{
    return (struct rfs_id){.hi = 0x1234, .lo = n + 2};
}

static int freed;

static void count_free(void *data)
{
    freed++;
    free(data);
}

Test(inotab, root_id_gets_inode_one)
{
    struct inotab t;
    struct inotab_ent *e;
    struct rfs_id root = RFS_ROOT_ID;

    cr_assert_eq(inotab_init(&t), 0);
    cr_assert_eq(inotab_add(&t, &root, NULL, &e), 0);
    cr_assert_eq(e->ino, INOTAB_ROOT_INO);
    cr_assert_eq(inotab_by_ino(&t, 1), e);
    cr_assert_eq(inotab_by_id(&t, &root), e);
    inotab_fini(&t, NULL);
}

Test(inotab, numbers_are_unique_and_found_both_ways)
{
    struct inotab t;
    struct inotab_ent *e[100];

    cr_assert_eq(inotab_init(&t), 0);
    for (uint64_t i = 0; i < 100; i++) {
        struct rfs_id id = id_of(i);

        cr_assert_eq(inotab_add(&t, &id, NULL, &e[i]), 0);
        cr_assert_neq(e[i]->ino, INOTAB_ROOT_INO);
        for (uint64_t j = 0; j < i; j++)
            cr_assert_neq(e[i]->ino, e[j]->ino);
    }
    for (uint64_t i = 0; i < 100; i++) {
        struct rfs_id id = id_of(i);

        cr_assert_eq(inotab_by_id(&t, &id), e[i]);
        cr_assert_eq(inotab_by_ino(&t, e[i]->ino), e[i]);
    }
    inotab_fini(&t, NULL);
}

Test(inotab, forget_frees_at_zero_and_returns_the_data)
{
    struct inotab t;
    struct inotab_ent *e;
    struct rfs_id id = id_of(7);
    int *data = malloc(sizeof(*data));
    uint64_t ino;

    cr_assert_eq(inotab_init(&t), 0);
    cr_assert_eq(inotab_add(&t, &id, data, &e), 0);
    ino = e->ino;
    inotab_ref(e);
    inotab_ref(e);
    cr_assert_null(inotab_forget(&t, e, 1));
    cr_assert_eq(inotab_by_ino(&t, ino), e);
    cr_assert_eq(inotab_forget(&t, e, 1), data);
    cr_assert_null(inotab_by_ino(&t, ino));
    cr_assert_null(inotab_by_id(&t, &id));
    free(data);
    inotab_fini(&t, NULL);
}

Test(inotab, forget_more_than_held_does_not_underflow)
{
    struct inotab t;
    struct inotab_ent *e;
    struct rfs_id id = id_of(1);
    int x;

    cr_assert_eq(inotab_init(&t), 0);
    cr_assert_eq(inotab_add(&t, &id, &x, &e), 0);
    inotab_ref(e);
    cr_assert_eq(inotab_forget(&t, e, 5), &x);
    cr_assert_eq(t.count, 0);
    inotab_fini(&t, NULL);
}

Test(inotab, root_survives_forget)
{
    struct inotab t;
    struct inotab_ent *e;
    struct rfs_id root = RFS_ROOT_ID;

    cr_assert_eq(inotab_init(&t), 0);
    cr_assert_eq(inotab_add(&t, &root, NULL, &e), 0);
    inotab_ref(e);
    cr_assert_null(inotab_forget(&t, e, 1));
    cr_assert_eq(inotab_by_ino(&t, 1), e);
    inotab_fini(&t, NULL);
}

Test(inotab, a_number_is_never_reused)
{
    struct inotab t;
    struct inotab_ent *e;
    struct rfs_id id = id_of(3);
    uint64_t first;
    int x;

    cr_assert_eq(inotab_init(&t), 0);
    cr_assert_eq(inotab_add(&t, &id, &x, &e), 0);
    first = e->ino;
    inotab_ref(e);
    cr_assert_eq(inotab_forget(&t, e, 1), &x);
    cr_assert_eq(inotab_add(&t, &id, &x, &e), 0);
    cr_assert_neq(e->ino, first);
    cr_assert_null(inotab_by_ino(&t, first));
    inotab_fini(&t, NULL);
}

Test(inotab, grows_and_shrinks_with_many_entries)
{
    struct inotab t;
    enum { N = 50000 };
    struct inotab_ent **e = calloc(N, sizeof(*e));

    cr_assert_eq(inotab_init(&t), 0);
    for (uint64_t i = 0; i < N; i++) {
        struct rfs_id id = id_of(i);

        cr_assert_eq(inotab_add(&t, &id, malloc(1), &e[i]), 0);
        inotab_ref(e[i]);
    }
    cr_assert_eq(t.count, N);
    cr_assert_geq(t.cap, N);
    for (uint64_t i = 0; i < N; i += 2)
        free(inotab_forget(&t, e[i], 1));
    for (uint64_t i = 1; i < N; i += 2) {
        struct rfs_id id = id_of(i);

        cr_assert_eq(inotab_by_id(&t, &id), e[i]);
        cr_assert_eq(inotab_by_ino(&t, e[i]->ino), e[i]);
    }
    for (uint64_t i = 1; i < N - 2; i += 2)
        free(inotab_forget(&t, e[i], 1));
    cr_assert_eq(t.count, 1);
    cr_assert_leq(t.cap, 4096, "the table shrinks when emptied (cap %zu)",
                  t.cap);
    freed = 0;
    inotab_fini(&t, count_free);
    cr_assert_eq(freed, 1);
    free(e);
}

Test(inotab, lookups_after_fini_find_nothing)
{
    struct inotab t;
    struct inotab_ent *e;
    struct rfs_id id = id_of(9);

    cr_assert_eq(inotab_init(&t), 0);
    cr_assert_eq(inotab_add(&t, &id, NULL, &e), 0);
    inotab_fini(&t, NULL);
    cr_assert_null(inotab_by_id(&t, &id));
    cr_assert_null(inotab_by_ino(&t, 2));
}
