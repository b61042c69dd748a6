/* Block checksum: must be XXH3-64 (bricks of different builds compare them). */
#include <criterion/criterion.h>
#include <string.h>

#include "common/checksum.h"

Test(checksum, known_values)
{
    /* XXH3_64bits reference values (xxhash test vectors, seed 0) */
    cr_assert_eq(rfs_xxh3("", 0), 0x2D06800538D394C2ull);
    cr_assert_eq(rfs_xxh3("a", 1), 0xE6C632B61E964E1Full);
}

Test(checksum, sensitive_to_every_byte)
{
    static unsigned char block[RFS_CSUM_BLOCK];
    uint64_t h0;

    memset(block, 0xab, sizeof(block));
    h0 = rfs_xxh3(block, sizeof(block));
    cr_assert_eq(rfs_xxh3(block, sizeof(block)), h0);
    block[sizeof(block) - 1] ^= 1;
    cr_assert_neq(rfs_xxh3(block, sizeof(block)), h0);
    block[sizeof(block) - 1] ^= 1;
    block[0] ^= 1;
    cr_assert_neq(rfs_xxh3(block, sizeof(block)), h0);
    cr_assert_neq(rfs_xxh3(block, sizeof(block) - 1), h0);
}
