/* ffverbs forge FILE: a container that does not use the shim but speaks
 * the router's protocol itself (proto/ff.proto, encoded by hand here: this
 * program links libibverbs only). It opens a verbs context on its
 * container socket (FFNET_SOCK) and sends what no shim would:
 *   - requests naming the handles of another container's context (FILE,
 *     written by `ffverbs hold`), and its own handle that has the same
 *     number as the other's;
 *   - memory it does not own or that is not a sealable memfd, ranges that
 *     wrap, overlap or overrun, MRs outside the memory handed over;
 *   - absurd queue sizes, QP types, attributes and address vectors;
 *   - malformed ring slots and ring indices, with the doorbell rung;
 *   - fds where none belong, non-verbs requests, malformed datagrams,
 *     until the router closes the context;
 *   - memfds until the quota refuses them.
 * Each must be refused (or end in an error completion) and the router must
 * keep serving. */
#include "ffverbs-wire.h"
#include "ffverbs.h"

#include <ff/vring.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MEM_BASE 0x600000000000ULL /* addresses we claim: nothing of ours is there */

/* ---- opening ---- */

struct forge {
	struct ffv_victim v;
	int ch;		 /* the container socket */
	int ctx, async;	 /* the current verbs context */
	int db;		 /* its doorbell */
	uint8_t gid[16]; /* this container's virtual GID */
};

static void channel_open(struct forge *f)
{
	const char *path = getenv("FFNET_SOCK");
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct pb *h = fw_msg();
	struct reply r;

	FFV_CHECK(path && strlen(path) < sizeof(sun.sun_path), "FFNET_SOCK is not set");
	strcpy(sun.sun_path, path);
	f->ch = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	FFV_CHECK(f->ch >= 0 && !connect(f->ch, (struct sockaddr *)&sun, sizeof(sun)),
		  "connect %s: %s", path, strerror(errno));
	pb_u(h, 1, PROTO_VERSION);
	pb_bytes(h, 3, "shim", 4);
	fw_accepted(f->ch, "Hello", B_HELLO, h, NULL, 0, &r);
	fw_close_fds(&r);
}

static void ctx_open(struct forge *f)
{
	struct reply r;

	fw_accepted(f->ch, "VerbsOpen", B_VOPEN, fw_msg(), NULL, 0, &r);
	FFV_CHECK(r.nfds == 2, "VerbsOpen brought %d fds", r.nfds);
	f->ctx = r.fds[0];
	f->async = r.fds[1];
	memcpy(f->gid, r.gid4, 16);
	FFV_CHECK(f->gid[10] == 0xff, "no IPv4 GID in the VerbsOpen reply");
	fw_accepted(f->ctx, "VerbsCtxInit", B_CTX_INIT, fw_msg(), NULL, 0, &r);
	FFV_CHECK(r.nfds == 1, "VerbsCtxInit brought %d fds", r.nfds);
	f->db = r.fds[0];
}

static void ctx_close(struct forge *f)
{
	close(f->ctx);
	close(f->async);
	close(f->db);
	f->ctx = f->async = f->db = -1;
}

static uint32_t new_obj(struct forge *f, const char *what, unsigned body, const struct pb *m,
			int *fd)
{
	struct reply r;

	fw_accepted(f->ctx, what, body, m, NULL, 0, &r);
	if (fd) {
		FFV_CHECK(r.nfds == 1, "%s brought %d fds", what, r.nfds);
		*fd = r.fds[0];
	} else {
		fw_close_fds(&r);
	}
	return (uint32_t)r.obj[1];
}

/* ---- the attacks ---- */

