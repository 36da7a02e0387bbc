/* common/map.c: the seqlocked overlay map page, and a reader that no page
 * content can crash or hang (the shim reads a page it cannot trust to be
 * the router's work). */
#include "cu.h"
#include "map.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static struct ff_map_hdr *page(void)
{
	struct ff_map_hdr *m = calloc(1, FF_MAP_SIZE);

	ff_map_init(m);
	return m;
}

static void test_find(void)
{
	struct ff_map_hdr *m = page();
	struct ff_map_ent e[3];
	struct ff_ip a, b, c, d;
	uint8_t flags = 0;

	ff_ip_parse("10.0.0.3", &a);
	ff_ip_parse("10.0.0.1", &b);
	ff_ip_parse("fd00::1", &c);
	ff_ip_parse("10.0.0.2", &d);
	ff_map_ent_set(&e[0], &a, FF_MAPF_LOCAL);
	ff_map_ent_set(&e[1], &b, 0);
	ff_map_ent_set(&e[2], &c, FF_MAPF_LOCAL);
	CU_ASSERT_EQUAL(ff_map_write(m, e, 3), 0);
	CU_ASSERT_EQUAL(ff_map_find(m, &a, &flags), 1);
	CU_ASSERT_EQUAL(flags, FF_MAPF_LOCAL);
	CU_ASSERT_EQUAL(ff_map_find(m, &b, &flags), 1);
	CU_ASSERT_EQUAL(flags, 0);
	CU_ASSERT_EQUAL(ff_map_find(m, &c, &flags), 1);
	CU_ASSERT_EQUAL(ff_map_find(m, &d, &flags), 0);
	CU_ASSERT_EQUAL(m->seq % 2, 0);
	/* empty map */
	CU_ASSERT_EQUAL(ff_map_write(m, e, 0), 0);
	CU_ASSERT_EQUAL(ff_map_find(m, &a, &flags), 0);
	free(m);
}

static void test_bad_page(void)
{
	struct ff_map_hdr *m = page();
	struct ff_ip a;
	uint8_t flags;

	ff_ip_parse("10.0.0.3", &a);
	m->magic = 0;
	CU_ASSERT_EQUAL(ff_map_find(m, &a, &flags), -EINVAL);
	/* a count beyond the capacity is not trusted */
	m->magic = FF_MAP_MAGIC;
	m->count = FF_MAP_CAP + 10;
	CU_ASSERT_EQUAL(ff_map_find(m, &a, &flags), 0);
	CU_ASSERT_EQUAL(ff_map_write(m, NULL, FF_MAP_CAP + 1), -E2BIG);
	free(m);
}

/* A reader never sees a half-written page. The writer alternates two sets
 * that both hold key k, first in one and last in the other (10.0.0.x sort
 * before k = 10.0.0.200, 10.1.0.x after it): a lookup on a page torn
 * between the two would miss k. Every answer must be "found"; a reader
 * that a writer rewriting in a tight loop starves gets -EAGAIN, which is
 * counted but is no wrong answer. The writer yields between writes, as the
 * router, which writes only on registrations, always does. */
struct race {
	struct ff_map_hdr *m;
	volatile int stop;
	long wrong, starved, found;
};

static void *writer(void *arg)
{
	struct race *r = arg;
	struct ff_map_ent e[65];
	struct ff_ip k = {.family = AF_INET, .ip = {10, 0, 0, 200}};

	for (int round = 0; !r->stop; round++) {
		for (int i = 0; i < 64; i++) {
			struct ff_ip ip = {.family = AF_INET, .ip = {10, (uint8_t)(round & 1), 0, (uint8_t)i}};

			ff_map_ent_set(&e[i], &ip, 0);
		}
		ff_map_ent_set(&e[64], &k, 5);
		ff_map_write(r->m, e, 65);
		sched_yield();
	}
	return NULL;
}

