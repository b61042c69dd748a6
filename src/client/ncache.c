/* ncache: see ncache.h for the contract and the invariants. */
#include "client/ncache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NCACHE_MIN 1024u

static size_t ino_slot(const struct ncache *c, uint64_t ino)
{
    return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 17) & (c->cap - 1);
}

/* FNV-1a over the name, mixed with the parent. */
static size_t name_slot(const struct ncache *c, uint64_t parent,
                        const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (parent * 0x9e3779b97f4a7c15ull);

    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return (size_t)(h ^ (h >> 29)) & (c->cap - 1);
}

int ncache_init(struct ncache *c)
{
    c->by_name = calloc(NCACHE_MIN, sizeof(*c->by_name));
    c->by_ino = calloc(NCACHE_MIN, sizeof(*c->by_ino));
    if (!c->by_name || !c->by_ino) {
        free(c->by_name);
        free(c->by_ino);
        c->by_name = c->by_ino = NULL;
        return -ENOMEM;
    }
    c->cap = NCACHE_MIN;
    c->count = 0;
    return 0;
}

void ncache_fini(struct ncache *c)
{
    for (size_t i = 0; c->by_name && i < c->cap; i++) {
        struct ncache_ent *e = c->by_name[i];

        while (e) {
            struct ncache_ent *next = e->next_name;

            free(e);
            e = next;
        }
    }
    free(c->by_name);
    free(c->by_ino);
    c->by_name = c->by_ino = NULL;
    c->cap = c->count = 0;
}

/* Rehash into cap buckets; on allocation failure keep the old ones (only
 * lookups get slower). */
static void resize(struct ncache *c, size_t cap)
{
    struct ncache_ent **nn = calloc(cap, sizeof(*nn));
    struct ncache_ent **ni = calloc(cap, sizeof(*ni));
    struct ncache_ent **on = c->by_name;
    size_t oldcap = c->cap;

    if (!nn || !ni) {
        free(nn);
        free(ni);
        return;
    }
    free(c->by_ino);
    c->by_name = nn;
    c->by_ino = ni;
    c->cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        struct ncache_ent *e = on[i];

        while (e) {
            struct ncache_ent *next = e->next_name;
            size_t sn = name_slot(c, e->parent, e->name);
            size_t si = ino_slot(c, e->ino);

            e->next_name = nn[sn];
            nn[sn] = e;
            e->next_ino = ni[si];
            ni[si] = e;
            e = next;
        }
    }
    free(on);
}

static struct ncache_ent *find_name(const struct ncache *c, uint64_t parent,
                                    const char *name)
{
    struct ncache_ent *e;

    if (!c->cap)
        return NULL;
    e = c->by_name[name_slot(c, parent, name)];
    while (e && (e->parent != parent || strcmp(e->name, name) != 0))
        e = e->next_name;
    return e;
}

static struct ncache_ent *find_ino(const struct ncache *c, uint64_t ino)
{
    struct ncache_ent *e;

    if (!c->cap)
        return NULL;
    e = c->by_ino[ino_slot(c, ino)];
    while (e && e->ino != ino)
        e = e->next_ino;
    return e;
}

static void remove_ent(struct ncache *c, struct ncache_ent *e)
{
    struct ncache_ent **pp = &c->by_name[name_slot(c, e->parent, e->name)];

    while (*pp != e)
        pp = &(*pp)->next_name;
    *pp = e->next_name;
    pp = &c->by_ino[ino_slot(c, e->ino)];
    while (*pp != e)
        pp = &(*pp)->next_ino;
    *pp = e->next_ino;
    free(e);
    c->count--;
    if (c->cap > NCACHE_MIN && c->count < c->cap / 8)
        resize(c, c->cap / 2);
}

void ncache_drop_name(struct ncache *c, uint64_t parent, const char *name)
{
    struct ncache_ent *e = find_name(c, parent, name);

    if (e)
        remove_ent(c, e);
}

void ncache_drop_ino(struct ncache *c, uint64_t ino)
{
    struct ncache_ent *e = find_ino(c, ino);

    if (e)
        remove_ent(c, e);
}

int ncache_put(struct ncache *c, uint64_t parent, const char *name,
               uint64_t ino, uint64_t epoch, const struct proto_attr *attr)
{
    size_t len = strlen(name);
    struct ncache_ent *e;
    size_t sn, si;

    ncache_drop_name(c, parent, name);
    ncache_drop_ino(c, ino);
    if (!c->cap)
        return -ENOMEM;
    e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return -ENOMEM;
    e->parent = parent;
    e->ino = ino;
    e->epoch = epoch;
    e->attr = *attr;
    memcpy(e->name, name, len + 1);
    if (c->count + 1 > c->cap)
        resize(c, c->cap * 2);
    sn = name_slot(c, parent, name);
    si = ino_slot(c, ino);
    e->next_name = c->by_name[sn];
    c->by_name[sn] = e;
    e->next_ino = c->by_ino[si];
    c->by_ino[si] = e;
    c->count++;
    return 0;
}

const struct ncache_ent *ncache_get(const struct ncache *c, uint64_t parent,
                                    const char *name)
{
    return find_name(c, parent, name);
}

const struct ncache_ent *ncache_get_ino(const struct ncache *c, uint64_t ino)
{
    return find_ino(c, ino);
}