static void forge_handles(struct forge *f)
{
	const struct ffv_victim *v = &f->v;
	struct qp_caps c = {1, 1, 1, 1, 0};
	uint32_t pd;

	fw_refused(f->ctx, "destroy a's PD by its handle", B_DESTROY, m_two(FF_VOBJ_PD, v->pd),
		   NULL, 0, EINVAL);
	fw_refused(f->ctx, "destroy a's MR by its handle", B_DESTROY, m_two(FF_VOBJ_MR, v->mr),
		   NULL, 0, EINVAL);
	fw_refused(f->ctx, "destroy a's CQ by its handle", B_DESTROY, m_two(FF_VOBJ_CQ, v->cq),
		   NULL, 0, EINVAL);
	fw_refused(f->ctx, "destroy a's QP by its handle", B_DESTROY, m_two(FF_VOBJ_QP, v->qp),
		   NULL, 0, EINVAL);
	fw_refused(f->ctx, "reg_mr on a's PD and a's buffer", B_REG_MR,
		   m_reg_mr(v->pd, v->addr, v->len, IBV_ACCESS_LOCAL_WRITE), NULL, 0, EINVAL);
	fw_refused(f->ctx, "create_qp on a's PD and CQ", B_CREATE_QP,
		   m_qp(v->pd, v->cq, 0, IBV_QPT_RC, &c), NULL, 0, EINVAL);
	fw_refused(f->ctx, "query_qp of a's QP", B_QUERY_QP, m_two(v->qp, 0x1fffff), NULL, 0,
		   EINVAL);
	fw_refused(f->ctx, "modify_qp of a's QP to ERR", B_MODIFY_QP,
		   m_modify(v->qp, a_one(IBV_QP_STATE, 2, IBV_QPS_ERR)), NULL, 0, EINVAL);
	pd = new_obj(f, "alloc_pd", B_ALLOC_PD, fw_msg(), NULL);
	fw_refused(f->ctx, "reg_mr of a's buffer on b's own PD", B_REG_MR,
		   m_reg_mr(pd, v->addr, v->len, IBV_ACCESS_LOCAL_WRITE), NULL, 0, EFAULT);
	if (pd == v->pd) {
		struct reply r;

		fw_accepted(f->ctx, "destroy PD by a's PD handle number", B_DESTROY,
			    m_two(FF_VOBJ_PD, v->pd), NULL, 0, &r);
		ffv_ok("b's own first PD has handle %u, the number of a's PD: destroying it "
		       "destroyed b's own (a's is checked by hold)",
		       pd);
	} else {
		ffv_ok("b's own first PD has handle %u, a's has %u", pd, v->pd);
	}
}

static int new_memfd(uint64_t len, unsigned flags)
{
	int fd = memfd_create("forge", MFD_CLOEXEC | flags);

	FFV_CHECK(fd >= 0 && !ftruncate(fd, (off_t)len), "memfd %llu: %s", (unsigned long long)len,
		  strerror(errno));
	return fd;
}

static void forge_mem_fds(struct forge *f)
{
	int p[2], fd;

	FFV_CHECK(!pipe2(p, O_CLOEXEC), "pipe: %s", strerror(errno));
	fw_refused(f->ctx, "mem_add of a pipe", B_MEM_ADD, m_mem(MEM_BASE, 4096, false), &p[1], 1,
		   EBADF);
	close(p[0]);
	close(p[1]);
	fd = new_memfd(4096, 0);
	fw_refused(f->ctx, "mem_add of a memfd that cannot be sealed", B_MEM_ADD,
		   m_mem(MEM_BASE, 4096, false), &fd, 1, EPERM);
	close(fd);
	fd = new_memfd(4096, MFD_ALLOW_SEALING);
	fw_refused(f->ctx, "mem_add of 2 pages backed by a 1-page memfd", B_MEM_ADD,
		   m_mem(MEM_BASE, 8192, false), &fd, 1, EINVAL);
	fw_refused(f->ctx, "mem_add at an unaligned address", B_MEM_ADD,
		   m_mem(MEM_BASE + 1, 4096, false), &fd, 1, EINVAL);
	fw_refused(f->ctx, "mem_add of 0 bytes", B_MEM_ADD, m_mem(MEM_BASE, 0, false), &fd, 1,
		   EINVAL);
	fw_refused(f->ctx, "mem_add wrapping around the address space", B_MEM_ADD,
		   m_mem(0xfffffffffffff000ULL, 8192, false), &fd, 1, EINVAL);
	fw_refused(f->ctx, "mem_add without its memfd", B_MEM_ADD, m_mem(MEM_BASE, 4096, false),
		   NULL, 0, EINVAL);
	close(fd);
	fd = new_memfd(1ULL << 40, MFD_ALLOW_SEALING);
	fw_refused(f->ctx, "mem_add of 1 TiB", B_MEM_ADD, m_mem(MEM_BASE, 1ULL << 40, false), &fd,
		   1, ENOBUFS);
	close(fd);
}