static void test_seqlock(void)
{
	struct race r = {.m = page()};
	struct ff_ip k = {.family = AF_INET, .ip = {10, 0, 0, 200}};
	struct ff_map_ent e;
	pthread_t th;

	ff_map_ent_set(&e, &k, 5);
	CU_ASSERT_EQUAL(ff_map_write(r.m, &e, 1), 0);
	pthread_create(&th, NULL, writer, &r);
	for (int i = 0; i < 200000; i++) {
		uint8_t f = 0;
		int a = ff_map_find(r.m, &k, &f);

		if (a == -EAGAIN)
			r.starved++;
		else if (a == 1 && f == 5)
			r.found++;
		else
			r.wrong++;
	}
	r.stop = 1;
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(r.wrong, 0);
	CU_ASSERT(r.found > 0);
	CU_ASSERT_EQUAL(r.m->seq % 2, 0);
	if (r.starved)
		printf("\n    (%ld of 200000 lookups gave up while the writer kept writing)\n", r.starved);
	free(r.m);
}

/* A page mapped exactly as big as the shim maps it, followed by a page
 * no one may touch: any read past FF_MAP_SIZE faults. */
struct guarded {
	void *base;
	size_t len;
	struct ff_map_hdr *m;
};

static struct ff_map_hdr *guarded_page(struct guarded *g)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t body = (FF_MAP_SIZE + pg - 1) / pg * pg;

	g->len = body + pg;
	g->base = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_NOT_EQUAL_FATAL(g->base, MAP_FAILED);
	CU_ASSERT_EQUAL_FATAL(mprotect((char *)g->base + body, pg, PROT_NONE), 0);
	g->m = (struct ff_map_hdr *)((char *)g->base + body - FF_MAP_SIZE);
	return g->m;
}

static uint64_t xs = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	xs ^= xs << 13;
	xs ^= xs >> 7;
	xs ^= xs << 17;
	return xs;
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Looks a few addresses up; every answer must be one of the documented
 * ones and come in bounded time. */
static void lookups(const struct ff_map_hdr *m, bool may_find)
{
	static const char *ips[] = {"10.0.0.1", "0.0.0.0", "255.255.255.255", "fd00::1",
				    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		struct ff_ip ip;
		uint8_t flags = 0;
		int r;

		ff_ip_parse(ips[i], &ip);
		r = ff_map_find(m, &ip, &flags);
		CU_ASSERT(r == 0 || r == -EAGAIN || r == -EINVAL || (may_find && r == 1));
	}
	CU_ASSERT(elapsed_ms(&t0) < 5000);
}

/* Issue 10, hole 2: bogus cap, count and sequence numbers, random entries,
 * every header field at its maximum: no crash, no endless loop, and a
 * page that holds nothing a key can equal gives "no match". */
static void test_hostile_page(void)
{
	static const uint32_t counts[] = {0, 1, FF_MAP_CAP - 1, FF_MAP_CAP, FF_MAP_CAP + 1,
					  0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu};
	struct guarded g;
	struct ff_map_hdr *m = guarded_page(&g);

	/* every byte at its maximum (family 0xff matches no key) */
	memset(m, 0xff, FF_MAP_SIZE);
	m->magic = FF_MAP_MAGIC;
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		m->count = counts[i];
		m->cap = counts[sizeof(counts) / sizeof(counts[0]) - 1 - i];
		m->seq = 0xfffffffe;
		lookups(m, false);
	}
	/* a sequence number that stays odd: bounded, no answer */
	m->seq = 1;
	lookups(m, false);
	/* random pages, random headers */
	for (int round = 0; round < 64; round++) {
		uint64_t *w = (uint64_t *)m;

		for (size_t i = 0; i < FF_MAP_SIZE / 8; i++)
			w[i] = rnd();
		m->magic = FF_MAP_MAGIC;
		if (round & 1)
			m->seq &= ~1u;
		if (round & 2)
			m->cap = 0xffffffffu;
		lookups(m, true);
	}
	munmap(g.base, g.len);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"find", test_find},
		{"bad_page", test_bad_page},
		{"seqlock", test_seqlock},
		{"hostile_page", test_hostile_page},
		{0},
	};

	return cu_run("map", tests);
}
