/* Handshake MACs (see HELLO in proto.h).  HMAC-SHA256 from libsodium; the
 * secret never crosses the wire. */
#ifndef RFS_COMMON_AUTH_H
#define RFS_COMMON_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "replicafs/proto.h"
#include "config.h"

/* Call once per process before anything else here (sodium_init). 0 or -EIO. */
int auth_init(void);
void auth_nonce(uint8_t nonce[PROTO_NONCE_SIZE]);
/* The brick's proof: HMAC(key, "rfs1-brick" | cnonce | bnonce | volume). */
void auth_brick_mac(const uint8_t key[RFS_KEY_SIZE], const uint8_t *cnonce,
                    const uint8_t *bnonce, const char *volume,
                    uint8_t mac[PROTO_MAC_SIZE]);
/* The client's proof: HMAC(key, "rfs1-client" | bnonce | cnonce | volume). */
void auth_client_mac(const uint8_t key[RFS_KEY_SIZE], const uint8_t *bnonce,
                     const uint8_t *cnonce, const char *volume,
                     uint8_t mac[PROTO_MAC_SIZE]);
/* Constant-time comparison. */
bool auth_mac_equal(const uint8_t *a, const uint8_t *b);

#endif
