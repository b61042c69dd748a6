/* Unit tests of client/ncache.c: (folder, name) -> child, by name and by
 * child. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "client/ncache.h"

static struct proto_attr attr_of(uint64_t size)
{
    return (struct proto_attr){.size = size, .mode = 0100644, .nlink = 1};
}

Test(ncache, put_then_get)
{
    struct ncache c;
    struct proto_attr a = attr_of(42);
    const struct ncache_ent *e;

    cr_assert_eq(ncache_init(&c), 0);
    cr_assert_null(ncache_get(&c, 1, "f"));
    cr_assert_eq(ncache_put(&c, 1, "f", 7, 3, &a), 0);
    e = ncache_get(&c, 1, "f");
    cr_assert_not_null(e);
    cr_assert_eq(ncache_get_ino(&c, 7), e, "found by the child too");
    cr_assert_null(ncache_get_ino(&c, 8));
    cr_assert_eq(e->ino, 7);
    cr_assert_eq(e->epoch, 3);
    cr_assert_eq(e->attr.size, 42);
    cr_assert_null(ncache_get(&c, 2, "f"), "another folder");
    cr_assert_null(ncache_get(&c, 1, "g"), "another name");
    ncache_fini(&c);
    cr_assert_null(ncache_get(&c, 1, "f"), "finished: finds nothing");
}

Test(ncache, one_entry_per_name_and_per_child)
{
    struct ncache c;
    struct proto_attr a = attr_of(1);

    cr_assert_eq(ncache_init(&c), 0);
    cr_assert_eq(ncache_put(&c, 1, "f", 7, 1, &a), 0);
    /* the name now leads elsewhere (renamed over) */
    cr_assert_eq(ncache_put(&c, 1, "f", 8, 1, &a), 0);
    cr_assert_eq(ncache_get(&c, 1, "f")->ino, 8);
    cr_assert_eq(c.count, 1);
    /* the child seen under another name: the old name goes */
    cr_assert_eq(ncache_put(&c, 2, "g", 8, 1, &a), 0);
    cr_assert_null(ncache_get(&c, 1, "f"));
    cr_assert_eq(ncache_get(&c, 2, "g")->ino, 8);
    cr_assert_eq(c.count, 1);
    ncache_drop_ino(&c, 8);
    cr_assert_null(ncache_get(&c, 2, "g"));
    cr_assert_eq(c.count, 0);
    ncache_fini(&c);
}

Test(ncache, drop_by_name_leaves_the_others)
{
    struct ncache c;
    struct proto_attr a = attr_of(1);

    cr_assert_eq(ncache_init(&c), 0);
    cr_assert_eq(ncache_put(&c, 1, "a", 10, 1, &a), 0);
    cr_assert_eq(ncache_put(&c, 1, "b", 11, 1, &a), 0);
    ncache_drop_name(&c, 1, "a");
    ncache_drop_name(&c, 1, "zz"); /* not there: nothing happens */
    ncache_drop_ino(&c, 99);
    cr_assert_null(ncache_get(&c, 1, "a"));
    cr_assert_eq(ncache_get(&c, 1, "b")->ino, 11);
    cr_assert_eq(c.count, 1);
    ncache_fini(&c);
}

Test(ncache, grows_and_shrinks_and_finds_all)
{
    struct ncache c;
    char name[32];
    struct proto_attr a;

    cr_assert_eq(ncache_init(&c), 0);
    for (uint64_t i = 0; i < 50000; i++) {
        a = attr_of(i);
        snprintf(name, sizeof(name), "f%llu", (unsigned long long)i);
        cr_assert_eq(ncache_put(&c, 100 + i % 256, name, 1000 + i, 1, &a), 0);
    }
    cr_assert_eq(c.count, 50000);
    cr_assert_geq(c.cap, 50000);
    for (uint64_t i = 0; i < 50000; i++) {
        const struct ncache_ent *e;

        snprintf(name, sizeof(name), "f%llu", (unsigned long long)i);
        e = ncache_get(&c, 100 + i % 256, name);
        cr_assert_not_null(e, "%s", name);
        cr_assert_eq(e->ino, 1000 + i);
        cr_assert_eq(e->attr.size, i);
    }
    for (uint64_t i = 0; i < 49990; i++)
        ncache_drop_ino(&c, 1000 + i);
    cr_assert_eq(c.count, 10);
    cr_assert_lt(c.cap, 50000, "shrank");
    for (uint64_t i = 49990; i < 50000; i++) {
        snprintf(name, sizeof(name), "f%llu", (unsigned long long)i);
        cr_assert_not_null(ncache_get(&c, 100 + i % 256, name));
    }
    ncache_fini(&c);
}
