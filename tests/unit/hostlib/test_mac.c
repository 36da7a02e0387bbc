/* hostlib/mac.c, the routers' MAC, against RFC 4231's HMAC-SHA256 test
 * cases; and the SHA-256 it hashes long keys with (cluster secrets run to
 * 4096 bytes) against the FIPS 180-4 examples (NIST CSRC). */
#include "cu.h"
#include "mac.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void hex(const uint8_t *d, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* The hex of ff_mac(key, msg), truncated to want's length (test case 5). */
static void check_mac(const void *key, size_t klen, const void *msg, size_t mlen,
		      const char *want)
{
	uint8_t d[FF_MAC_LEN];
	char out[2 * FF_MAC_LEN + 1];

	ff_mac(key, klen, msg, mlen, d);
	hex(d, strlen(want) / 2, out);
	CU_ASSERT_STRING_EQUAL(out, want);
}

static void test_rfc4231(void)
{
	static const char big[] = "This is a test using a larger than block-size key and a larger "
				  "than block-size data. The key needs to be hashed before being "
				  "used by the HMAC algorithm.";
	uint8_t key[131], data[50];

	memset(key, 0x0b, 20);
	check_mac(key, 20, "Hi There", 8,
		  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	check_mac("Jefe", 4, "what do ya want for nothing?", 28,
		  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	memset(key, 0xaa, 20);
	memset(data, 0xdd, 50);
	check_mac(key, 20, data, 50,
		  "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
	for (int i = 0; i < 25; i++)
		key[i] = (uint8_t)(i + 1);
	memset(data, 0xcd, 50);
	check_mac(key, 25, data, 50,
		  "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
	memset(key, 0x0c, 20);
	check_mac(key, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b");
	/* test cases 6 and 7: a key longer than the block is hashed first */
	memset(key, 0xaa, sizeof(key));
	check_mac(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First", 54,
		  "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	check_mac(key, sizeof(key), big, strlen(big),
		  "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static void sha(const void *m, size_t len, char *out)
{
	uint8_t d[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(d, m, len);
	hex(d, sizeof(d), out);
}

static void test_fips180(void)
{
	static char million[1000000];
	char out[65];

	CU_ASSERT_FATAL(sodium_init() >= 0);
	sha("abc", 3, out);
	CU_ASSERT_STRING_EQUAL(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha("", 0, out);
	CU_ASSERT_STRING_EQUAL(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, out);
	CU_ASSERT_STRING_EQUAL(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	memset(million, 'a', sizeof(million));
	sha(million, sizeof(million), out);
	CU_ASSERT_STRING_EQUAL(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"rfc4231", test_rfc4231},
		{"fips180", test_fips180},
		{0},
	};

	return cu_run("mac", tests);
}
