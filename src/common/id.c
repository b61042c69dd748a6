/* Object ids: see id.h.  The hex form is hi then lo, most significant digit
 * first, so the root id (0, 1) reads 000...0001 and the heal index and id
 * directories sort the same way as the numbers. */
#include <errno.h>
#include <sodium.h>

#include "id.h"

void rfs_id_random(struct rfs_id *id)
{
    /* 2^-128 odds, but the reserved values must never be handed out. */
    do {
        randombytes_buf(id, sizeof(*id));
    } while (rfs_id_is_zero(id) || rfs_id_is_root(id));
}

bool rfs_id_eq(const struct rfs_id *a, const struct rfs_id *b)
{
    return a->hi == b->hi && a->lo == b->lo;
}

bool rfs_id_is_root(const struct rfs_id *id)
{
    return id->hi == 0 && id->lo == 1;
}

bool rfs_id_is_zero(const struct rfs_id *id)
{
    return id->hi == 0 && id->lo == 0;
}

void rfs_id_to_hex(const struct rfs_id *id, char out[RFS_ID_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < 16; i++) {
        out[i] = digits[(id->hi >> (60 - 4 * i)) & 0xf];
        out[16 + i] = digits[(id->lo >> (60 - 4 * i)) & 0xf];
    }
    out[RFS_ID_HEX_LEN] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int rfs_id_from_hex(const char *hex, struct rfs_id *id)
{
    uint64_t v[2] = {0, 0};

    for (int i = 0; i < RFS_ID_HEX_LEN; i++) {
        int d = hexval(hex[i]); /* stops at the NUL of a short string */
        if (d < 0)
            return -EINVAL;
        v[i / 16] = v[i / 16] << 4 | (uint64_t)d;
    }
    if (hex[RFS_ID_HEX_LEN] != '\0')
        return -EINVAL;
    id->hi = v[0];
    id->lo = v[1];
    return 0;
}

/* splitmix64's finalizer over both halves: ids are random already, but the
 * root and test ids are not, and callers mask the low bits for buckets. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t rfs_id_hash(const struct rfs_id *id)
{
    return mix(id->hi ^ mix(id->lo + 0x9e3779b97f4a7c15ull));
}
