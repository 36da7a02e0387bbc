/* Seqlock over a sorted array. Readers copy what they compare and retry when
 * the sequence moved; the writer bumps seq to odd, writes, bumps to even.
 * The reader (the shim) trusts nothing on the page beyond its magic: every
 * index is bounded by FF_MAP_CAP, the size every reader maps, never by the
 * page's cap or count; retries are bounded too. A page with any content
 * answers found, not found, -EAGAIN or -EINVAL, in bounded time. */
#include "map.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define FIND_TRIES 1000 /* a page whose seq never settles: give up */

void ff_map_init(struct ff_map_hdr *m)
{
	m->magic = FF_MAP_MAGIC;
	m->cap = FF_MAP_CAP;
	__atomic_store_n(&m->seq, 0, __ATOMIC_RELEASE);
	m->count = 0;
}

void ff_map_ent_set(struct ff_map_ent *e, const struct ff_ip *ip, uint8_t flags)
{
	memset(e, 0, sizeof(*e));
	e->family = ip->family;
	e->flags = flags;
	memcpy(e->ip, ip->ip, 16);
}

static int ent_cmp(const void *a, const void *b)
{
	const struct ff_map_ent *x = a, *y = b;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return memcmp(x->ip, y->ip, 16);
}

int ff_map_write(struct ff_map_hdr *m, struct ff_map_ent *ents, uint32_t n)
{
	uint32_t seq = __atomic_load_n(&m->seq, __ATOMIC_RELAXED);

	if (n > FF_MAP_CAP)
		return -E2BIG;
	qsort(ents, n, sizeof(*ents), ent_cmp);
	__atomic_store_n(&m->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(m->ent, ents, n * sizeof(*ents));
	__atomic_store_n(&m->count, n, __ATOMIC_RELAXED);
	m->generation++;
	__atomic_store_n(&m->seq, seq + 2, __ATOMIC_RELEASE);
	return 0;
}

static int find_once(const struct ff_map_hdr *m, const struct ff_map_ent *key, uint8_t *flags)
{
	uint32_t lo = 0, hi = __atomic_load_n(&m->count, __ATOMIC_RELAXED);

	if (hi > FF_MAP_CAP) /* m->cap is on the page too: not a bound */
		return 0;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		struct ff_map_ent e;
		int c;

		memcpy(&e, &m->ent[mid], sizeof(e));
		c = ent_cmp(key, &e);
		if (!c) {
			*flags = e.flags;
			return 1;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

int ff_map_find(const struct ff_map_hdr *m, const struct ff_ip *ip, uint8_t *flags)
{
	struct ff_map_ent key;

	if (m->magic != FF_MAP_MAGIC)
		return -EINVAL;
	ff_map_ent_set(&key, ip, 0);
	for (int tries = 0; tries < FIND_TRIES; tries++) {
		uint32_t s1 = __atomic_load_n(&m->seq, __ATOMIC_ACQUIRE);
		uint8_t f = 0;
		int r;

		if (s1 & 1) {
			sched_yield();
			continue;
		}
		r = find_once(m, &key, &f);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&m->seq, __ATOMIC_RELAXED) != s1)
			continue;
		if (r)
			*flags = f;
		return r;
	}
	return -EAGAIN;
}
