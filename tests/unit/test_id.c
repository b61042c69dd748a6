/* Object ids: hex form (used for on-disk names), randomness, hashing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/id.h"

Test(id, root_hex_form)
{
    char hex[RFS_ID_HEX_LEN + 1];
    struct rfs_id root = RFS_ROOT_ID;

    rfs_id_to_hex(&root, hex);
    cr_assert_str_eq(hex, "00000000000000000000000000000001");
    cr_assert(rfs_id_is_root(&root));
    cr_assert_not(rfs_id_is_zero(&root));
}

Test(id, hex_round_trip_and_order)
{
    struct rfs_id id = {0x0123456789abcdefull, 0xfedcba9876543210ull}, out;
    char hex[RFS_ID_HEX_LEN + 1];

    rfs_id_to_hex(&id, hex);
    cr_assert_str_eq(hex, "0123456789abcdeffedcba9876543210");
    cr_assert_eq(rfs_id_from_hex(hex, &out), 0);
    cr_assert(rfs_id_eq(&id, &out));
    cr_assert_eq(rfs_id_from_hex("0123456789ABCDEFFEDCBA9876543210", &out), 0);
    cr_assert(rfs_id_eq(&id, &out), "upper case accepted");
}

Test(id, from_hex_is_strict_and_leaves_id_untouched)
{
    struct rfs_id keep = {7, 7}, out = keep;
    const char *bad[] = {
        "",
        "0123456789abcdeffedcba987654321",   /* 31 */
        "0123456789abcdeffedcba98765432100", /* 33 */
        "0123456789abcdeffedcba987654321g",
        "0123456789abcdef fedcba987654321",
        "0x23456789abcdeffedcba9876543210",
        "0123456789abcdeffedcba9876543210/name",
        "-123456789abcdeffedcba9876543210",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(rfs_id_from_hex(bad[i], &out), -EINVAL, "%s", bad[i]);
        cr_assert(rfs_id_eq(&out, &keep));
    }
}

Test(id, random_ids_are_distinct_and_never_reserved)
{
    struct rfs_id ids[512];

    for (int i = 0; i < 512; i++) {
        rfs_id_random(&ids[i]);
        cr_assert_not(rfs_id_is_zero(&ids[i]));
        cr_assert_not(rfs_id_is_root(&ids[i]));
        for (int j = 0; j < i; j++)
            cr_assert_not(rfs_id_eq(&ids[i], &ids[j]));
    }
}

Test(id, eq_and_zero)
{
    struct rfs_id a = {1, 2}, b = {1, 2}, c = {2, 1}, z = {0, 0};

    cr_assert(rfs_id_eq(&a, &b));
    cr_assert_not(rfs_id_eq(&a, &c));
    cr_assert(rfs_id_is_zero(&z));
    cr_assert_not(rfs_id_is_root(&z));
    cr_assert_not(rfs_id_is_root(&c));
}

Test(id, hash_is_stable_and_spreads_low_bits)
{
    struct rfs_id a = {0, 1}, b = {0, 1};
    unsigned buckets[64] = {0};

    cr_assert_eq(rfs_id_hash(&a), rfs_id_hash(&b));
    /* sequential ids (worst case: tests, root neighbourhood) must not pile
     * into a few buckets when callers mask the low bits */
    for (uint64_t i = 0; i < 64 * 64; i++) {
        struct rfs_id id = {0, i};
        buckets[rfs_id_hash(&id) & 63]++;
    }
    for (int i = 0; i < 64; i++)
        cr_assert(buckets[i] > 20 && buckets[i] < 120, "bucket %d: %u", i,
                  buckets[i]);
    struct rfs_id x = {1, 0}, y = {0, 1};
    cr_assert_neq(rfs_id_hash(&x), rfs_id_hash(&y), "halves are not symmetric");
}
