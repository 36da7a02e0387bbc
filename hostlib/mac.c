/* ff_mac on libsodium's multi-part HMAC-SHA256 (it takes keys of any
 * length), and ff_kdf: the keys routers MAC with, one per purpose, from
 * the cluster secret (whatever the operator wrote, 16 to 4096 bytes). */
#include "mac.h"

#include <pthread.h>
#include <sodium.h>

_Static_assert(FF_MAC_LEN == crypto_auth_hmacsha256_BYTES, "MAC length");
_Static_assert(FF_KEY_LEN == crypto_kdf_KEYBYTES, "key length");

#define KDF_DOMAIN "ffnet cluster secret"
#define KDF_CONTEXT "ffnet-xh" /* crypto_kdf_CONTEXTBYTES characters */

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

void ff_kdf(const void *secret, size_t len, uint64_t id, uint8_t key[FF_KEY_LEN])
{
	crypto_generichash_state st;
	uint8_t master[crypto_kdf_KEYBYTES];

	pthread_once(&once, init);
	crypto_generichash_init(&st, NULL, 0, sizeof(master));
	crypto_generichash_update(&st, (const uint8_t *)KDF_DOMAIN, sizeof(KDF_DOMAIN) - 1);
	crypto_generichash_update(&st, secret, len);
	crypto_generichash_final(&st, master, sizeof(master));
	crypto_kdf_derive_from_key(key, FF_KEY_LEN, id, KDF_CONTEXT, master);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(master, sizeof(master));
}
