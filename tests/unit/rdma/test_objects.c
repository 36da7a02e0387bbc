/* ffrouter/rdma/objects.c on the fake device: PDs, memfd ranges, MRs,
 * completion channels, CQs and SRQs as an app creates them. An MR is the
 * app's own pages (zero copy) with the app's address as iova; what the
 * router maps is sealed; an object in use cannot be destroyed; a request
 * the router or the device refuses takes no quota, no reference and no
 * fd; a destroy the device refuses leaves the object whole. */
#include "cu.h"
#include "vt.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define PAGE 4096u
#define MEM 0x7e0000000000ull
#define ACC (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

static struct vt_ctx x;

static void up(void)
{
	vt_up();
	CU_ASSERT_EQUAL_FATAL(vt_register("a", "10.1.0.1", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &x), FF__STATUS__ST_OK);
}

static uint32_t last_id(enum fake_kind k)
{
	struct fake_obj *o = fake_ibv_last(k);

	return o ? o->id : 0;
}

/* ---- PDs ---- */

static void test_pd(void)
{
	struct fake_pd *p;
	uint32_t pd;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &pd), 0);
	CU_ASSERT_NOT_EQUAL(pd, 0);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_PD), 1);
	p = FAKE_OF(fake_pd, fake_ibv_last(FAKE_PD));
	/* on the context's own device context, not the router's probe */
	CU_ASSERT_PTR_NOT_EQUAL(p->pd.context, vt_rd->probe);
	CU_ASSERT_EQUAL(vt_use("a")->pds, 1);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), 0);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_PD), 0);
	CU_ASSERT_EQUAL(vt_use("a")->pds, 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), EINVAL);
	vt_close(&x);
	vt_down();
}

/* ---- memory ---- */

/* The MR is the app's pages: what the app writes to its memfd is what
 * the device reads at the MR's address, and the other way round. */
static void test_mr_zero_copy(void)
{
	uint32_t pd, mr, lkey, rkey;
	struct fake_mr *m;
	char buf[8] = "";
	int fd = vt_memfd(2 * PAGE);

	up();
	CU_ASSERT_FATAL(pwrite(fd, "hello", 5, 100) == 5);
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &pd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_mem_add(&x, MEM, 2 * PAGE, fd), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mems, 1);
	CU_ASSERT_EQUAL(vt_use("a")->mem_bytes, 2 * PAGE);
	/* sealed before it was mapped: the app cannot make the router fault */
	CU_ASSERT_EQUAL(ftruncate(fd, PAGE), -1);
	CU_ASSERT_TRUE(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK);
	CU_ASSERT_EQUAL_FATAL(vt_reg_mr(&x, pd, MEM + 100, 1000, ACC, &mr, &lkey, &rkey), 0);
	m = fake_ibv_mr(lkey);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(m->mr.rkey, rkey);
	CU_ASSERT_EQUAL(m->iova, MEM + 100);
	CU_ASSERT_EQUAL(m->mr.length, 1000);
	CU_ASSERT_EQUAL(m->access, ACC);
	CU_ASSERT_EQUAL(m->o.held[1]->id, last_id(FAKE_PD));
	CU_ASSERT_EQUAL(memcmp(m->mr.addr, "hello", 5), 0);
	memcpy((char *)m->mr.addr + 10, "world", 5);
	CU_ASSERT_EQUAL(pread(fd, buf, 5, 110), 5);
	CU_ASSERT_EQUAL(memcmp(buf, "world", 5), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mrs, 1);
	/* the app forgets the range: the MR keeps it until it goes */
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM, 2 * PAGE), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mems, 1);
	CU_ASSERT_EQUAL(memcmp(m->mr.addr, "hello", 5), 0);
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM, 2 * PAGE), ENOENT); /* once */
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_MR, mr), 0);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_MR), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mrs, 0);
	CU_ASSERT_EQUAL(vt_use("a")->mems, 0);
	CU_ASSERT_EQUAL(vt_use("a")->mem_bytes, 0);
	CU_ASSERT_EQUAL(vt_nmaps(VT_MEM), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), 0);
	close(fd);
	vt_close(&x);
	vt_down();
}

