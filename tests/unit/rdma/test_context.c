/* ffrouter/rdma/context.c on the fake device: verbs contexts as shims open
 * and close them. A handle names an object of its own context only, and
 * a stale one names nothing; quotas hold per container across all its
 * contexts, a request over one is refused before the device sees it, and
 * another container is unaffected; closing the context socket destroys
 * everything in dependency order and leaves nothing on the device;
 * unregistering the container leaves its objects working until then. */
#include "cu.h"
#include "vt.h"

#include "fdpass.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAGE 4096u
#define MEM_BASE 0x7e0000000000ull

static void up(void)
{
	vt_up();
	CU_ASSERT_EQUAL_FATAL(vt_register("a", "10.1.0.1", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_register("b", "10.1.0.2", NULL), FF__STATUS__ST_OK);
}

/* Hands one page over at addr. */
static int mem_page(struct vt_ctx *x, uint64_t addr)
{
	int fd = vt_memfd(PAGE), err = vt_mem_add(x, addr, PAGE, fd);

	close(fd);
	return err;
}

/* ---- contexts ---- */

static void test_open_close(void)
{
	struct vt_ctx x, y;
	int fds;

	up();
	fds = vt_nfds();
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(vt_rd->nctxs, 1);
	/* the probe, and the context's own with its completion channel */
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 2);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CHAN), 1);
	CU_ASSERT_EQUAL(vt_use("a")->ctxs, 1);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &y), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(vt_use("a")->ctxs, 2);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 3);
	vt_close(&x);
	CU_ASSERT_EQUAL(vt_rd->nctxs, 1);
	CU_ASSERT_EQUAL(vt_use("a")->ctxs, 1);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 2);
	vt_close(&y);
	CU_ASSERT_EQUAL(vt_rd->nctxs, 0);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 1);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CHAN), 0);
	vt_assert_use_zero(vt_use("a"));
	CU_ASSERT_EQUAL(vt_nfds(), fds); /* the router closed its ends too */
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
	vt_down();
}

/* A context the device cannot open, or whose channel it cannot create,
 * is refused and leaves nothing: no count, no device context, no fd. */
static void test_open_fails_clean(void)
{
	static const enum fake_op ops[] = {FAKE_OPEN_DEVICE, FAKE_CREATE_CHAN};
	struct vt_ctx x;
	int fds;

	up();
	fds = vt_nfds();
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		fake_ibv_fail(ops[i], ENOMEM, 0);
		CU_ASSERT_EQUAL(vt_open("a", &x), FF__STATUS__ST_INTERNAL);
		CU_ASSERT_EQUAL(vt_rd->nctxs, 0);
		CU_ASSERT_EQUAL(vt_use("a")->ctxs, 0);
		CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 1);
		CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CHAN), 0);
		CU_ASSERT_EQUAL(vt_nfds(), fds);
	}
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x), FF__STATUS__ST_OK);
	vt_close(&x);
	vt_down();
}

/* The device's async events reach the app's async socket with the
 * cookie of the object they name. */
static void test_async_event(void)
{
	struct ff_vasync_event ev;
	struct vt_ctx x;
	struct vt_qp q;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&x, &q), 0);
	CU_ASSERT_EQUAL_FATAL(fake_ibv_qp_event(q.qpn, IBV_EVENT_QP_FATAL), 0);
	vt_loop();
	CU_ASSERT_EQUAL_FATAL(recv(x.afd, &ev, sizeof(ev), MSG_DONTWAIT), (ssize_t)sizeof(ev));
	CU_ASSERT_EQUAL(ev.event_type, IBV_EVENT_QP_FATAL);
	CU_ASSERT_EQUAL(ev.kind, FF_VOBJ_QP);
	CU_ASSERT_EQUAL(ev.cookie, 0xc00c1e);
	CU_ASSERT_EQUAL(recv(x.afd, &ev, sizeof(ev), MSG_DONTWAIT), -1); /* just the one */
	vt_close(&x);
	vt_down();
}

