/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for authenticating
 * routers to each other with a shared cluster secret. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define FF_SHA256_LEN 32

struct ff_sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed so far */
	uint8_t buf[64];
	size_t nbuf;
};

void ff_sha256_init(struct ff_sha256 *s);
void ff_sha256_update(struct ff_sha256 *s, const void *data, size_t len);
void ff_sha256_final(struct ff_sha256 *s, uint8_t out[FF_SHA256_LEN]);

void ff_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
		    uint8_t out[FF_SHA256_LEN]);
/* Constant-time comparison; 1 if equal. */
int ff_memeq_ct(const void *a, const void *b, size_t len);