/* An MR over two ranges the app handed over separately is one stretch of
 * the device's address space with both memfds' pages in order. Valgrind
 * has no mremap with old size 0, which that takes: there the MR is
 * refused, and must leave nothing behind either. */
static void test_mr_across_mems(void)
{
	int f1 = vt_memfd(PAGE), f2 = vt_memfd(PAGE), err;
	uint32_t pd, mr, lkey;
	struct fake_mr *m;

	up();
	CU_ASSERT_FATAL(pwrite(f1, "AB", 2, PAGE - 2) == 2);
	CU_ASSERT_FATAL(pwrite(f2, "CD", 2, 0) == 2);
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &pd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_mem_add(&x, MEM + PAGE, PAGE, f2), 0);
	CU_ASSERT_EQUAL_FATAL(vt_mem_add(&x, MEM, PAGE, f1), 0);
	err = vt_reg_mr(&x, pd, MEM + PAGE - 2, 4, ACC, &mr, &lkey, NULL);
	if (RUNNING_ON_VALGRIND) {
		CU_ASSERT_NOT_EQUAL(err, 0);
		CU_ASSERT_EQUAL(vt_use("a")->mrs, 0);
		CU_ASSERT_EQUAL(fake_ibv_live(FAKE_MR), 0);
	} else {
		CU_ASSERT_EQUAL_FATAL(err, 0);
		m = fake_ibv_mr(lkey);
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		CU_ASSERT_EQUAL(memcmp(m->mr.addr, "ABCD", 4), 0);
	}
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM, PAGE), 0);
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM + PAGE, PAGE), 0);
	if (!err) {
		CU_ASSERT_EQUAL(vt_use("a")->mems, 2);
		CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_MR, mr), 0);
	}
	CU_ASSERT_EQUAL(vt_use("a")->mems, 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), 0);
	close(f1);
	close(f2);
	vt_close(&x);
	vt_down();
}

/* Refused MRs reach no device and keep no reference on PD or memory. */
static void test_mr_refused(void)
{
	static const struct {
		uint64_t addr, len;
		uint32_t access;
		int err;
	} bad[] = {
		{MEM + 2 * PAGE, 8, ACC, EFAULT},   /* no memory there */
		{MEM + 2 * PAGE - 4, 8, ACC, EFAULT}, /* runs past it */
		{MEM - 4, 8, ACC, EFAULT},          /* starts before it */
		{MEM, 0, ACC, EINVAL},
		{MEM, 8, IBV_ACCESS_MW_BIND, EINVAL},
		{MEM, 8, IBV_ACCESS_ON_DEMAND, EINVAL},
		{UINT64_MAX - 8, 16, ACC, EINVAL}, /* wraps */
	};
	int fd = vt_memfd(2 * PAGE);
	uint32_t pd;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &pd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_mem_add(&x, MEM, 2 * PAGE, fd), 0);
	fake_ibv_reset();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(vt_reg_mr(&x, pd, bad[i].addr, bad[i].len, bad[i].access, NULL,
					  NULL, NULL),
				bad[i].err);
	}
	CU_ASSERT_EQUAL(vt_reg_mr(&x, pd + 1, MEM, 8, ACC, NULL, NULL, NULL), EINVAL); /* no PD */
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_REG_MR), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mrs, 0);
	/* no reference left behind: both go at once */
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM, 2 * PAGE), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mems, 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), 0);
	close(fd);
	vt_close(&x);
	vt_down();
}

