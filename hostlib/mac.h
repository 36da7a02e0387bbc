/* The MAC routers put on what they send each other: HMAC-SHA256 (RFC 2104)
 * computed by libsodium, keyed with a key derived from the cluster secret
 * for one purpose (ff_kdf), never with the secret itself. One place decides
 * the algorithms and the keying. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define FF_MAC_LEN 32 /* a MAC's length */
#define FF_KEY_LEN 32 /* a derived key's length */

/* out = HMAC-SHA256(key, msg). Any key length: a key longer than SHA-256's
 * block is hashed first, as RFC 2104 says. */
void ff_mac(const void *key, size_t klen, const void *msg, size_t len,
	    uint8_t out[FF_MAC_LEN]);

/* The key for purpose id (> 0) from a secret of any length:
 *   master = BLAKE2b-256("ffnet cluster secret" || secret)
 *   key    = crypto_kdf_derive_from_key(id, context "ffnet-xh", master)
 * Keys of different ids are independent: a MAC made with one proves
 * nothing under another. Wipes its intermediate state. */
void ff_kdf(const void *secret, size_t len, uint64_t id, uint8_t key[FF_KEY_LEN]);
