/* hash.c - a fast streaming 64-bit hash and a deterministic byte generator.
 *
 * The hash runs four independent multiply-rotate lanes over 8-byte
 * little-endian words (32-byte blocks) and folds them with the total length
 * through a splitmix64-style finalizer. Not cryptographic; it only has to make
 * a corrupted, reordered or truncated stream show. The result depends only on
 * the bytes, never on how updates were split.
 *
 * The generator is splitmix64; streams are identical however they are chunked
 * as long as every chunk but the last is a multiple of 8 bytes.
 */
#include <endian.h>
#include <string.h>

#include "ffconform.h"

#define K1 0x9e3779b97f4a7c15ULL
#define K2 0xc2b2ae3d27d4eb4fULL
#define K3 0xbf58476d1ce4e5b9ULL
#define K4 0x94d049bb133111ebULL

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t round64(uint64_t acc, uint64_t w)
{
	return rotl(acc ^ (w * K1), 31) * K2;
}

static inline uint64_t fmix(uint64_t z)
{
	z = (z ^ (z >> 30)) * K3;
	z = (z ^ (z >> 27)) * K4;
	return z ^ (z >> 31);
}

void ffc_hash_init(struct ffc_hash *h)
{
	memset(h, 0, sizeof(*h));
	h->v[0] = K1;
	h->v[1] = K2;
	h->v[2] = K3;
	h->v[3] = K4;
}

static void blocks(struct ffc_hash *h, const uint8_t *p, size_t nblocks)
{
	uint64_t a = h->v[0], b = h->v[1], c = h->v[2], d = h->v[3];

	for (size_t i = 0; i < nblocks; i++, p += 32) {
		a = round64(a, rd64(p));
		b = round64(b, rd64(p + 8));
		c = round64(c, rd64(p + 16));
		d = round64(d, rd64(p + 24));
	}
	h->v[0] = a;
	h->v[1] = b;
	h->v[2] = c;
	h->v[3] = d;
}

void ffc_hash_update(struct ffc_hash *h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	h->len += len;
	if (h->ntail) {
		size_t take = 32 - h->ntail < len ? 32 - h->ntail : len;

		memcpy(h->tail + h->ntail, p, take);
		h->ntail += take;
		p += take;
		len -= take;
		if (h->ntail < 32)
			return;
		blocks(h, h->tail, 1);
		h->ntail = 0;
	}
	blocks(h, p, len / 32);
	p += len / 32 * 32;
	len %= 32;
	memcpy(h->tail, p, len);
	h->ntail = len;
}

uint64_t ffc_hash_final(const struct ffc_hash *h)
{
	uint8_t last[32] = {0};
	uint64_t z = h->len * K1;

	memcpy(last, h->tail, h->ntail);
	for (int i = 0; i < 4; i++) {
		uint64_t lane = h->v[i];

		if (h->ntail)
			lane = round64(lane, rd64(last + 8 * i));
		z = fmix(z ^ rotl(lane, 8 * i + 1));
	}
	return z;
}

uint64_t ffc_hash_buf(const void *buf, size_t len)
{
	struct ffc_hash h;

	ffc_hash_init(&h);
	ffc_hash_update(&h, buf, len);
	return ffc_hash_final(&h);
}

void ffc_rand_fill(uint64_t *state, void *buf, size_t len)
{
	uint8_t *p = buf;
	uint64_t s = *state;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t z = fmix(s += K1);

		memcpy(p, &z, 8);
	}
	if (len) {
		uint64_t z = fmix(s += K1);

		memcpy(p, &z, len);
	}
	*state = s;
}
