/*
 * Heal decision: sources, sinks and split-brain from the markers of one
 * object on every brick that has it (heal.h, docs/heal.md).
 *
 * Invariants:
 *  1. A brick is a source only if no present brick blames it: data never
 *     flows from a copy somebody knows to be stale.
 *  2. Blame by a brick that is absent (down, or lacking the object) is not
 *     seen here; the caller keeps those counters, so it is not lost.
 *  3. Split-brain is "blame and no clean copy": mutual blame between two
 *     sinks is not split-brain when a third, clean brick exists.
 */
#include "heal.h"

void heal_decide(const struct heal_marks *m, struct heal_verdict *v)
{
    uint32_t blamed = 0;
    bool dirty = false;

    for (unsigned b = 0; b < m->n && b < PROTO_MAX_BRICKS; b++) {
        if (!(m->present & (1u << b)))
            continue;
        dirty |= m->dirty[b] != 0;
        for (unsigned x = 0; x < m->n && x < PROTO_MAX_BRICKS; x++)
            if (x != b && m->pend[b][x] > 0)
                blamed |= 1u << x;
    }
    v->blamed = blamed;
    v->sources = m->present & ~blamed;
    v->sinks = m->present & blamed;
    v->split_brain = v->sinks != 0 && v->sources == 0; /* invariant 3 */
    v->dirty = dirty;
}

uint32_t heal_largest_group(unsigned n, uint32_t mask, uint32_t prefer,
                            bool (*same)(const void *arg, unsigned a,
                                         unsigned b),
                            const void *arg)
{
    uint32_t best = 0;
    int best_score = -1;

    for (unsigned b = 0; b < n && b < PROTO_MAX_BRICKS; b++) {
        uint32_t group = 0;
        int score;

        if (!(mask & (1u << b)))
            continue;
        for (unsigned x = 0; x < n && x < PROTO_MAX_BRICKS; x++)
            if ((mask & (1u << x)) && same(arg, x, b))
                group |= 1u << x;
        /* Size first; a preferred brick only breaks a tie. */
        score = 2 * __builtin_popcount(group) + ((group & prefer) != 0);
        if (score > best_score) {
            best = group;
            best_score = score;
        }
    }
    return best;
}
