/*
 * inotab: see inotab.h for the contract and the invariants.  Two chained
 * hash tables share their entries; both grow and shrink with the count.
 */
#include "client/inotab.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/id.h"

#define INOTAB_MIN 1024u

static size_t ino_slot(const struct inotab *t, uint64_t ino)
{
    return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 17) & (t->cap - 1);
}

static size_t id_slot(const struct inotab *t, const struct rfs_id *id)
{
    return (size_t)rfs_id_hash(id) & (t->cap - 1);
}

int inotab_init(struct inotab *t)
{
    t->by_ino = calloc(INOTAB_MIN, sizeof(*t->by_ino));
    t->by_id = calloc(INOTAB_MIN, sizeof(*t->by_id));
    if (!t->by_ino || !t->by_id) {
        free(t->by_ino);
        free(t->by_id);
        t->by_ino = t->by_id = NULL;
        return -ENOMEM;
    }
    t->cap = INOTAB_MIN;
    t->count = 0;
    t->next_ino = INOTAB_ROOT_INO + 1;
    return 0;
}

void inotab_fini(struct inotab *t, void (*free_data)(void *data))
{
    for (size_t i = 0; t->by_ino && i < t->cap; i++) {
        struct inotab_ent *e = t->by_ino[i];

        while (e) {
            struct inotab_ent *next = e->next_ino;

            if (free_data)
                free_data(e->data);
            free(e);
            e = next;
        }
    }
    free(t->by_ino);
    free(t->by_id);
    t->by_ino = t->by_id = NULL;
    t->cap = t->count = 0;
}

/* Rehash into cap buckets; on allocation failure keep the old ones (only
 * lookups get slower). */
static void resize(struct inotab *t, size_t cap)
{
    struct inotab_ent **ni = calloc(cap, sizeof(*ni));
    struct inotab_ent **nd = calloc(cap, sizeof(*nd));
    struct inotab_ent **oi = t->by_ino;
    size_t oldcap = t->cap;

    if (!ni || !nd) {
        free(ni);
        free(nd);
        return;
    }
    free(t->by_id);
    t->by_ino = ni;
    t->by_id = nd;
    t->cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        struct inotab_ent *e = oi[i];

        while (e) {
            struct inotab_ent *next = e->next_ino;
            size_t si = ino_slot(t, e->ino), sd = id_slot(t, &e->id);

            e->next_ino = ni[si];
            ni[si] = e;
            e->next_id = nd[sd];
            nd[sd] = e;
            e = next;
        }
    }
    free(oi);
}

struct inotab_ent *inotab_by_ino(const struct inotab *t, uint64_t ino)
{
    struct inotab_ent *e;

    if (!t->cap) /* finished: late callbacks find nothing */
        return NULL;
    e = t->by_ino[ino_slot(t, ino)];

    while (e && e->ino != ino)
        e = e->next_ino;
    return e;
}

struct inotab_ent *inotab_by_id(const struct inotab *t,
                                const struct rfs_id *id)
{
    struct inotab_ent *e;

    if (!t->cap)
        return NULL;
    e = t->by_id[id_slot(t, id)];

    while (e && !rfs_id_eq(&e->id, id))
        e = e->next_id;
    return e;
}

int inotab_add(struct inotab *t, const struct rfs_id *id, void *data,
               struct inotab_ent **out)
{
    struct inotab_ent *e = calloc(1, sizeof(*e));
    size_t si, sd;

    if (!e)
        return -ENOMEM;
    e->id = *id;
    e->ino = rfs_id_is_root(id) ? INOTAB_ROOT_INO : t->next_ino++;
    e->data = data;
    if (t->count + 1 > t->cap)
        resize(t, t->cap * 2);
    si = ino_slot(t, e->ino);
    sd = id_slot(t, id);
    e->next_ino = t->by_ino[si];
    t->by_ino[si] = e;
    e->next_id = t->by_id[sd];
    t->by_id[sd] = e;
    t->count++;
    *out = e;
    return 0;
}

static void unlink_ent(struct inotab *t, struct inotab_ent *e)
{
    struct inotab_ent **pp = &t->by_ino[ino_slot(t, e->ino)];

    while (*pp != e)
        pp = &(*pp)->next_ino;
    *pp = e->next_ino;
    pp = &t->by_id[id_slot(t, &e->id)];
    while (*pp != e)
        pp = &(*pp)->next_id;
    *pp = e->next_id;
    t->count--;
}

void *inotab_forget(struct inotab *t, struct inotab_ent *e, uint64_t n)
{
    void *data;

    e->nlookup = n > e->nlookup ? 0 : e->nlookup - n;
    if (e->nlookup > 0 || e->ino == INOTAB_ROOT_INO)
        return NULL;
    data = e->data;
    unlink_ent(t, e);
    free(e);
    if (t->cap > INOTAB_MIN && t->count < t->cap / 8)
        resize(t, t->cap / 2);
    return data;
}
