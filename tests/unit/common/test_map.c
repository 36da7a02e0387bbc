/* common/map.c: the seqlocked overlay map page. */
#include "cu.h"
#include "map.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
	static const struct cu_test tests[] = {
		{"find", test_find},
		{"bad_page", test_bad_page},
		{"seqlock", test_seqlock},
		{0},
	};

	return cu_run("map", tests);
}