static void test_mem_rules(void)
{
	int fd = vt_memfd(2 * PAGE), p[2], fds;

	up();
	CU_ASSERT_FATAL(pipe(p) == 0);
	fds = vt_nfds();
	CU_ASSERT_EQUAL(vt_mem_add(&x, MEM + 1, PAGE, fd), EINVAL);      /* unaligned */
	CU_ASSERT_EQUAL(vt_mem_add(&x, MEM, PAGE + 1, fd), EINVAL);      /* not whole pages */
	CU_ASSERT_EQUAL(vt_mem_add(&x, MEM, 0, fd), EINVAL);             /* empty */
	CU_ASSERT_EQUAL(vt_mem_add(&x, MEM, 4 * PAGE, fd), EINVAL);      /* longer than the memfd */
	CU_ASSERT_EQUAL(vt_mem_add(&x, MEM, PAGE, -1), EINVAL);          /* no memfd */
	/* not a memfd: EBADF, or EPERM where the kernel refuses seals so */
	CU_ASSERT_NOT_EQUAL(vt_mem_add(&x, MEM, PAGE, p[0]), 0);
	CU_ASSERT_EQUAL(vt_mem_add(&x, -(uint64_t)PAGE, 2 * PAGE, fd), EINVAL); /* wraps */
	CU_ASSERT_EQUAL(vt_use("a")->mems, 0);
	CU_ASSERT_EQUAL(vt_use("a")->mem_bytes, 0);
	CU_ASSERT_EQUAL(vt_nfds(), fds); /* the router kept none of them */
	CU_ASSERT_EQUAL_FATAL(vt_mem_add(&x, MEM, 2 * PAGE, fd), 0);
	CU_ASSERT_EQUAL(vt_nfds(), fds); /* a mapping, not an fd */
	CU_ASSERT_EQUAL(vt_mem_add(&x, MEM + PAGE, PAGE, fd), EEXIST); /* overlaps */
	CU_ASSERT_EQUAL(vt_mem_add(&x, MEM - PAGE, 2 * PAGE, fd), EEXIST);
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM, PAGE), ENOENT); /* not the range given */
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM + PAGE, PAGE), ENOENT);
	CU_ASSERT_EQUAL(vt_use("a")->mems, 1);
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM, 2 * PAGE), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mems, 0);
	CU_ASSERT_EQUAL(vt_mem_add(&x, MEM + PAGE, PAGE, fd), 0); /* free again */
	close(fd);
	close(p[0]);
	close(p[1]);
	vt_close(&x);
	vt_down();
}

/* ---- channels and CQs ---- */

static void test_channel_and_cq(void)
{
	uint32_t ch, cq, cqe = 0;
	struct fake_cq *f;
	int fd = -1, type = 0;
	socklen_t len = sizeof(type);

	up();
	CU_ASSERT_EQUAL_FATAL(vt_create_chan(&x, &ch, &fd), 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
	CU_ASSERT_EQUAL(type, SOCK_SEQPACKET);
	CU_ASSERT_EQUAL(vt_use("a")->chans, 1);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(&x, 10, ch, 7, &cq, &cqe), 0);
	CU_ASSERT_EQUAL(cqe, 10);
	f = FAKE_OF(fake_cq, fake_ibv_last(FAKE_CQ));
	CU_ASSERT_EQUAL(f->cq.cqe, 10);
	CU_ASSERT_PTR_NOT_NULL(f->cq.channel); /* the context's own */
	CU_ASSERT_TRUE(f->armed);              /* poll, arm, poll */
	CU_ASSERT_EQUAL(vt_use("a")->cqs, 1);
	fake_ibv_reset();
	/* refused before the device */
	CU_ASSERT_EQUAL(vt_create_cq(&x, 0, 0, 0, NULL, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_create_cq(&x, 4097, 0, 0, NULL, NULL), EINVAL); /* > the device's */
	CU_ASSERT_EQUAL(vt_create_cq(&x, 16, ch + 1, 0, NULL, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_create_cq(&x, 16, cq, 0, NULL, NULL), EINVAL); /* a CQ, not a channel */
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_CREATE_CQ), 0);
	CU_ASSERT_EQUAL(vt_use("a")->cqs, 1);
	/* the channel stays while a CQ uses it */
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_CHANNEL, ch), EBUSY);
	CU_ASSERT_EQUAL(vt_status, FF__STATUS__ST_BUSY);
	CU_ASSERT_EQUAL(vt_use("a")->chans, 1);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_CQ, cq), 0);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CQ), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_CHANNEL, ch), 0);
	CU_ASSERT_EQUAL(vt_use("a")->chans, 0);
	CU_ASSERT_EQUAL(vt_use("a")->cqs, 0);
	/* the router's end went with it */
	CU_ASSERT_EQUAL(recv(fd, &type, sizeof(type), MSG_DONTWAIT), 0);
	close(fd);
	vt_close(&x);
	vt_down();
}