/* ---- handles ---- */

static void test_handles_of_other_contexts(void)
{
	struct vt_ctx x1, x2, y;
	uint32_t pd, cq2;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x1), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x2), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("b", &y), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x1, &pd), 0);
	CU_ASSERT_NOT_EQUAL(pd, 0);
	fake_ibv_reset();
	/* x1's PD is nothing in another context, of its container or not */
	CU_ASSERT_EQUAL(vt_create_srq(&x2, pd, 16, 0, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_create_srq(&y, pd, 16, 0, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_destroy(&x2, FF_VOBJ_PD, pd), EINVAL);
	CU_ASSERT_EQUAL(vt_destroy(&y, FF_VOBJ_PD, pd), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_PD), 1);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_CREATE_SRQ), 0);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_DEALLOC_PD), 0);
	/* an object of another kind in the same slot of x2 is not a PD */
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(&x2, 16, 0, 0, &cq2, NULL), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x2, FF_VOBJ_PD, pd), EINVAL);
	CU_ASSERT_EQUAL(vt_create_srq(&x2, cq2, 16, 0, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_destroy(&x1, FF_VOBJ_CQ, pd), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CQ), 1);
	/* nothing at all */
	CU_ASSERT_EQUAL(vt_destroy(&x1, FF_VOBJ_PD, 0), EINVAL);
	CU_ASSERT_EQUAL(vt_destroy(&x1, FF_VOBJ_PD, 0xfffff), EINVAL);
	CU_ASSERT_EQUAL(vt_destroy(&x1, 99, pd), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_PD), 1);
	/* and the owner still can */
	CU_ASSERT_EQUAL(vt_destroy(&x1, FF_VOBJ_PD, pd), 0);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_PD), 0);
	vt_close(&x1);
	vt_close(&x2);
	vt_close(&y);
	vt_down();
}

/* A destroyed object's handle does not name whatever takes its slot. */
static void test_stale_handle(void)
{
	uint32_t old, h = 0, cur = 0;
	struct vt_ctx x;
	int n;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &old), 0);
	CU_ASSERT_EQUAL_FATAL(vt_destroy(&x, FF_VOBJ_PD, old), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, old), EINVAL);
	/* allocate until the slot comes round again */
	for (n = 0; n < 200; n++) {
		CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &h), 0);
		if ((h & 0xfffff) == (old & 0xfffff))
			break;
	}
	CU_ASSERT_FATAL(n < 200);
	CU_ASSERT_NOT_EQUAL(h, old);
	cur = (uint32_t)fake_ibv_live(FAKE_PD);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, old), EINVAL);
	CU_ASSERT_EQUAL(vt_create_srq(&x, old, 16, 0, NULL), EINVAL);
	CU_ASSERT_EQUAL((uint32_t)fake_ibv_live(FAKE_PD), cur);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_SRQ), 0);
	CU_ASSERT_EQUAL(vt_create_srq(&x, h, 16, 0, NULL), 0);
	vt_close(&x);
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), 0);
	vt_down();
}

/* ---- quotas ---- */

/* What each context has before the kind under test is created. */
struct prep {
	uint32_t pd, cq;
	uint64_t mem;
};

static uint64_t next_mem;

static void prepare(struct vt_ctx *x, struct prep *p)
{
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(x, &p->pd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(x, 16, 0, 0, &p->cq, NULL), 0);
	p->mem = next_mem;
	next_mem += PAGE;
	CU_ASSERT_EQUAL_FATAL(mem_page(x, p->mem), 0);
}

struct kind_case {
	const char *name;
	size_t quota_off; /* offsetof the count in ffr_rdma_quota and ffr_rdma_use */
	enum fake_op op;  /* what the device would be asked (FAKE_NOPS: nothing) */
	enum fake_kind fk;
	int (*make)(struct vt_ctx *x, const struct prep *p, uint32_t *h);
	int (*drop)(struct vt_ctx *x, uint32_t h);
};