static void forge_mrs(struct forge *f)
{
	uint32_t pd = new_obj(f, "alloc_pd", B_ALLOC_PD, fw_msg(), NULL);
	int fd = new_memfd(8192, MFD_ALLOW_SEALING), fd2;
	struct reply r;

	fw_accepted(f->ctx, "mem_add of 2 pages", B_MEM_ADD, m_mem(MEM_BASE, 8192, false), &fd, 1,
		    &r);
	FFV_CHECK(ftruncate(fd, 0) < 0 && errno == EPERM,
		  "the memfd the router maps can still shrink (%s)", strerror(errno));
	ffv_ok("the router sealed the memfd it maps: ftruncate -> EPERM");
	close(fd);
	fw_refused(f->ctx, "reg_mr running past the memory handed over", B_REG_MR,
		   m_reg_mr(pd, MEM_BASE + 4096, 8192, IBV_ACCESS_LOCAL_WRITE), NULL, 0, EFAULT);
	fw_refused(f->ctx, "reg_mr with unknown access bits", B_REG_MR,
		   m_reg_mr(pd, MEM_BASE, 4096, 0x80000000u), NULL, 0, EINVAL);
	fw_refused(f->ctx, "reg_mr of 0 bytes", B_REG_MR, m_reg_mr(pd, MEM_BASE, 0, 0), NULL, 0,
		   EINVAL);
	fw_refused(f->ctx, "reg_mr wrapping around the address space", B_REG_MR,
		   m_reg_mr(pd, 0xfffffffffffff000ULL, 8192, 0), NULL, 0, EINVAL);
	fw_refused(f->ctx, "reg_mr ending in the last page of the address space", B_REG_MR,
		   m_reg_mr(pd, 0xfffffffffffff001ULL, 0xffe, 0), NULL, 0, EINVAL);
	fw_accepted(f->ctx, "reg_mr inside the memory handed over", B_REG_MR,
		    m_reg_mr(pd, MEM_BASE + 4096, 4096, IBV_ACCESS_LOCAL_WRITE), NULL, 0, &r);
	ffv_ok("reg_mr inside b's own memfd: lkey 0x%llx", (unsigned long long)r.obj[2]);
	fd2 = new_memfd(8192, MFD_ALLOW_SEALING);
	fw_refused(f->ctx, "mem_add overlapping memory handed over", B_MEM_ADD,
		   m_mem(MEM_BASE + 4096, 8192, false), &fd2, 1, EEXIST);
	close(fd2);
	fw_refused(f->ctx, "mem_add remove with the wrong length", B_MEM_ADD,
		   m_mem(MEM_BASE, 4096, true), NULL, 0, ENOENT);
	fw_refused(f->ctx, "destroy PD with an MR on it", B_DESTROY, m_two(FF_VOBJ_PD, pd), NULL, 0,
		   EBUSY);
}