/* A completion the device reports reaches the app: the router takes the
 * event off the context's channel, acknowledges it, moves the completion
 * into the CQ's ring, signals the app's channel (the app armed the CQ) and
 * arms the device's CQ again. */
static void test_completion_reaches_the_app(void)
{
	struct ibv_wc wc = {.wr_id = 42, .status = IBV_WC_SUCCESS, .opcode = IBV_WC_RECV,
			    .byte_len = 100, .qp_num = 0x55};
	struct ff_vcq_event ev = {0};
	struct ff_vring_hdr *h;
	struct ff_vcqe *e;
	struct fake_cq *f;
	struct stat st;
	uint32_t ch, cq;
	int chfd = -1, ring = -1;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_create_chan(&x, &ch, &chfd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq_ring(&x, 16, ch, 7, &cq, &ring), 0);
	CU_ASSERT_FATAL(ring >= 0 && fstat(ring, &st) == 0);
	h = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, ring, 0);
	CU_ASSERT_FATAL(h != MAP_FAILED);
	CU_ASSERT_EQUAL(h->magic, FF_VRING_MAGIC);
	CU_ASSERT_EQUAL(h->kind, FF_VOBJ_CQ);
	CU_ASSERT_EQUAL_FATAL(h->cq.size, 16);
	__atomic_store_n(&h->cqi.arm_seq, 1, __ATOMIC_RELEASE); /* ibv_req_notify_cq */
	f = FAKE_OF(fake_cq, fake_ibv_last(FAKE_CQ));
	CU_ASSERT_TRUE_FATAL(f->armed);
	CU_ASSERT_EQUAL_FATAL(fake_ibv_cq_push(f, &wc), 0);
	vt_loop();
	CU_ASSERT_EQUAL(f->events, 1);
	CU_ASSERT_EQUAL(f->acked, 1);
	CU_ASSERT_TRUE(f->armed);
	CU_ASSERT_EQUAL(f->nwc, 0);
	CU_ASSERT_EQUAL(__atomic_load_n(&h->cqi.prod, __ATOMIC_ACQUIRE), 1);
	e = FF_VRING_SLOT(h, &h->cq, 0);
	CU_ASSERT_EQUAL(e->wr_id, 42);
	CU_ASSERT_EQUAL(e->opcode, IBV_WC_RECV);
	CU_ASSERT_EQUAL(e->byte_len, 100);
	CU_ASSERT_EQUAL(e->qp_num, 0x55);
	CU_ASSERT_EQUAL(recv(chfd, &ev, sizeof(ev), MSG_DONTWAIT), (ssize_t)sizeof(ev));
	CU_ASSERT_EQUAL(ev.cookie, 7);
	/* not armed again by the app: the next completion is only in the ring */
	wc.wr_id = 43;
	CU_ASSERT_EQUAL_FATAL(fake_ibv_cq_push(f, &wc), 0);
	vt_loop();
	CU_ASSERT_EQUAL(__atomic_load_n(&h->cqi.prod, __ATOMIC_ACQUIRE), 2);
	CU_ASSERT_EQUAL(recv(chfd, &ev, sizeof(ev), MSG_DONTWAIT), -1);
	munmap(h, (size_t)st.st_size);
	close(ring);
	close(chfd);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_CQ, cq), 0);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0); /* every event was acknowledged */
	vt_close(&x);
	vt_down();
}

/* ---- SRQs ---- */

/* A producer index more than the ring's size ahead of the router's
 * consumer index is the app's error: the SRQ stops being served, once,
 * and the router goes back to sleep (it used to skip one slot per pass
 * and reschedule itself, spinning for up to 2^32 passes). Found by
 * fuzz_verbs. */
