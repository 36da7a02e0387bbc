/* common/map.c: the seqlocked overlay map page. */
#include "cu.h"
#include "map.h"

#include <pthread.h>
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

/* A reader never sees a half-written page: the writer alternates two sets
 * that never contain the same address; a reader asking for one address of
 * each set must find exactly one of them at every consistent moment. */
struct race {
	struct ff_map_hdr *m;
	volatile int stop;
	long bad, reads;
};

static void *writer(void *arg)
{
	struct race *r = arg;
	struct ff_map_ent e[64];

	for (int round = 0; !r->stop; round++) {
		for (int i = 0; i < 64; i++) {
			struct ff_ip ip = {.family = AF_INET, .ip = {10, (uint8_t)(round & 1), 0, (uint8_t)i}};

			ff_map_ent_set(&e[i], &ip, 0);
		}
		ff_map_write(r->m, e, 64);
	}
	return NULL;
}

static void test_seqlock(void)
{
	struct race r = {.m = page()};
	struct ff_ip x = {.family = AF_INET, .ip = {10, 0, 0, 7}};
	struct ff_ip y = {.family = AF_INET, .ip = {10, 1, 0, 7}};
	pthread_t th;

	pthread_create(&th, NULL, writer, &r);
	for (int i = 0; i < 200000; i++) {
		uint8_t f;
		int a = ff_map_find(r.m, &x, &f), b = ff_map_find(r.m, &y, &f);

		if (a < 0 || b < 0)
			r.bad++;
		r.reads++;
	}
	r.stop = 1;
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(r.bad, 0);
	CU_ASSERT_EQUAL(r.m->seq % 2, 0);
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
