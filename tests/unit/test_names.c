/* proto_name_check(): the one rule for path components, shared by the codec,
 * the brick and the client. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "replicafs/proto.h"

static int chk(const char *s)
{
    return proto_name_check(s, strlen(s));
}

Test(names, ordinary_names_pass)
{
    cr_assert_eq(chk("a"), 0);
    cr_assert_eq(chk("photo.jpg"), 0);
    cr_assert_eq(chk("resize_cache"), 0);
    cr_assert_eq(chk("with space"), 0);
    cr_assert_eq(chk("\xd1\x84\xd0\xb0\xd0\xb9\xd0\xbb"), 0); /* UTF-8 */
    cr_assert_eq(chk("-"), 0);
    cr_assert_eq(chk("\\"), 0);
}

Test(names, dots_only_exactly_dot_and_dotdot_are_refused)
{
    cr_assert_eq(chk("."), -EINVAL);
    cr_assert_eq(chk(".."), -EINVAL);
    cr_assert_eq(chk("..."), 0);
    cr_assert_eq(chk(".a"), 0);
    cr_assert_eq(chk("a."), 0);
    cr_assert_eq(chk("..a"), 0);
    cr_assert_eq(chk(".htaccess"), 0);
    /* hidden from clients by the brick, but a valid name for the codec */
    cr_assert_eq(chk(".replicafs"), 0);
}

Test(names, empty_and_slashes_are_refused)
{
    cr_assert_eq(chk(""), -EINVAL);
    cr_assert_eq(chk("/"), -EINVAL);
    cr_assert_eq(chk("a/b"), -EINVAL);
    cr_assert_eq(chk("/a"), -EINVAL);
    cr_assert_eq(chk("a/"), -EINVAL);
    cr_assert_eq(chk("../etc"), -EINVAL);
    cr_assert_eq(proto_name_check(NULL, 0), -EINVAL);
    cr_assert_eq(proto_name_check(NULL, 3), -EINVAL);
}

Test(names, embedded_nul_is_refused)
{
    cr_assert_eq(proto_name_check("a\0b", 3), -EINVAL);
    cr_assert_eq(proto_name_check("\0", 1), -EINVAL);
    cr_assert_eq(proto_name_check("ab\0", 3), -EINVAL);
}

Test(names, length_limit_is_255_bytes)
{
    char n[300];

    memset(n, 'x', sizeof(n));
    cr_assert_eq(proto_name_check(n, 1), 0);
    cr_assert_eq(proto_name_check(n, PROTO_NAME_MAX), 0);
    cr_assert_eq(proto_name_check(n, PROTO_NAME_MAX + 1), -EINVAL);
    cr_assert_eq(proto_name_check(n, sizeof(n)), -EINVAL);
}

Test(names, only_len_bytes_are_looked_at)
{
    /* no NUL needed: the rule applies to the first len bytes */
    cr_assert_eq(proto_name_check("ab/cd", 2), 0);
    cr_assert_eq(proto_name_check("ab/cd", 3), -EINVAL);
    cr_assert_eq(proto_name_check("..x", 2), -EINVAL);
    cr_assert_eq(proto_name_check("..x", 1), -EINVAL);
    cr_assert_eq(proto_name_check("..x", 3), 0);
}