static void test_srq_index_out_of_range(void)
{
	struct ff_vring_hdr *h;
	struct ffr_vctx *c;
	struct stat st;
	uint32_t pd, srq;
	int ring = -1;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &pd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_srq_ring(&x, pd, 16, &srq, &ring), 0);
	CU_ASSERT_FATAL(ring >= 0 && fstat(ring, &st) == 0);
	h = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, ring, 0);
	CU_ASSERT_FATAL(h != MAP_FAILED);
	CU_ASSERT_EQUAL_FATAL(h->kind, FF_VOBJ_SRQ);
	__atomic_store_n(&h->rqi.prod, 0x17171717u, __ATOMIC_RELEASE);
	TAILQ_FOREACH (c, &vt_rd->ctxs, link) /* the doorbell */
		event_active(c->dbev, EV_READ, 0);
	vt_loop();
	CU_ASSERT_EQUAL(event_base_get_num_events(vt_base, EVENT_BASE_COUNT_ACTIVE), 0);
	CU_ASSERT_EQUAL(vt_rd->bad_wqes, 1);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_POST_SRQ_RECV), 0);
	/* the app can still destroy it */
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_SRQ, srq), 0);
	munmap(h, (size_t)st.st_size);
	close(ring);
	vt_close(&x);
	vt_down();
}

static void test_srq(void)
{
	uint32_t pd, srq, limit = 0, pd_id, srq_id;
	struct fake_srq *s;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &pd), 0);
	pd_id = last_id(FAKE_PD);
	CU_ASSERT_EQUAL_FATAL(vt_create_srq(&x, pd, 16, 3, &srq), 0);
	s = FAKE_OF(fake_srq, fake_ibv_last(FAKE_SRQ));
	srq_id = s->o.id;
	CU_ASSERT_EQUAL(s->attr.max_wr, 16);
	CU_ASSERT_EQUAL(s->attr.max_sge, 1);
	CU_ASSERT_EQUAL(s->attr.srq_limit, 3);
	CU_ASSERT_EQUAL(s->o.held[1]->id, pd_id);
	CU_ASSERT_EQUAL(vt_use("a")->srqs, 1);
	CU_ASSERT_EQUAL(vt_modify_srq(&x, srq, IBV_SRQ_LIMIT, 0, 5, &limit), 0);
	CU_ASSERT_EQUAL(limit, 5);
	CU_ASSERT_EQUAL(s->attr.srq_limit, 5);
	CU_ASSERT_EQUAL(vt_modify_srq(&x, srq, 0, 0, 0, &limit), 0); /* a query */
	CU_ASSERT_EQUAL(limit, 5);
	/* no resizing: the ring is sized once */
	fake_ibv_reset();
	CU_ASSERT_EQUAL(vt_modify_srq(&x, srq, IBV_SRQ_MAX_WR, 64, 0, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_modify_srq(&x, pd, IBV_SRQ_LIMIT, 0, 1, NULL), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_SRQ), 0);
	CU_ASSERT_EQUAL(s->attr.max_wr, 16);
	/* bad ones */
	CU_ASSERT_EQUAL(vt_create_srq(&x, pd, 0, 0, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_create_srq(&x, pd, FF_VRING_MAX_WR + 1, 0, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_create_srq(&x, srq, 16, 0, NULL), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_CREATE_SRQ), 0);
	/* the PD stays while the SRQ uses it */
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), EBUSY);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_DEALLOC_PD), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_SRQ, srq), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), 0);
	CU_ASSERT_TRUE(fake_ibv_log_before(srq_id, pd_id));
	vt_close(&x);
	vt_down();
}

/* ---- destroying what is in use ---- */

