/* heal_decide(): sources, sinks and split-brain from marker vectors. */
#include <criterion/criterion.h>
#include <string.h>

#include "client/heal.h"

#define B(n) (1u << ((n) - 1)) /* 1-based brick bit */

static struct heal_marks marks3(uint32_t present)
{
    struct heal_marks m;

    memset(&m, 0, sizeof(m));
    m.n = 3;
    m.present = present;
    return m;
}

/* pending counter on brick `on` (1-based) for brick `x` (1-based) */
static void blame(struct heal_marks *m, unsigned on, unsigned x, int64_t c)
{
    m->pend[on - 1][x - 1] = c;
}

Test(heal_decide, all_clean)
{
    struct heal_marks m = marks3(B(1) | B(2) | B(3));
    struct heal_verdict v;

    heal_decide(&m, &v);
    cr_assert_eq(v.sources, B(1) | B(2) | B(3));
    cr_assert_eq(v.sinks, 0);
    cr_assert_eq(v.blamed, 0);
    cr_assert(!v.split_brain);
    cr_assert(!v.dirty);
}

Test(heal_decide, one_brick_missed_changes)
{
    struct heal_marks m = marks3(B(1) | B(2) | B(3));
    struct heal_verdict v;

    blame(&m, 1, 3, 4);
    blame(&m, 2, 3, 4);
    heal_decide(&m, &v);
    cr_assert_eq(v.sources, B(1) | B(2));
    cr_assert_eq(v.sinks, B(3));
    cr_assert(!v.split_brain);
}

Test(heal_decide, one_accuser_is_enough)
{
    struct heal_marks m = marks3(B(1) | B(2) | B(3));
    struct heal_verdict v;

    blame(&m, 2, 1, 1);
    heal_decide(&m, &v);
    cr_assert_eq(v.sinks, B(1));
    cr_assert_eq(v.sources, B(2) | B(3));
}

Test(heal_decide, mutual_blame_is_split_brain)
{
    struct heal_marks m = marks3(B(1) | B(2));
    struct heal_verdict v;

    blame(&m, 1, 2, 1);
    blame(&m, 2, 1, 3);
    heal_decide(&m, &v);
    cr_assert(v.split_brain);
    cr_assert_eq(v.sources, 0);
    cr_assert_eq(v.sinks, B(1) | B(2));
}

Test(heal_decide, mutual_blame_with_a_clean_third_is_not_split_brain)
{
    struct heal_marks m = marks3(B(1) | B(2) | B(3));
    struct heal_verdict v;

    blame(&m, 1, 3, 1); /* 3 missed a change while down */
    blame(&m, 3, 1, 1); /* later 1 missed one that 3 and 2 got */
    blame(&m, 2, 1, 1);
    blame(&m, 2, 3, 1);
    heal_decide(&m, &v);
    cr_assert(!v.split_brain);
    cr_assert_eq(v.sources, B(2));
    cr_assert_eq(v.sinks, B(1) | B(3));
}

Test(heal_decide, cycle_is_split_brain)
{
    struct heal_marks m = marks3(B(1) | B(2) | B(3));
    struct heal_verdict v;

    blame(&m, 1, 2, 1);
    blame(&m, 2, 3, 1);
    blame(&m, 3, 1, 1);
    heal_decide(&m, &v);
    cr_assert(v.split_brain);
    cr_assert_eq(v.sources, 0);
}

Test(heal_decide, absent_bricks_neither_accuse_nor_heal)
{
    struct heal_marks m = marks3(B(1) | B(2));
    struct heal_verdict v;

    blame(&m, 3, 1, 5); /* brick 3 is down: its counters are not read */
    blame(&m, 1, 3, 2);
    heal_decide(&m, &v);
    cr_assert_eq(v.blamed, B(3));
    cr_assert_eq(v.sources, B(1) | B(2));
    cr_assert_eq(v.sinks, 0); /* 3 is blamed but not present */
    cr_assert(!v.split_brain);
}

Test(heal_decide, self_blame_and_negative_counts_are_ignored)
{
    struct heal_marks m = marks3(B(1) | B(2) | B(3));
    struct heal_verdict v;

    blame(&m, 1, 1, 7);
    blame(&m, 2, 3, -1);
    heal_decide(&m, &v);
    cr_assert_eq(v.blamed, 0);
    cr_assert_eq(v.sources, B(1) | B(2) | B(3));
}

Test(heal_decide, dirty_only_has_no_sink)
{
    struct heal_marks m = marks3(B(1) | B(2) | B(3));
    struct heal_verdict v;

    m.dirty[1] = 1;
    heal_decide(&m, &v);
    cr_assert(v.dirty);
    cr_assert_eq(v.sinks, 0);
    cr_assert(!v.split_brain);
}

Test(heal_decide, sixteen_bricks)
{
    struct heal_marks m;
    struct heal_verdict v;

    memset(&m, 0, sizeof(m));
    m.n = 16;
    m.present = 0xffff;
    m.pend[0][15] = 1;
    heal_decide(&m, &v);
    cr_assert_eq(v.sinks, 1u << 15);
    cr_assert_eq(v.sources, 0x7fff);
}

/* ---- heal_largest_group: heal's and the lookup vote's tie rule ---- */

static bool key_same(const void *arg, unsigned a, unsigned b)
{
    const int *key = arg;

    return key[a] == key[b];
}

Test(heal_largest_group, the_larger_group_wins_even_against_clean_copies)
{
    int key[5] = {7, 7, 9, 9, 9}; /* bricks 1-2 hold 7, bricks 3-5 hold 9 */

    cr_assert_eq(heal_largest_group(5, 0x1f, B(1) | B(2), key_same, key),
                 B(3) | B(4) | B(5));
}

Test(heal_largest_group, a_tie_goes_to_a_clean_copy_then_to_the_lowest_brick)
{
    int key[3] = {1, 2, 3};
    int two[4] = {5, 6, 6, 5};

    cr_assert_eq(heal_largest_group(3, 0x7, B(3), key_same, key), B(3));
    cr_assert_eq(heal_largest_group(3, 0x7, 0, key_same, key), B(1));
    /* {1,4} and {2,3}: the lowest brick's, unless the other is clean. */
    cr_assert_eq(heal_largest_group(4, 0xf, 0, key_same, two), B(1) | B(4));
    cr_assert_eq(heal_largest_group(4, 0xf, B(3), key_same, two),
                 B(2) | B(3));
}

Test(heal_largest_group, only_bricks_of_the_mask_count)
{
    int key[3] = {4, 4, 8};

    cr_assert_eq(heal_largest_group(3, B(2) | B(3), B(3), key_same, key),
                 B(3));
    cr_assert_eq(heal_largest_group(3, 0, 0, key_same, key), 0u);
}
