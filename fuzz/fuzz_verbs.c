/* libFuzzer target: a verbs context of container a (rdma/context.c,
 * objects.c, qp.c, ring.c) on the fake device: the requests on its
 * context socket, and the ring slots and indices the shim shares with the
 * router. Each input opens a context and creates a PD, a CQ, an SRQ and an
 * RC QP (moved to RTS, towards itself), each with its ring mapped here as
 * a shim maps it; then for each record:
 *   aux bit 7 clear: the record is one datagram on the context socket,
 *     with the fds aux asks for (harness.h);
 *   aux bit 7 set: [ring: u8][offset: u16 LE][bytes]: the bytes are
 *     written into ring (0 the QP's, 1 the SRQ's, 2 the CQ's) at offset
 *     (modulo its length; the header page with the indices included),
 *     and the doorbell rung.
 * Then the context is closed as an exiting app closes it, and the
 * harness's oracles follow (b untouched, no fd leaked, the loop idle:
 * an index that makes the router spin fails here). */
#include "harness.h"

#include "fdpass.h"
#include "vt.h"

#include <ff/vring.h>
#include <ff/wire.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { RING_QP, RING_SRQ, RING_CQ, NRINGS };

static struct ring {
	uint8_t *p;
	size_t len;
} rings[NRINGS];

static struct objs {
	uint32_t pd, cq, srq, qp, qpn;
} o;

static void ring_map(struct ring *r, int fd)
{
	struct stat st;

	r->p = NULL;
	r->len = 0;
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		r->p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		r->len = r->p == MAP_FAILED ? 0 : (size_t)st.st_size;
		if (r->p == MAP_FAILED)
			r->p = NULL;
	}
	close(fd);
}

static void rings_unmap(void)
{
	for (int i = 0; i < NRINGS; i++)
		if (rings[i].p)
			munmap(rings[i].p, rings[i].len);
	memset(rings, 0, sizeof(rings));
}

/* A request whose VerbsObjReply's handle it returns (0: refused); its
 * first fd is mapped into r. */
static uint32_t create(struct vt_ctx *x, Ff__Request *req, struct ring *r, uint32_t *qpn)
{
	int rfds[FF_MAX_FDS], n = 0;
	Ff__Reply *rep = vt_call(x->fd, req, NULL, 0, rfds, &n);
	uint32_t h = 0;

	if (rep && !rep->status && rep->body_case == FF__REPLY__BODY_VERBS_OBJ) {
		h = rep->verbs_obj->handle;
		if (qpn)
			*qpn = rep->verbs_obj->qp_num;
		if (r && n > 0) {
			ring_map(r, rfds[0]);
			rfds[0] = -1;
		}
	}
	ff_close_fds(rfds, n);
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	return h;
}

static void objs_new(struct vt_ctx *x)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateCq cq = FF__VERBS_CREATE_CQ__INIT;
	Ff__VerbsCreateSrq srq = FF__VERBS_CREATE_SRQ__INIT;
	Ff__VerbsCreateQp qp = FF__VERBS_CREATE_QP__INIT;
	Ff__VerbsQpCaps caps = FF__VERBS_QP_CAPS__INIT;
	uint8_t gid[16];

	memset(&o, 0, sizeof(o));
	if (vt_alloc_pd(x, &o.pd))
		return;
	cq.cqe = 32;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_CQ;
	req.verbs_create_cq = &cq;
	o.cq = create(x, &req, &rings[RING_CQ], NULL);
	srq.pd = o.pd;
	srq.max_wr = 16;
	srq.max_sge = 2;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_SRQ;
	req.verbs_create_srq = &srq;
	o.srq = create(x, &req, &rings[RING_SRQ], NULL);
	caps.max_send_wr = caps.max_recv_wr = 16;
	caps.max_send_sge = caps.max_recv_sge = 2;
	caps.max_inline_data = 64;
	qp.pd = o.pd;
	qp.send_cq = qp.recv_cq = o.cq;
	qp.qp_type = IBV_QPT_RC;
	qp.caps = &caps;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_QP;
	req.verbs_create_qp = &qp;
	o.qp = create(x, &req, &rings[RING_QP], &o.qpn);
	vt_gid_v4(gid, FH_IP_A);
	if (o.qp && !vt_qp_init(x, o.qp) && !vt_qp_rtr(x, o.qp, gid, o.qpn))
		vt_qp_rts(x, o.qp);
}

static void ring_doorbells(void)
{
	struct ffr_vctx *x;

	TAILQ_FOREACH (x, &vt_rd->ctxs, link)
		if (x->dbev)
			event_active(x->dbev, EV_READ, 0);
}

static void ring_write(const struct fh_rec *r)
{
	struct ring *g;
	size_t off;

	if (r->len < 3)
		return;
	g = &rings[r->p[0] % NRINGS];
	if (!g->p)
		return;
	off = ((size_t)r->p[1] | (size_t)r->p[2] << 8) % g->len;
	memcpy(g->p + off, r->p + 3, r->len - 3 < g->len - off ? r->len - 3 : g->len - off);
	ring_doorbells();
}