static int make_pd(struct vt_ctx *x, const struct prep *p, uint32_t *h)
{
	return vt_alloc_pd(x, h);
}

static int make_cq(struct vt_ctx *x, const struct prep *p, uint32_t *h)
{
	return vt_create_cq(x, 16, 0, 0, h, NULL);
}

static int make_qp(struct vt_ctx *x, const struct prep *p, uint32_t *h)
{
	return vt_create_qp(x, p->pd, p->cq, p->cq, 0, IBV_QPT_RC, h, NULL);
}

static int make_srq(struct vt_ctx *x, const struct prep *p, uint32_t *h)
{
	return vt_create_srq(x, p->pd, 16, 0, h);
}

static int make_chan(struct vt_ctx *x, const struct prep *p, uint32_t *h)
{
	return vt_create_chan(x, h, NULL);
}

static int make_mr(struct vt_ctx *x, const struct prep *p, uint32_t *h)
{
	return vt_reg_mr(x, p->pd, p->mem, 64, IBV_ACCESS_LOCAL_WRITE, h, NULL, NULL);
}

static int make_mem(struct vt_ctx *x, const struct prep *p, uint32_t *h)
{
	*h = (uint32_t)((next_mem - MEM_BASE) / PAGE);
	next_mem += PAGE;
	return mem_page(x, MEM_BASE + (uint64_t)*h * PAGE);
}

#define DROP(name, kind)                                                                           \
	static int drop_##name(struct vt_ctx *x, uint32_t h)                                       \
	{                                                                                          \
		return vt_destroy(x, kind, h);                                                     \
	}
DROP(pd, FF_VOBJ_PD)
DROP(cq, FF_VOBJ_CQ)
DROP(qp, FF_VOBJ_QP)
DROP(srq, FF_VOBJ_SRQ)
DROP(chan, FF_VOBJ_CHANNEL)
DROP(mr, FF_VOBJ_MR)

static int drop_mem(struct vt_ctx *x, uint32_t h)
{
	return vt_mem_remove(x, MEM_BASE + (uint64_t)h * PAGE, PAGE);
}

#define Q(f) offsetof(struct ffr_rdma_quota, f)
static const struct kind_case kinds[] = {
	{"pd", Q(pds), FAKE_ALLOC_PD, FAKE_PD, make_pd, drop_pd},
	{"cq", Q(cqs), FAKE_CREATE_CQ, FAKE_CQ, make_cq, drop_cq},
	{"qp", Q(qps), FAKE_CREATE_QP, FAKE_QP, make_qp, drop_qp},
	{"srq", Q(srqs), FAKE_CREATE_SRQ, FAKE_SRQ, make_srq, drop_srq},
	{"channel", Q(chans), FAKE_NOPS, FAKE_NKINDS, make_chan, drop_chan},
	{"mr", Q(mrs), FAKE_REG_MR, FAKE_MR, make_mr, drop_mr},
	{"mem", Q(mems), FAKE_NOPS, FAKE_NKINDS, make_mem, drop_mem},
};
#undef Q

static uint32_t *field(void *base, size_t off)
{
	return (uint32_t *)((char *)base + off);
}

static int live_of(const struct kind_case *k)
{
	return k->fk == FAKE_NKINDS ? 0 : fake_ibv_live(k->fk);
}

static unsigned int calls_of(const struct kind_case *k)
{
	return k->op == FAKE_NOPS ? 0 : fake_ibv_calls(k->op);
}

/* Container a, two contexts, one object each: at the quota. The next,
 * in either context, is refused and never reaches the device; b is not
 * affected; freeing one of a's makes room again. */
