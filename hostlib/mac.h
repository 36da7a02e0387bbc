/* The MAC routers put on what they send each other: HMAC-SHA256 (RFC 2104)
 * keyed with the cluster secret, computed by libsodium. One function, so
 * the algorithm and the keying are decided in one place. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define FF_MAC_LEN 32 /* a MAC's length */

/* out = HMAC-SHA256(key, msg). Any key length: a key longer than SHA-256's
 * block is hashed first, as RFC 2104 says. */
void ff_mac(const void *key, size_t klen, const void *msg, size_t len,
	    uint8_t out[FF_MAC_LEN]);