static void forge_queues(struct forge *f)
{
	static const uint8_t nobody[16] = {[10] = 0xff, [11] = 0xff, 10, 78, 0, 99};
	static const uint8_t mc[16] = {0xff, 0x02, [15] = 1};
	struct qp_caps c = {4, 4, 1, 1, 0}, big = {1u << 30, 4, 1, 1, 0}, sge = {4, 4, 1000, 1, 0},
		       inl = {4, 4, 1, 1, 1u << 20};
	uint32_t pd = new_obj(f, "alloc_pd", B_ALLOC_PD, fw_msg(), NULL);
	uint32_t cq, qp;
	struct reply r;
	int fd;

	fw_refused(f->ctx, "create_cq of 0 entries", B_CREATE_CQ, m_cq(0, 0), NULL, 0, EINVAL);
	fw_refused(f->ctx, "create_cq of 2^30 entries", B_CREATE_CQ, m_cq(1u << 30, 0), NULL, 0,
		   EINVAL);
	fw_refused(f->ctx, "create_cq on a made-up channel", B_CREATE_CQ, m_cq(16, 0x12345), NULL,
		   0, EINVAL);
	cq = new_obj(f, "create_cq", B_CREATE_CQ, m_cq(16, 0), &fd);
	close(fd);
	fw_refused(f->ctx, "create_qp without caps", B_CREATE_QP, m_qp(pd, cq, 0, IBV_QPT_RC, NULL),
		   NULL, 0, EINVAL);
	fw_refused(f->ctx, "create_qp of 2^30 send WRs", B_CREATE_QP,
		   m_qp(pd, cq, 0, IBV_QPT_RC, &big), NULL, 0, EINVAL);
	fw_refused(f->ctx, "create_qp of 1000 SGEs", B_CREATE_QP, m_qp(pd, cq, 0, IBV_QPT_RC, &sge),
		   NULL, 0, EINVAL);
	fw_refused(f->ctx, "create_qp of 1 MiB inline", B_CREATE_QP,
		   m_qp(pd, cq, 0, IBV_QPT_RC, &inl), NULL, 0, EINVAL);
	fw_refused(f->ctx, "create_qp of type UD", B_CREATE_QP, m_qp(pd, cq, 0, IBV_QPT_UD, &c),
		   NULL, 0, EOPNOTSUPP);
	fw_refused(f->ctx, "create_qp of type 1000", B_CREATE_QP, m_qp(pd, cq, 0, 1000, &c), NULL,
		   0, EOPNOTSUPP);
	fw_refused(f->ctx, "create_qp on a made-up SRQ", B_CREATE_QP,
		   m_qp(pd, cq, 0x777, IBV_QPT_RC, &c), NULL, 0, EINVAL);
	qp = new_obj(f, "create_qp", B_CREATE_QP, m_qp(pd, cq, 0, IBV_QPT_RC, &c), &fd);
	close(fd);
	fw_refused(f->ctx, "modify_qp with an alternate path", B_MODIFY_QP,
		   m_modify(qp, a_one(IBV_QP_ALT_PATH, 2, 0)), NULL, 0, EOPNOTSUPP);
	fw_refused(f->ctx, "modify_qp to port 2", B_MODIFY_QP,
		   m_modify(qp, a_one(IBV_QP_STATE | IBV_QP_PORT, 19, 2)), NULL, 0, EINVAL);
	fw_refused(f->ctx, "modify_qp to P_Key index 5", B_MODIFY_QP,
		   m_modify(qp, a_one(IBV_QP_STATE | IBV_QP_PKEY_INDEX, 13, 5)), NULL, 0, EINVAL);
	fw_refused(f->ctx, "modify_qp with a 3-byte GID", B_MODIFY_QP,
		   m_modify(qp, a_rtr(m_ah(f->gid, 3, true, 1), qp)), NULL, 0, EINVAL);
	fw_refused(f->ctx, "modify_qp with a non-global AV", B_MODIFY_QP,
		   m_modify(qp, a_rtr(m_ah(f->gid, 16, false, 1), qp)), NULL, 0, EINVAL);
	fw_refused(f->ctx, "modify_qp to a multicast GID", B_MODIFY_QP,
		   m_modify(qp, a_rtr(m_ah(mc, 16, true, 1), qp)), NULL, 0, EINVAL);
	fw_refused(f->ctx, "modify_qp to a GID no container owns", B_MODIFY_QP,
		   m_modify(qp, a_rtr(m_ah(nobody, 16, true, 1), qp)), NULL, 0, EHOSTUNREACH);
	fw_refused(f->ctx, "modify_qp to a's QP under b's GID", B_MODIFY_QP,
		   m_modify(qp, a_rtr(m_ah(f->gid, 16, true, 1), f->v.qpn)), NULL, 0, EINVAL);
	fw_refused(f->ctx, "destroy with kind 99", B_DESTROY, m_two(99, qp), NULL, 0, EINVAL);
	fw_refused(f->ctx, "destroy a CQ a QP uses", B_DESTROY, m_two(FF_VOBJ_CQ, cq), NULL, 0,
		   EBUSY);
	fw_refused(f->ctx, "create_srq of 0 WRs", B_CREATE_SRQ, m_two(pd, 0), NULL, 0, EINVAL);
	fw_refused(f->ctx, "modify_srq of a made-up SRQ", B_MODIFY_SRQ, m_two(0x4242, 0), NULL, 0,
		   EINVAL);
	/* the refused requests named the PD and the CQ: they hold no reference */
	fw_accepted(f->ctx, "destroy QP", B_DESTROY, m_two(FF_VOBJ_QP, qp), NULL, 0, &r);
	fw_accepted(f->ctx, "destroy CQ", B_DESTROY, m_two(FF_VOBJ_CQ, cq), NULL, 0, &r);
	fw_accepted(f->ctx, "destroy PD", B_DESTROY, m_two(FF_VOBJ_PD, pd), NULL, 0, &r);
	ffv_ok("refused requests left no reference behind: the QP, CQ and PD they named go");
}

