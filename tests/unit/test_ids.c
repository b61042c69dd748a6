/* Pure helpers of the id cache: ids/ paths, dir link text, xattr form. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "daemon/ids.h"

Test(ids, path_is_two_hex_digits_then_the_id)
{
    struct rfs_id id = {0xab00000000000001ull, 2};
    char p[IDS_PATH_LEN];

    ids_path(&id, p);
    cr_assert_str_eq(p, "ab/ab000000000000010000000000000002");
}

Test(ids, dirlink_round_trips)
{
    struct rfs_id parent = {0x0123456789abcdefull, 0x1}, got;
    char text[PROTO_PATH_MAX], name[PROTO_NAME_MAX + 1];

    ids_format_dirlink(&parent, "my dir", text);
    cr_assert_eq(ids_parse_dirlink(text, strlen(text), &got, name), 0);
    cr_assert_eq(got.hi, parent.hi);
    cr_assert_eq(got.lo, parent.lo);
    cr_assert_str_eq(name, "my dir");
}

Test(ids, dirlink_rejects_malformed_text)
{
    struct rfs_id got = {9, 9};
    char name[PROTO_NAME_MAX + 1];
    const char *bad[] = {"", "0123/x", "0123456789abcdef0000000000000001",
                         "0123456789abcdef0000000000000001/",
                         "0123456789abcdef0000000000000001/a/b",
                         "0123456789abcdef0000000000000001/..",
                         "0123456789abcdefg000000000000001/x",
                         "0123456789abcdef0000000000000001x/x"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(ids_parse_dirlink(bad[i], strlen(bad[i]), &got, name),
                     -EINVAL, "case %zu: %s", i, bad[i]);
    cr_assert_eq(got.hi, 9, "untouched on failure");
}

Test(ids, xattr_encoding_is_hi_le_then_lo_le)
{
    struct rfs_id id = {0x0102030405060708ull, 0x1112131415161718ull}, back;
    uint8_t b[16];

    ids_id_encode(&id, b);
    cr_assert_eq(b[0], 0x08);
    cr_assert_eq(b[7], 0x01);
    cr_assert_eq(b[8], 0x18);
    ids_id_decode(b, &back);
    cr_assert_eq(back.hi, id.hi);
    cr_assert_eq(back.lo, id.lo);
}
