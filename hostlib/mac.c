/* ff_mac on libsodium's multi-part HMAC-SHA256: its one-shot
 * crypto_auth_hmacsha256 takes only 32-byte keys, and the cluster secret
 * is whatever the operator wrote (16 to 4096 bytes). */
#include "mac.h"

#include <pthread.h>
#include <sodium.h>

_Static_assert(FF_MAC_LEN == crypto_auth_hmacsha256_BYTES, "MAC length");

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	if (sodium_init() < 0)
		return; /* only a mutex error; HMAC-SHA256 works without it (it
			 * has no CPU-specific implementation to choose) */
}

void ff_mac(const void *key, size_t klen, const void *msg, size_t len,
	    uint8_t out[FF_MAC_LEN])
{
	crypto_auth_hmacsha256_state st;

	pthread_once(&once, init);
	crypto_auth_hmacsha256_init(&st, key, klen);
	crypto_auth_hmacsha256_update(&st, msg, len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}