/* ---- rings ---- */

struct ring {
	struct ff_vring_hdr *h;
	size_t len;
};

static void ring_map(int fd, struct ring *rg)
{
	struct stat st;

	FFV_CHECK(!fstat(fd, &st), "fstat: %s", strerror(errno));
	rg->len = (size_t)st.st_size;
	rg->h = mmap(NULL, rg->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	FFV_CHECK(rg->h != MAP_FAILED, "mmap ring: %s", strerror(errno));
	close(fd);
}

static void doorbell(struct forge *f)
{
	uint64_t one = 1;

	FFV_CHECK(write(f->db, &one, sizeof(one)) == sizeof(one), "doorbell: %s", strerror(errno));
}

/* The next completion of the CQ ring. */
static struct ff_vcqe cqe_next(struct ring *cq, uint32_t *cons, const char *what)
{
	struct ff_vcqe e;

	for (int i = 0; i < FFV_TIMEOUT_MS / 10; i++) {
		if (__atomic_load_n(&cq->h->cqi.prod, __ATOMIC_ACQUIRE) != *cons) {
			memcpy(&e, FF_VRING_SLOT(cq->h, &cq->h->cq, *cons), sizeof(e));
			++*cons;
			__atomic_store_n(&cq->h->cqi.cons, *cons, __ATOMIC_RELEASE);
			return e;
		}
		usleep(10000);
	}
	ffv_fail("no error completion for %s", what);
}

static uint32_t ring_qp(struct forge *f, uint32_t pd, uint32_t cq, struct ring *rg, uint32_t *qpn)
{
	struct qp_caps c = {4, 4, 1, 1, 0};
	struct reply r;
	uint32_t h;

	fw_accepted(f->ctx, "create_qp", B_CREATE_QP, m_qp(pd, cq, 0, IBV_QPT_RC, &c), NULL, 0, &r);
	FFV_CHECK(r.nfds == 1, "create_qp brought %d fds", r.nfds);
	ring_map(r.fds[0], rg);
	*qpn = (uint32_t)r.obj[4];
	h = (uint32_t)r.obj[1];
	fw_accepted(f->ctx, "modify_qp to INIT", B_MODIFY_QP, m_modify(h, a_init()), NULL, 0, &r);
	return h;
}

static void check_err_cqe(const struct ff_vcqe *e, uint64_t wr_id, uint32_t qpn, const char *what)
{
	FFV_CHECK(e->wr_id == wr_id && e->status == IBV_WC_LOC_QP_OP_ERR && e->qp_num == qpn,
		  "%s: completion wr %llu status %u qp 0x%x", what, (unsigned long long)e->wr_id,
		  e->status, e->qp_num);
	ffv_ok("%s: error completion %s on QP 0x%x", what,
	       ibv_wc_status_str((enum ibv_wc_status)e->status), qpn);
}

static void forge_rings(struct forge *f)
{
	uint32_t pd = new_obj(f, "alloc_pd", B_ALLOC_PD, fw_msg(), NULL), cqh, qpn, h, cons = 0;
	struct ring cq, q1, q2, q3;
	struct ff_vrqe *rq;
	struct ff_vwqe *sq;
	struct ff_vcqe e;
	struct reply r;
	int fd;

	cqh = new_obj(f, "create_cq", B_CREATE_CQ, m_cq(16, 0), &fd);
	ring_map(fd, &cq);
	/* a receive slot with 1000 SGEs */
	ring_qp(f, pd, cqh, &q1, &qpn);
	rq = FF_VRING_SLOT(q1.h, &q1.h->rq, 0);
	rq->wr_id = 0x4242;
	rq->num_sge = 1000;
	__atomic_store_n(&q1.h->rqi.prod, 1, __ATOMIC_RELEASE);
	doorbell(f);
	e = cqe_next(&cq, &cons, "a receive slot with 1000 SGEs");
	check_err_cqe(&e, 0x4242, qpn, "a receive slot with 1000 SGEs");
	/* a producer index far beyond the ring */
	ring_qp(f, pd, cqh, &q2, &qpn);
	__atomic_store_n(&q2.h->rqi.prod, 100000, __ATOMIC_RELEASE);
	doorbell(f);
	e = cqe_next(&cq, &cons, "a receive index beyond the ring");
	check_err_cqe(&e, 0, qpn, "a receive producer index 100000 slots ahead");
	/* a send slot with opcode 200, on a QP in RTS (connected to itself) */
	h = ring_qp(f, pd, cqh, &q3, &qpn);
	fw_accepted(f->ctx, "modify_qp to RTR", B_MODIFY_QP,
		    m_modify(h, a_rtr(m_ah(f->gid, 16, true, 1), qpn)), NULL, 0, &r);
	fw_accepted(f->ctx, "modify_qp to RTS", B_MODIFY_QP, m_modify(h, a_rts()), NULL, 0, &r);
	sq = FF_VRING_SLOT(q3.h, &q3.h->sq, 0);
	memset(sq, 0, sizeof(*sq));
	sq->wr_id = 0x5151;
	sq->opcode = 200;
	__atomic_store_n(&q3.h->sqi.prod, 1, __ATOMIC_RELEASE);
	doorbell(f);
	e = cqe_next(&cq, &cons, "a send slot with opcode 200");
	check_err_cqe(&e, 0x5151, qpn, "a send slot with opcode 200");
}

/* ---- fds and malformed datagrams ---- */

/* The router must close an fd it refuses: then the pipe has no reader. */
static void forge_fds(struct forge *f)
{
	int p[2], q[2], fds[2];
	char c = 'x';

	FFV_CHECK(!pipe2(p, O_CLOEXEC) && !pipe2(q, O_CLOEXEC), "pipe: %s", strerror(errno));
	fw_refused(f->ctx, "alloc_pd carrying an fd", B_ALLOC_PD, fw_msg(), p, 1, EINVAL);
	fds[0] = p[0];
	fds[1] = q[0];
	fw_refused(f->ctx, "mem_add carrying 2 fds", B_MEM_ADD,
		   m_mem(MEM_BASE + 65536, 4096, false), fds, 2, EINVAL);
	close(p[0]);
	close(q[0]);
	FFV_CHECK(write(p[1], &c, 1) < 0 && errno == EPIPE && write(q[1], &c, 1) < 0 &&
		      errno == EPIPE,
		  "the router kept an fd it refused");
	ffv_ok("the router closed every fd it refused");
	close(p[1]);
	close(q[1]);
}

/* Requests that are not verbs requests, then garbage until the router
 * closes the context. Returns how many bad datagrams that took. */
static int forge_garbage(struct forge *f)
{
	static uint8_t big[9000];
	uint8_t junk[64];
	struct reply r;
	struct pb *h = fw_msg();
	int n = 0;

	pb_u(h, 1, PROTO_VERSION);
	fw_refused(f->ctx, "Hello on a context socket", B_HELLO, h, NULL, 0, EINVAL);
	fw_refused(f->ctx, "VerbsOpen on a context socket", B_VOPEN, fw_msg(), NULL, 0, EINVAL);
	n = 3; /* these two, and alloc_pd carrying an fd */
	big[0] = FRAME;
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	for (int i = 0; i < 40; i++) {
		int err = i % 3 == 0   ? fw_send_raw(f->ctx, big, sizeof(big), NULL, 0)
			  : i % 3 == 1 ? fw_send_raw(f->ctx, junk, sizeof(junk), NULL, 0)
				       : fw_send_raw(f->ctx, "\xf1\xff\xff\xff", 4, NULL, 0);

		if (err == -EPIPE || err == -ECONNRESET)
			break;
		FFV_CHECK(!err, "send: %s", strerror(-err));
		if (!fw_recv(f->ctx, &r))
			break;
		n++;
		FFV_CHECK(r.status != 0, "garbage was accepted");
		fw_close_fds(&r);
	}
	FFV_CHECK(fw_recv(f->ctx, &r) == 0, "the router keeps a context that sent %d bad messages",
		  n);
	return n;
}

/* memfds until the router says no. */
static void forge_flood(struct forge *f)
{
	struct reply r;
	int i, fd;

	for (i = 0; i < 100000; i++) {
		fd = new_memfd(4096, MFD_ALLOW_SEALING);
		fw_call(f->ctx, B_MEM_ADD, m_mem(MEM_BASE + (uint64_t)i * 8192, 4096, false), &fd,
			1, &r);
		close(fd);
		if (r.status)
			break;
	}
	FFV_CHECK(r.status && r.obj[10] == ENOBUFS, "memfd %d refused with %s (%s)", i,
		  r.obj[10] ? strerror((int)r.obj[10]) : fw_status_str(r.status), r.error);
	ffv_ok("memfd flood: %d accepted, then ENOBUFS", i);
}

/* Contexts until the quota says no; then all of them go. */
static void forge_contexts(struct forge *f)
{
	static int fds[1024];
	struct reply r;
	int n = 0;

	for (;;) {
		fw_call(f->ch, B_VOPEN, fw_msg(), NULL, 0, &r);
		if (r.status)
			break;
		FFV_CHECK(r.nfds == 2 && n + 2 <= (int)(sizeof(fds) / sizeof(fds[0])),
			  "VerbsOpen %d brought %d fds", n, r.nfds);
		fds[n++] = r.fds[0];
		fds[n++] = r.fds[1];
	}
	FFV_CHECK(r.status == 8 && n >= 2, "context %d refused with %s (%s)", n / 2,
		  fw_status_str(r.status), r.error);
	ffv_ok("context flood: %d opened, then %s", n / 2, fw_status_str(r.status));
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

int ffv_forge(const char *file)
{
	struct forge f = {.ctx = -1, .async = -1, .db = -1};
	int n;

	signal(SIGPIPE, SIG_IGN);
	ffv_victim_read(file, &f.v);
	channel_open(&f);
	ctx_open(&f);
	forge_handles(&f);
	forge_mem_fds(&f);
	forge_mrs(&f);
	forge_queues(&f);
	forge_rings(&f);
	forge_fds(&f);
	n = forge_garbage(&f);
	ffv_ok("the router closed the context after %d bad messages", n);
	ctx_close(&f);
	ctx_open(&f);
	ffv_ok("a new context on the same container socket opens");
	forge_flood(&f);
	ctx_close(&f);
	forge_contexts(&f);
	close(f.ch);
	ffv_ok("all forged requests refused");
	return 0;
}