static void quota_case(const struct kind_case *k)
{
	struct vt_ctx x1, x2, y;
	struct prep p1, p2, py;
	uint32_t h1, h2, h;
	unsigned int calls;
	int live;

	up();
	next_mem = MEM_BASE + (1ull << 30);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x1), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x2), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("b", &y), FF__STATUS__ST_OK);
	prepare(&x1, &p1);
	prepare(&x2, &p2);
	prepare(&y, &py);
	next_mem = MEM_BASE;
	*field(&vt_rd->quota, k->quota_off) = *field(vt_use("a"), k->quota_off) + 2;
	CU_ASSERT_EQUAL_FATAL(k->make(&x1, &p1, &h1), 0);
	CU_ASSERT_EQUAL_FATAL(k->make(&x2, &p2, &h2), 0);
	live = live_of(k);
	calls = calls_of(k);
	CU_ASSERT_EQUAL(k->make(&x1, &p1, &h), ENOBUFS);
	CU_ASSERT_EQUAL(vt_status, FF__STATUS__ST_QUOTA);
	CU_ASSERT_EQUAL(k->make(&x2, &p2, &h), ENOBUFS);
	CU_ASSERT_EQUAL(vt_status, FF__STATUS__ST_QUOTA);
	CU_ASSERT_EQUAL(live_of(k), live);
	CU_ASSERT_EQUAL(calls_of(k), calls);
	CU_ASSERT_EQUAL(*field(vt_use("a"), k->quota_off), *field(&vt_rd->quota, k->quota_off));
	/* b has its own count */
	CU_ASSERT_EQUAL(k->make(&y, &py, &h), 0);
	CU_ASSERT_EQUAL(k->make(&y, &py, &h), 0);
	/* a freed one: room for one more, and only one */
	CU_ASSERT_EQUAL(k->drop(&x1, h1), 0);
	CU_ASSERT_EQUAL(k->make(&x2, &p2, &h), 0);
	CU_ASSERT_EQUAL(k->make(&x1, &p1, &h), ENOBUFS);
	/* closing a context gives back what it held */
	vt_close(&x2);
	CU_ASSERT_EQUAL(k->make(&x1, &p1, &h), 0);
	vt_close(&x1);
	vt_close(&y);
	vt_assert_use_zero(vt_use("a"));
	vt_assert_use_zero(vt_use("b"));
	vt_down();
}

static void test_quota_per_kind(void)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		fprintf(stderr, "quota of %s\n", kinds[i].name);
		quota_case(&kinds[i]);
	}
}

/* Memory handed over is counted in bytes too. */
static void test_quota_mem_bytes(void)
{
	struct vt_ctx x1, x2, y;
	int fd = vt_memfd(4 * PAGE);

	up();
	vt_rd->quota.mem_bytes = 3 * PAGE;
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x1), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x2), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("b", &y), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(vt_mem_add(&x1, MEM_BASE, 2 * PAGE, fd), 0);
	CU_ASSERT_EQUAL(vt_mem_add(&x2, MEM_BASE, 2 * PAGE, fd), ENOBUFS);
	CU_ASSERT_EQUAL(vt_status, FF__STATUS__ST_QUOTA);
	CU_ASSERT_EQUAL(vt_use("a")->mem_bytes, 2 * PAGE);
	CU_ASSERT_EQUAL(vt_use("a")->mems, 1);
	CU_ASSERT_EQUAL(vt_mem_add(&x2, MEM_BASE, PAGE, fd), 0);
	CU_ASSERT_EQUAL(vt_mem_add(&y, MEM_BASE, 3 * PAGE, fd), 0);
	CU_ASSERT_EQUAL(vt_mem_remove(&x1, MEM_BASE, 2 * PAGE), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mem_bytes, PAGE);
	CU_ASSERT_EQUAL(vt_mem_add(&x1, MEM_BASE, 2 * PAGE, fd), 0);
	close(fd);
	vt_close(&x1);
	vt_close(&x2);
	vt_close(&y);
	vt_assert_use_zero(vt_use("a"));
	vt_down();
}