static void test_destroy_in_use(void)
{
	uint32_t pd, cq, srq, qp, mr, pd_id, cq_id, srq_id, qp_id, mr_id, lkey;
	int fd = vt_memfd(PAGE);

	up();
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &pd), 0);
	pd_id = last_id(FAKE_PD);
	CU_ASSERT_EQUAL_FATAL(vt_mem_add(&x, MEM, PAGE, fd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_reg_mr(&x, pd, MEM, 64, ACC, &mr, &lkey, NULL), 0);
	mr_id = fake_ibv_mr(lkey)->o.id;
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(&x, 16, 0, 0, &cq, NULL), 0);
	cq_id = last_id(FAKE_CQ);
	CU_ASSERT_EQUAL_FATAL(vt_create_srq(&x, pd, 16, 0, &srq), 0);
	srq_id = last_id(FAKE_SRQ);
	CU_ASSERT_EQUAL_FATAL(vt_create_qp(&x, pd, cq, cq, srq, IBV_QPT_RC, &qp, NULL), 0);
	qp_id = last_id(FAKE_QP);
	fake_ibv_reset();
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), EBUSY);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_CQ, cq), EBUSY);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_SRQ, srq), EBUSY);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0); /* the router never asked the device */
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), 6);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_QP, qp), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), EBUSY); /* MR and SRQ */
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_CQ, cq), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_SRQ, srq), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), EBUSY); /* the MR */
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_MR, mr), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), 0);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
	CU_ASSERT_TRUE(fake_ibv_log_before(qp_id, cq_id));
	CU_ASSERT_TRUE(fake_ibv_log_before(qp_id, srq_id));
	CU_ASSERT_TRUE(fake_ibv_log_before(srq_id, pd_id));
	CU_ASSERT_TRUE(fake_ibv_log_before(mr_id, pd_id));
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), 1); /* the context's channel */
	CU_ASSERT_EQUAL(vt_nmaps("ffnet-vring"), 0);
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM, PAGE), 0);
	CU_ASSERT_EQUAL(vt_nmaps(VT_MEM), 0);
	close(fd);
	vt_close(&x);
	vt_down();
}

/* ---- failures ---- */

struct fail_case {
	const char *name;
	enum fake_op op;
	int err;         /* what the app gets */
	size_t quota_off; /* the count it would have taken */
	int (*make)(uint32_t pd, uint32_t ch, uint64_t mem, uint32_t *h);
	uint32_t kind;
};

static int make_pd(uint32_t pd, uint32_t ch, uint64_t mem, uint32_t *h)
{
	return vt_alloc_pd(&x, h);
}

static int make_mr(uint32_t pd, uint32_t ch, uint64_t mem, uint32_t *h)
{
	return vt_reg_mr(&x, pd, mem, 64, ACC, h, NULL, NULL);
}

static int make_cq(uint32_t pd, uint32_t ch, uint64_t mem, uint32_t *h)
{
	return vt_create_cq(&x, 16, ch, 0, h, NULL);
}

static int make_srq(uint32_t pd, uint32_t ch, uint64_t mem, uint32_t *h)
{
	return vt_create_srq(&x, pd, 16, 0, h);
}

#define Q(f) offsetof(struct ffr_rdma_quota, f)
static const struct fail_case fails[] = {
	{"alloc_pd", FAKE_ALLOC_PD, ENOMEM, Q(pds), make_pd, FF_VOBJ_PD},
	{"reg_mr", FAKE_REG_MR, ENOMEM, Q(mrs), make_mr, FF_VOBJ_MR},
	{"create_cq", FAKE_CREATE_CQ, ENOMEM, Q(cqs), make_cq, FF_VOBJ_CQ},
	{"req_notify_cq", FAKE_REQ_NOTIFY_CQ, EIO, Q(cqs), make_cq, FF_VOBJ_CQ},
	{"create_srq", FAKE_CREATE_SRQ, ENOMEM, Q(srqs), make_srq, FF_VOBJ_SRQ},
};
#undef Q

static uint32_t *count_at(void *base, size_t off)
{
	return (uint32_t *)((char *)base + off);
}

/* The device fails the create: the app gets its errno, and the router
 * keeps nothing of the attempt (no count, no reference on the PD, the
 * channel or the memory, no fd, no device object). */