/* ---- seeds ---- */

static void seed_ring(uint8_t ring, size_t off, const void *buf, size_t len)
{
	uint8_t rec[3 + 512];

	rec[0] = ring;
	rec[1] = (uint8_t)off;
	rec[2] = (uint8_t)(off >> 8);
	memcpy(rec + 3, buf, len);
	fh_seed_rec(rec, 3 + len, 0x80);
}

static void seed_prod(uint8_t ring, size_t idx_off, uint32_t prod)
{
	seed_ring(ring, idx_off, &prod, sizeof(prod));
}

static void seeds(const char *dir)
{
	struct vt_ctx x;
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsAllocPd pd = FF__VERBS_ALLOC_PD__INIT;
	Ff__VerbsDestroy d = FF__VERBS_DESTROY__INIT;
	Ff__VerbsModifySrq ms = FF__VERBS_MODIFY_SRQ__INIT;
	Ff__VerbsQueryQp q = FF__VERBS_QUERY_QP__INIT;
	struct ff_vring_hdr *h;
	uint8_t slot[256] = {0};
	struct ff_vwqe *w = (struct ff_vwqe *)slot;
	struct ff_vrqe *rq = (struct ff_vrqe *)slot;

	fh_router_up();
	if (vt_open("a", &x))
		abort();
	objs_new(&x);
	req.id = 9;
	req.body_case = FF__REQUEST__BODY_VERBS_ALLOC_PD;
	req.verbs_alloc_pd = &pd;
	fh_seed_begin(dir, "alloc-pd", -1);
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	d.kind = FF_VOBJ_QP;
	d.handle = o.qp;
	req.body_case = FF__REQUEST__BODY_VERBS_DESTROY;
	req.verbs_destroy = &d;
	fh_seed_begin(dir, "destroy-qp", -1);
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	ms.srq = o.srq;
	ms.mask = IBV_SRQ_LIMIT;
	ms.srq_limit = 4;
	req.body_case = FF__REQUEST__BODY_VERBS_MODIFY_SRQ;
	req.verbs_modify_srq = &ms;
	fh_seed_begin(dir, "modify-srq", -1);
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	q.qp = o.qp;
	q.mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_DEST_QPN;
	req.body_case = FF__REQUEST__BODY_VERBS_QUERY_QP;
	req.verbs_query_qp = &q;
	fh_seed_begin(dir, "query-qp", -1);
	fh_seed_msg(&req.base, 0);
	fh_seed_end();
	/* one slot and its producer index on each work ring */
	h = (struct ff_vring_hdr *)rings[RING_QP].p;
	w->wr_id = 7;
	w->opcode = IBV_WR_SEND;
	w->num_sge = 1;
	w->send_flags = IBV_SEND_SIGNALED;
	w->sge[0].addr = 0x1000;
	w->sge[0].length = 64;
	fh_seed_begin(dir, "ring-send", -1);
	seed_ring(RING_QP, h->sq.off, slot, h->sq.stride);
	seed_prod(RING_QP, offsetof(struct ff_vring_hdr, sqi.prod), 1);
	fh_seed_end();
	memset(slot, 0, sizeof(slot));
	rq->wr_id = 8;
	rq->num_sge = 1;
	rq->sge[0].length = 64;
	fh_seed_begin(dir, "ring-recv", -1);
	seed_ring(RING_QP, h->rq.off, slot, h->rq.stride);
	seed_prod(RING_QP, offsetof(struct ff_vring_hdr, rqi.prod), 1);
	fh_seed_end();
	h = (struct ff_vring_hdr *)rings[RING_SRQ].p;
	fh_seed_begin(dir, "ring-srq", -1);
	seed_ring(RING_SRQ, h->rq.off, slot, h->rq.stride);
	seed_prod(RING_SRQ, offsetof(struct ff_vring_hdr, rqi.prod), 1);
	fh_seed_end();
	h = (struct ff_vring_hdr *)rings[RING_CQ].p;
	fh_seed_begin(dir, "ring-cq-arm", -1);
	seed_prod(RING_CQ, offsetof(struct ff_vring_hdr, cqi.arm_seq), 1);
	fh_seed_end();
}

const struct fh_target fh_target = {.seeds = seeds, .keep_b = true};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh_in in = {data, size};
	struct fh_rec r;
	struct vt_ctx x;

	fh_begin();
	if (vt_open("a", &x))
		abort();
	objs_new(&x);
	while (fh_next(&in, &r)) {
		if (r.aux & 0x80)
			ring_write(&r);
		else
			fh_send_rec(x.fd, &r);
		fh_settle();
		fh_drain(x.fd);
	}
	rings_unmap();
	vt_close(&x);
	fh_end();
	return 0;
}