static void test_quota_contexts(void)
{
	struct vt_ctx x1, x2, y;
	unsigned int opens;

	up();
	vt_rd->quota.ctxs = 1;
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x1), FF__STATUS__ST_OK);
	opens = fake_ibv_calls(FAKE_OPEN_DEVICE);
	CU_ASSERT_EQUAL(vt_open("a", &x2), FF__STATUS__ST_QUOTA);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_OPEN_DEVICE), opens);
	CU_ASSERT_EQUAL(vt_use("a")->ctxs, 1);
	CU_ASSERT_EQUAL(vt_rd->nctxs, 1);
	CU_ASSERT_EQUAL_FATAL(vt_open("b", &y), FF__STATUS__ST_OK);
	vt_close(&x1);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x2), FF__STATUS__ST_OK);
	vt_close(&x2);
	vt_close(&y);
	vt_down();
}

/* ---- teardown ---- */

/* Everything a context can hold, with every dependency there is. */
static void populate(struct vt_ctx *x, uint64_t mem)
{
	uint32_t pd, pd2, ch, cq, cq2, srq, qp, mr;
	int fd = vt_memfd(2 * PAGE);

	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(x, &pd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(x, &pd2), 0);
	CU_ASSERT_EQUAL_FATAL(vt_mem_add(x, mem, 2 * PAGE, fd), 0);
	close(fd);
	CU_ASSERT_EQUAL_FATAL(vt_reg_mr(x, pd, mem, 2 * PAGE, IBV_ACCESS_LOCAL_WRITE, &mr, NULL,
					NULL),
			      0);
	CU_ASSERT_EQUAL_FATAL(vt_reg_mr(x, pd2, mem + 8, 100, IBV_ACCESS_LOCAL_WRITE, &mr, NULL,
					NULL),
			      0);
	CU_ASSERT_EQUAL_FATAL(vt_create_chan(x, &ch, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(x, 16, ch, 1, &cq, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(x, 16, 0, 2, &cq2, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_srq(x, pd2, 16, 0, &srq), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_qp(x, pd, cq, cq2, srq, IBV_QPT_RC, &qp, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_qp(x, pd2, cq2, cq2, 0, IBV_QPT_RC, &qp, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_qp(x, pd, cq, cq, srq, IBV_QPT_UC, &qp, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vt_qp_init(x, qp), 0);
}

static void test_close_destroys_in_order(void)
{
	struct vt_ctx x, y;
	unsigned int n;
	const struct fake_logent *l;
	int fds, b_objs, b_rings, b_mems;

	up();
	fds = vt_nfds();
	CU_ASSERT_EQUAL_FATAL(vt_open("b", &y), FF__STATUS__ST_OK);
	populate(&y, MEM_BASE);
	b_objs = fake_ibv_live_objs();
	b_rings = vt_nmaps("ffnet-vring");
	b_mems = vt_nmaps(VT_MEM);
	CU_ASSERT(b_rings > 0 && b_mems > 0);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x), FF__STATUS__ST_OK);
	populate(&x, MEM_BASE);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_QP), 6);
	fake_ibv_reset();
	vt_close(&x); /* the app exits */
	/* a's objects are gone from the device, b's are all there */
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), b_objs);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_QP), 3);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 2);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
	vt_assert_destroy_order();
	l = fake_ibv_log(&n);
	/* 3 QPs, 1 SRQ, 2 MRs, 2 CQs, 2 PDs, the channel, the context */
	CU_ASSERT_EQUAL(n, 12);
	CU_ASSERT_EQUAL(l[0].kind, FAKE_QP);
	CU_ASSERT(n > 0 && l[n - 1].kind == FAKE_CTX);
	vt_assert_use_zero(vt_use("a"));
	CU_ASSERT_EQUAL(vt_rd->nctxs, 1);
	CU_ASSERT_EQUAL(vt_nmaps("ffnet-vring"), b_rings);
	CU_ASSERT_EQUAL(vt_nmaps(VT_MEM), b_mems);
	vt_close(&y);
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), 0);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 1);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
	vt_assert_destroy_order();
	CU_ASSERT_EQUAL(vt_nfds(), fds);
	/* nor a mapping: rings, app memory */
	CU_ASSERT_EQUAL(vt_nmaps("ffnet-vring"), 0);
	CU_ASSERT_EQUAL(vt_nmaps(VT_MEM), 0);
	vt_down();
}