static void fail_case(const struct fail_case *f)
{
	struct ffr_rdma_use before;
	uint32_t pd, ch, h;
	int fd = vt_memfd(PAGE), fds, objs, rings, mems;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &pd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_chan(&x, &ch, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vt_mem_add(&x, MEM, PAGE, fd), 0);
	close(fd);
	before = *vt_use("a");
	objs = fake_ibv_live_objs();
	fds = vt_nfds();
	rings = vt_nmaps("ffnet-vring");
	mems = vt_nmaps(VT_MEM);
	fake_ibv_fail(f->op, f->err == EIO ? EAGAIN : f->err, 0);
	CU_ASSERT_EQUAL(f->make(pd, ch, MEM, &h), f->err);
	CU_ASSERT_EQUAL(memcmp(vt_use("a"), &before, sizeof(before)), 0);
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), objs);
	CU_ASSERT_EQUAL(vt_nfds(), fds);
	CU_ASSERT_EQUAL(vt_nmaps("ffnet-vring"), rings);
	CU_ASSERT_EQUAL(vt_nmaps(VT_MEM), mems);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
	/* it took no quota: exactly one more fits */
	*count_at(&vt_rd->quota, f->quota_off) = *count_at(&before, f->quota_off) + 1;
	CU_ASSERT_EQUAL_FATAL(f->make(pd, ch, MEM, &h), 0);
	CU_ASSERT_EQUAL(f->make(pd, ch, MEM, NULL), ENOBUFS);
	CU_ASSERT_EQUAL(vt_destroy(&x, f->kind, h), 0);
	/* and no reference: all of it goes */
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_CHANNEL, ch), 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), 0);
	CU_ASSERT_EQUAL(vt_mem_remove(&x, MEM, PAGE), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mems, 0);
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), 1); /* the context's channel */
	vt_close(&x);
	vt_down();
}

static void test_device_failures_take_nothing(void)
{
	for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++) {
		fprintf(stderr, "failing %s\n", fails[i].name);
		fail_case(&fails[i]);
	}
}

/* The device refuses a destroy: the object stays whole and usable, still
 * counted, and goes at the next try. */
static void test_device_refuses_destroy(void)
{
	uint32_t pd, cq, mr, lkey;
	int fd = vt_memfd(PAGE);

	up();
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&x, &pd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(&x, 16, 0, 0, &cq, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vt_mem_add(&x, MEM, PAGE, fd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_reg_mr(&x, pd, MEM, 64, ACC, &mr, &lkey, NULL), 0);
	fake_ibv_fail(FAKE_DEREG_MR, EBUSY, 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_MR, mr), EBUSY);
	CU_ASSERT_PTR_NOT_NULL(fake_ibv_mr(lkey));
	CU_ASSERT_EQUAL(vt_use("a")->mrs, 1);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_MR, mr), 0);
	CU_ASSERT_EQUAL(vt_use("a")->mrs, 0);
	fake_ibv_fail(FAKE_DEALLOC_PD, EBUSY, 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_PD, pd), EBUSY);
	CU_ASSERT_EQUAL(vt_use("a")->pds, 1);
	CU_ASSERT_EQUAL(vt_create_srq(&x, pd, 16, 0, NULL), 0); /* still a PD */
	fake_ibv_fail(FAKE_DESTROY_CQ, EBUSY, 0);
	CU_ASSERT_EQUAL(vt_destroy(&x, FF_VOBJ_CQ, cq), EBUSY);
	CU_ASSERT_EQUAL(vt_use("a")->cqs, 1);
	CU_ASSERT_EQUAL(vt_create_qp(&x, pd, cq, cq, 0, IBV_QPT_RC, NULL, NULL), 0); /* still a CQ */
	close(fd);
	vt_close(&x);
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), 0);
	vt_assert_use_zero(vt_use("a"));
	vt_down();
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"pd", test_pd},
		{"mr_zero_copy", test_mr_zero_copy},
		{"mr_across_mems", test_mr_across_mems},
		{"mr_refused", test_mr_refused},
		{"mem_rules", test_mem_rules},
		{"channel_and_cq", test_channel_and_cq},
		{"completion_reaches_the_app", test_completion_reaches_the_app},
		{"srq", test_srq},
		{"srq_index_out_of_range", test_srq_index_out_of_range},
		{"destroy_in_use", test_destroy_in_use},
		{"device_failures_take_nothing", test_device_failures_take_nothing},
		{"device_refuses_destroy", test_device_refuses_destroy},
		{0},
	};

	return cu_run("rdma_objects", tests);
}
