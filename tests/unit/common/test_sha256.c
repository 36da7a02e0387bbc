/* common/sha256.c against the published test vectors: FIPS 180-4 examples
 * (NIST CSRC) and RFC 4231 for HMAC-SHA256. */
#include "cu.h"
#include "sha256.h"

#include <stdio.h>
#include <string.h>

static void hex(const uint8_t *d, char *out)
{
	for (int i = 0; i < FF_SHA256_LEN; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha(const void *m, size_t len, char *out)
{
	struct ff_sha256 s;
	uint8_t d[FF_SHA256_LEN];

	ff_sha256_init(&s);
	ff_sha256_update(&s, m, len);
	ff_sha256_final(&s, d);
	hex(d, out);
}

static void test_sha256(void)
{
	char out[65];
	static char million[1000000];
	struct ff_sha256 s;
	uint8_t d[FF_SHA256_LEN];

	sha("abc", 3, out);
	CU_ASSERT_STRING_EQUAL(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha("", 0, out);
	CU_ASSERT_STRING_EQUAL(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, out);
	CU_ASSERT_STRING_EQUAL(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	memset(million, 'a', sizeof(million));
	sha(million, sizeof(million), out);
	CU_ASSERT_STRING_EQUAL(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	/* fed in odd pieces, the same */
	ff_sha256_init(&s);
	for (size_t off = 0; off < sizeof(million);) {
		size_t n = (off % 97) + 1;

		if (n > sizeof(million) - off)
			n = sizeof(million) - off;
		ff_sha256_update(&s, million + off, n);
		off += n;
	}
	ff_sha256_final(&s, d);
	hex(d, out);
	CU_ASSERT_STRING_EQUAL(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_hmac(void)
{
	uint8_t key[131], d[FF_SHA256_LEN];
	char out[65];

	/* RFC 4231 test case 1 */
	memset(key, 0x0b, 20);
	ff_hmac_sha256(key, 20, "Hi There", 8, d);
	hex(d, out);
	CU_ASSERT_STRING_EQUAL(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	/* test case 2 */
	ff_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
	hex(d, out);
	CU_ASSERT_STRING_EQUAL(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* test case 6: a key longer than the block */
	memset(key, 0xaa, sizeof(key));
	ff_hmac_sha256(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First", 54,
		       d);
	hex(d, out);
	CU_ASSERT_STRING_EQUAL(out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	CU_ASSERT(ff_memeq_ct("abcd", "abcd", 4));
	CU_ASSERT(!ff_memeq_ct("abcd", "abce", 4));
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"sha256", test_sha256},
		{"hmac", test_hmac},
		{0},
	};

	return cu_run("sha256", tests);
}
