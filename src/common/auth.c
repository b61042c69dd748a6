/*
 * Handshake MACs (proto.h, HELLO).  Both proofs are HMAC-SHA256 under the
 * volume key over a fixed domain string, both nonces and the volume name:
 *   brick:  "rfs1-brick"  | client_nonce | brick_nonce  | volume
 *   client: "rfs1-client" | brick_nonce  | client_nonce | volume
 * The domain strings differ in their first bytes, so neither side can be
 * tricked into computing the other side's proof (reflection); the nonces of
 * both sides make every proof fresh; the volume name binds the proof to one
 * volume when two volumes share a key file.  The volume is last and is the
 * only variable-length part, so the concatenation is unambiguous.
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "auth.h"

_Static_assert(RFS_KEY_SIZE == crypto_auth_hmacsha256_KEYBYTES, "key size");
_Static_assert(PROTO_MAC_SIZE == crypto_auth_hmacsha256_BYTES, "mac size");

int auth_init(void)
{
    return sodium_init() < 0 ? -EIO : 0; /* 1 = already done: fine */
}

void auth_nonce(uint8_t nonce[PROTO_NONCE_SIZE])
{
    randombytes_buf(nonce, PROTO_NONCE_SIZE);
}

static void mac(const uint8_t key[RFS_KEY_SIZE], const char *domain,
                const uint8_t *first, const uint8_t *second, const char *volume,
                uint8_t out[PROTO_MAC_SIZE])
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, key, RFS_KEY_SIZE);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)domain, strlen(domain));
    crypto_auth_hmacsha256_update(&st, first, PROTO_NONCE_SIZE);
    crypto_auth_hmacsha256_update(&st, second, PROTO_NONCE_SIZE);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)volume, strlen(volume));
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st)); /* the state holds key-derived pads */
}

void auth_brick_mac(const uint8_t key[RFS_KEY_SIZE], const uint8_t *cnonce,
                    const uint8_t *bnonce, const char *volume,
                    uint8_t out[PROTO_MAC_SIZE])
{
    mac(key, "rfs1-brick", cnonce, bnonce, volume, out);
}

void auth_client_mac(const uint8_t key[RFS_KEY_SIZE], const uint8_t *bnonce,
                     const uint8_t *cnonce, const char *volume,
                     uint8_t out[PROTO_MAC_SIZE])
{
    mac(key, "rfs1-client", bnonce, cnonce, volume, out);
}

bool auth_mac_equal(const uint8_t *a, const uint8_t *b)
{
    /* constant time: a byte-wise early exit would leak the MAC's prefix */
    return sodium_memcmp(a, b, PROTO_MAC_SIZE) == 0;
}
