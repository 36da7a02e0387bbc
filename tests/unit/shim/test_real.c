/* libffshim/real.c: the tables of real functions. libc's is filled by
 * ffs_init(); libibverbs' and librdmacm's each the first time they are
 * asked for once that library is loaded, however late (this binary does
 * not link rdma-core: it dlopens it as a program's plugin would). */
#include "cu.h"

#include "real.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static void *ibv_lib, *rdmacm_lib;

static void test_libc(void)
{
	ffs_init();
	CU_ASSERT_TRUE(ffs_ready());
	CU_ASSERT_PTR_NOT_NULL(REAL(socket));
	CU_ASSERT_PTR_EQUAL(REAL(socket), dlsym(RTLD_DEFAULT, "socket"));
	CU_ASSERT_PTR_EQUAL(REAL(connect), dlsym(RTLD_DEFAULT, "connect"));
	CU_ASSERT_PTR_EQUAL(REAL(close), dlsym(RTLD_DEFAULT, "close"));
}

/* Before the libraries are loaded, every entry is NULL (the wrappers
 * answer as without rdma-core), and asking does not fill the table for
 * good. */
static void test_absent(void)
{
	const struct ffs_ibv_real *v = ffs_ibv_real();
	const struct ffs_rdmacm_real *c = ffs_rdmacm_real();

	CU_ASSERT_PTR_NULL(v->ibv_get_device_list);
	CU_ASSERT_PTR_NULL(v->ibv_reg_mr);
	CU_ASSERT_PTR_NULL(c->rdma_create_event_channel);
	CU_ASSERT_PTR_NULL(c->rdma_getaddrinfo);
	CU_ASSERT_PTR_NULL(ffs_ibv_real()->ibv_create_qp);
}

#define CHECK_IBV(name)	   CU_ASSERT_PTR_EQUAL(v->name, dlsym(ibv_lib, #name));
#define CHECK_RDMACM(name) CU_ASSERT_PTR_EQUAL(c->name, dlsym(rdmacm_lib, #name));

/* libibverbs loaded after the first calls: its table fills, every name
 * as the library has it; librdmacm's stays empty until it comes too. */
static void test_ibv_late(void)
{
	const struct ffs_ibv_real *v;

	ibv_lib = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (!ibv_lib) {
		printf("(skipped: no libibverbs.so.1) ");
		return;
	}
	v = ffs_ibv_real();
	CU_ASSERT_PTR_NOT_NULL(v->ibv_get_device_list);
	CU_ASSERT_PTR_NOT_NULL(v->ibv_create_qp);
	FFS_IBV_LIST(CHECK_IBV)
	CU_ASSERT_PTR_EQUAL(ffs_ibv_real(), v);
	CU_ASSERT_PTR_NULL(ffs_rdmacm_real()->rdma_create_event_channel);
}

static void *ask_rdmacm(void *arg)
{
	return (void *)ffs_rdmacm_real()->rdma_create_id;
}

/* librdmacm loaded later still; threads ask for its table at once: one
 * fills it, all see it filled. */
static void test_rdmacm_late(void)
{
	const struct ffs_rdmacm_real *c;
	pthread_t thr[8];
	void *got[8];

	rdmacm_lib = dlopen("librdmacm.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (!rdmacm_lib) {
		printf("(skipped: no librdmacm.so.1) ");
		return;
	}
	for (int i = 0; i < 8; i++)
		CU_ASSERT_FATAL(pthread_create(&thr[i], NULL, ask_rdmacm, NULL) == 0);
	for (int i = 0; i < 8; i++) {
		pthread_join(thr[i], &got[i]);
		CU_ASSERT_PTR_EQUAL(got[i], dlsym(rdmacm_lib, "rdma_create_id"));
	}
	c = ffs_rdmacm_real();
	CU_ASSERT_PTR_NOT_NULL(c->rdma_create_event_channel);
	FFS_RDMACM_LIST(CHECK_RDMACM)
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"libc", test_libc},
	    {"absent", test_absent},
	    {"ibv_late", test_ibv_late},
	    {"rdmacm_late", test_rdmacm_late},
	    {0},
	};
	int r = cu_run("shim-real", tests);

	/* rdma-core stays loaded: the tables point into it for good */
	return r;
}