/* The router stops with contexts open: they go the same way. */
static void test_router_stop_destroys_in_order(void)
{
	struct vt_ctx x;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x), FF__STATUS__ST_OK);
	populate(&x, MEM_BASE);
	fake_ibv_reset();
	vt_down(); /* asserts nothing is left */
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
	vt_assert_destroy_order();
	close(x.fd);
	close(x.afd);
	close(x.ch);
}

/* Like an established connection, a context outlives its container's
 * registration: its objects stay and work until the app closes it; it
 * can create nothing more, and a container registered again under the
 * same name starts from zero. */
static void test_unregister_keeps_objects(void)
{
	struct vt_ctx x, x2;
	struct vt_qp q;
	uint32_t cq;
	Ff__Reply *rep;
	Ff__VerbsQpAttr *a;
	int objs, err;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&x, &q), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(&x, 16, 0, 0, &cq, NULL), 0);
	objs = fake_ibv_live_objs();
	CU_ASSERT_EQUAL_FATAL(vt_unregister("a"), FF__STATUS__ST_OK);
	vt_loop();
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), objs);
	CU_ASSERT_EQUAL(vt_rd->nctxs, 1);
	/* still works */
	CU_ASSERT_EQUAL(vt_qp_init(&x, q.qp), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fake_ibv_qp(q.qpn));
	CU_ASSERT_EQUAL(fake_ibv_qp(q.qpn)->qp.state, IBV_QPS_INIT);
	a = vt_query_qp(&x, q.qp, &rep, &err);
	CU_ASSERT_PTR_NOT_NULL(a);
	CU_ASSERT(a && a->qp_state == IBV_QPS_INIT);
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_CQ, cq), 0);
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), objs - 1);
	/* creates nothing more */
	fake_ibv_reset();
	CU_ASSERT_NOT_EQUAL(vt_alloc_pd(&x, NULL), 0);
	CU_ASSERT_NOT_EQUAL(vt_create_cq(&x, 16, 0, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_ALLOC_PD), 0);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_CREATE_CQ), 0);
	/* the name again: a new container, with nothing of the old context */
	CU_ASSERT_EQUAL_FATAL(vt_register("a", "10.1.0.1", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x2), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(vt_use("a")->ctxs, 1);
	CU_ASSERT_EQUAL(vt_use("a")->qps, 0);
	CU_ASSERT_EQUAL(vt_use("a")->pds, 0);
	vt_close(&x); /* the old app exits */
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), 1); /* x2's completion channel */
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 2);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
	vt_assert_destroy_order();
	CU_ASSERT_EQUAL(vt_use("a")->ctxs, 1); /* not the new one's to give back */
	vt_close(&x2);
	vt_assert_use_zero(vt_use("a"));
	vt_down();
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"open_close", test_open_close},
		{"open_fails_clean", test_open_fails_clean},
		{"async_event", test_async_event},
		{"handles_of_other_contexts", test_handles_of_other_contexts},
		{"stale_handle", test_stale_handle},
		{"quota_per_kind", test_quota_per_kind},
		{"quota_mem_bytes", test_quota_mem_bytes},
		{"quota_contexts", test_quota_contexts},
		{"close_destroys_in_order", test_close_destroys_in_order},
		{"router_stop_destroys_in_order", test_router_stop_destroys_in_order},
		{"unregister_keeps_objects", test_unregister_keeps_objects},
		{0},
	};

	return cu_run("rdma_context", tests);
}
