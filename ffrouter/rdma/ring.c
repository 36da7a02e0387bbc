/* The verbs data path: work requests the shim queued in QP and SRQ rings
 * go to the device in batches; completions go from the device's CQs into
 * the CQ rings; armed CQs signal their completion channel.
 * Invariants: a ring slot is copied out of shared memory before it is
 * checked and used (the app may change it under us); the router never
 * reads a slot beyond its own consumer index plus the ring size; a bad slot
 * becomes an error completion and marks the QP broken, never a crash.
 * Completion queues are drained poll -> arm -> poll.
 * Busy polling: data-path work makes the router "hot" for poll_ns; while hot
 * the main loop calls ffr_rdma_poll between non-blocking event-loop turns,
 * the rings are not armed (so the shims ring no doorbell) and completion
 * queues are not re-armed (so the device raises no events); going cold arms
 * everything and looks once more. On a machine where waking a sleeping
 * thread costs tens of microseconds, each wake-up on the data path would
 * otherwise cost more than the operation itself. */
#include "internal.h"

#include "log.h"

#include <ff/vwire.h>

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define RUN_PASSES 64

_Static_assert(sizeof(struct ff_vsge) == sizeof(struct ibv_sge) &&
		       offsetof(struct ff_vsge, lkey) == offsetof(struct ibv_sge, lkey),
	       "ff_vsge must be laid out as ibv_sge");

#define SEND_FLAGS (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE)

/* One router thread: scratch space for a batch. */
static struct ibv_sge sg_buf[BATCH][FF_VRING_MAX_SGE];

static enum ibv_wc_opcode wc_opcode(int wr_opcode)
{
	switch (wr_opcode) {
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return IBV_WC_RDMA_WRITE;
	case IBV_WR_RDMA_READ:
		return IBV_WC_RDMA_READ;
	case IBV_WR_ATOMIC_CMP_AND_SWP:
		return IBV_WC_COMP_SWAP;
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		return IBV_WC_FETCH_ADD;
	default:
		return IBV_WC_SEND;
	}
}

/* ---- completions ---- */

static void cq_notify(struct ffr_vcq *q)
{
	struct ff_vcq_event ev = {.cookie = q->cookie};
	uint32_t arm;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	arm = __atomic_load_n(&q->ring.hdr->cqi.arm_seq, __ATOMIC_ACQUIRE);
	if (!q->ch || arm == q->arm_done)
		return;
	q->arm_done = arm;
	if (send(q->ch->fd, &ev, sizeof(ev), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		ff_dbg("verbs: completion event dropped: %s", strerror(errno));
}

static uint32_t cq_room(struct ffr_vcq *q)
{
	uint32_t cons = __atomic_load_n(&q->ring.hdr->cqi.cons, __ATOMIC_ACQUIRE);
	uint32_t used = q->prod - cons;

	return used > q->ring.cq.size ? 0 : q->ring.cq.size - used;
}

static void cqe_put(struct ffr_vcq *q, const struct ibv_wc *wc)
{
	struct ff_vcqe *e = FF_VRING_SLOT(q->ring.hdr, &q->ring.cq, q->prod);

	e->wr_id = wc->wr_id;
	e->status = wc->status;
	e->opcode = wc->opcode;
	e->vendor_err = wc->vendor_err;
	e->byte_len = wc->byte_len;
	e->imm_data = wc->imm_data;
	e->qp_num = wc->qp_num;
	e->src_qp = wc->src_qp;
	e->wc_flags = wc->wc_flags;
	e->pkey_index = wc->pkey_index;
	e->slid = wc->slid;
	e->sl = wc->sl;
	e->dlid_path_bits = wc->dlid_path_bits;
	q->prod++;
	q->cqes++;
}

uint32_t ffr_vcq_drain(struct ffr_vcq *q)
{
	struct ibv_wc wc[BATCH];
	uint32_t added = 0, room;
	int n;

	for (;;) {
		room = cq_room(q);
		if (!room) {
			/* the shim rings the doorbell when it makes room */
			__atomic_store_n(&q->ring.hdr->cqi.need_db, 1, __ATOMIC_SEQ_CST);
			room = cq_room(q);
			if (!room) {
				q->stalled = true;
				break;
			}
		}
		q->stalled = false;
		n = ibv_poll_cq(q->cq, room < BATCH ? (int)room : BATCH, wc);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++)
			cqe_put(q, &wc[i]);
		__atomic_store_n(&q->ring.hdr->cqi.prod, q->prod, __ATOMIC_RELEASE);
		added += (uint32_t)n;
	}
	if (added)
		cq_notify(q);
	return added;
}

void ffr_vcq_push_err(struct ffr_vcq *q, uint64_t wr_id, uint32_t qpn, int opcode, int status)
{
	struct ibv_wc wc = {.wr_id = wr_id, .status = status, .opcode = opcode, .qp_num = qpn};

	if (!cq_room(q)) {
		ff_warn("verbs %s: CQ ring full, error completion of wr %llu lost", q->o.x->name,
			(unsigned long long)wr_id);
		return;
	}
	cqe_put(q, &wc);
	__atomic_store_n(&q->ring.hdr->cqi.prod, q->prod, __ATOMIC_RELEASE);
	cq_notify(q);
}

/* ---- work requests ---- */

/* Slot idx of the send queue as a work request (sg: its gather list). */
static int wqe_take(const struct ffr_vqp *q, uint32_t idx, struct ibv_send_wr *wr,
		    struct ibv_sge *sg)
{
	const struct ff_vq_geom *g = &q->ring.sq;
	const uint8_t *slot = FF_VRING_SLOT(q->ring.hdr, g, idx);
	struct ff_vwqe w;

	memcpy(&w, slot, sizeof(w));
	memset(wr, 0, sizeof(*wr));
	wr->wr_id = w.wr_id;
	if (!ff_vwr_opcode_ok(w.opcode, q->qp_type) || (w.send_flags & ~SEND_FLAGS))
		return -EINVAL;
	wr->opcode = w.opcode;
	wr->send_flags = w.send_flags;
	wr->imm_data = w.imm_data;
	if (w.opcode == IBV_WR_ATOMIC_CMP_AND_SWP || w.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		wr->wr.atomic.remote_addr = w.remote_addr;
		wr->wr.atomic.rkey = w.rkey;
		wr->wr.atomic.compare_add = w.compare_add;
		wr->wr.atomic.swap = w.swap;
	} else {
		wr->wr.rdma.remote_addr = w.remote_addr;
		wr->wr.rdma.rkey = w.rkey;
	}
	wr->sg_list = sg;
	if (w.send_flags & IBV_SEND_INLINE) {
		if (w.inline_len > g->max_inline || w.opcode == IBV_WR_RDMA_READ ||
		    w.opcode == IBV_WR_ATOMIC_CMP_AND_SWP || w.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD)
			return -EINVAL;
		sg[0].addr = (uintptr_t)(slot + sizeof(w) + g->max_sge * sizeof(struct ff_vsge));
		sg[0].length = w.inline_len;
		sg[0].lkey = 0;
		wr->num_sge = w.inline_len ? 1 : 0;
		return 0;
	}
	if (w.num_sge > g->max_sge)
		return -EINVAL;
	memcpy(sg, slot + sizeof(w), w.num_sge * sizeof(*sg));
	wr->num_sge = w.num_sge;
	return 0;
}

static void qp_broken(struct ffr_vqp *q, const char *why)
{
	if (!q->broken)
		ff_warn("verbs %s: QP %u: %s; no more work is taken from it", q->o.x->name,
			q->qpn, why);
	q->broken = true;
	q->o.x->rd->bad_wqes++;
}

static bool sq_ready(const struct ffr_vqp *q)
{
	return q->ring.sq.size && !q->broken && !q->sq_full && q->state >= IBV_QPS_RTS;
}

/* Posts up to one batch; returns how many slots it consumed. */
static int sq_batch(struct ffr_vqp *q, uint32_t prod)
{
	struct ibv_send_wr wr[BATCH], *bad = NULL;
	int n = 0, posted, ret = 0, bad_slot = 0;

	while (n < BATCH && q->sq_cons + (uint32_t)n != prod) {
		if (wqe_take(q, q->sq_cons + (uint32_t)n, &wr[n], sg_buf[n]) < 0) {
			bad_slot = 1;
			break;
		}
		wr[n].next = NULL;
		if (n)
			wr[n - 1].next = &wr[n];
		n++;
	}
	if (n)
		ret = ibv_post_send(q->qp, wr, &bad);
	posted = ret ? (int)(bad - wr) : n;
	q->sq_cons += (uint32_t)posted;
	q->posted += (uint64_t)posted;
	if (ret == ENOMEM) {
		q->sq_full = true;
	} else if (ret || bad_slot) {
		struct ibv_send_wr *e = ret ? bad : &wr[n];

		ffr_vcq_push_err(q->scq, e->wr_id, q->qpn, wc_opcode(e->opcode),
				 IBV_WC_LOC_QP_OP_ERR);
		qp_broken(q, ret ? "the device refused a work request" : "malformed send slot");
	}
	return posted;
}

static int sq_run(struct ffr_vqp *q)
{
	uint32_t prod;
	int done = 0, k;

	if (!sq_ready(q))
		return 0;
	prod = __atomic_load_n(&q->ring.hdr->sqi.prod, __ATOMIC_ACQUIRE);
	if (prod - q->sq_cons > q->ring.sq.size) {
		qp_broken(q, "send ring index out of range");
		return 0;
	}
	while (sq_ready(q) && q->sq_cons != prod && (k = sq_batch(q, prod)) > 0)
		done += k;
	__atomic_store_n(&q->ring.hdr->sqi.cons, q->sq_cons, __ATOMIC_RELEASE);
	return done;
}

/* Receive slots of a QP or an SRQ (post: the device's post_recv). */
struct rq {
	struct ffr_vring *ring;
	uint32_t *cons;
	void *obj;
	int (*post)(void *obj, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);
};

static int qp_post_recv(void *obj, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	return ibv_post_recv(((struct ffr_vqp *)obj)->qp, wr, bad);
}

static int srq_post_recv(void *obj, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	return ibv_post_srq_recv(((struct ffr_vsrq *)obj)->srq, wr, bad);
}

static int rqe_take(const struct ffr_vring *rg, uint32_t idx, struct ibv_recv_wr *wr,
		    struct ibv_sge *sg)
{
	const uint8_t *slot = FF_VRING_SLOT(rg->hdr, &rg->rq, idx);
	struct ff_vrqe w;

	memcpy(&w, slot, sizeof(w));
	memset(wr, 0, sizeof(*wr));
	wr->wr_id = w.wr_id;
	if (w.num_sge > rg->rq.max_sge)
		return -EINVAL;
	memcpy(sg, slot + sizeof(w), w.num_sge * sizeof(*sg));
	wr->sg_list = sg;
	wr->num_sge = (int)w.num_sge;
	return 0;
}

/* Returns slots consumed, or -1 after a bad slot or a refused post. */
static int rq_batch(struct rq *r, uint32_t prod, uint64_t *bad_wr_id)
{
	struct ibv_recv_wr wr[BATCH], *bad = NULL;
	int n = 0, ret = 0, bad_slot = 0, posted;

	while (n < BATCH && *r->cons + (uint32_t)n != prod) {
		if (rqe_take(r->ring, *r->cons + (uint32_t)n, &wr[n], sg_buf[n]) < 0) {
			bad_slot = 1;
			break;
		}
		wr[n].next = NULL;
		if (n)
			wr[n - 1].next = &wr[n];
		n++;
	}
	if (n)
		ret = r->post(r->obj, wr, &bad);
	posted = ret ? (int)(bad - wr) : n;
	*r->cons += (uint32_t)posted;
	if (ret || bad_slot) {
		*bad_wr_id = ret ? bad->wr_id : wr[n].wr_id;
		return -1;
	}
	return posted;
}

/* Slots posted; -1 after a bad slot or a refused post (*bad_wr_id says
 * which), -ERANGE when prod is more than the ring's size ahead. */
static int rq_run(struct rq *r, uint64_t *bad_wr_id)
{
	uint32_t prod = __atomic_load_n(&r->ring->hdr->rqi.prod, __ATOMIC_ACQUIRE);
	int done = 0, k = 0;

	if (prod - *r->cons > r->ring->rq.size)
		return -ERANGE;
	while (*r->cons != prod && (k = rq_batch(r, prod, bad_wr_id)) > 0)
		done += k;
	__atomic_store_n(&r->ring->hdr->rqi.cons, *r->cons, __ATOMIC_RELEASE);
	return k < 0 ? -1 : done;
}

static int qp_rq_run(struct ffr_vqp *q)
{
	struct rq r = {&q->ring, &q->rq_cons, q, qp_post_recv};
	uint64_t wr_id = 0;
	int k;

	if (!q->ring.rq.size || q->broken || q->state == IBV_QPS_RESET)
		return 0;
	k = rq_run(&r, &wr_id);
	if (k < 0) {
		ffr_vcq_push_err(q->rcq, wr_id, q->qpn, IBV_WC_RECV, IBV_WC_LOC_QP_OP_ERR);
		qp_broken(q, "bad receive slot");
		return 0;
	}
	return k;
}

static int srq_run(struct ffr_vsrq *s)
{
	struct rq r = {&s->ring, &s->cons, s, srq_post_recv};
	uint64_t wr_id = 0;
	int k;

	if (s->broken)
		return 0;
	k = rq_run(&r, &wr_id);
	if (k == -ERANGE) { /* nothing in the ring can be trusted: stop serving it */
		ff_warn("verbs %s: SRQ: receive index out of range, SRQ no longer served",
			s->o.x->name);
		s->o.x->rd->bad_wqes++;
		s->broken = true;
		return 0;
	}
	if (k < 0) {
		ff_warn("verbs %s: SRQ: bad receive slot (wr %llu) skipped", s->o.x->name,
			(unsigned long long)wr_id);
		s->o.x->rd->bad_wqes++;
		s->cons++;
		return 1;
	}
	s->posted += (uint64_t)k;
	return k;
}

/* ---- scheduling ---- */

static bool ring_pending(const struct ffr_vring *rg, const struct ff_vq_idx *ix, uint32_t cons)
{
	return __atomic_load_n(&ix->prod, __ATOMIC_ACQUIRE) != cons;
}

/* Announces the router is going to sleep; true if work arrived meanwhile. */
static bool vctx_arm(struct ffr_vctx *x)
{
	struct ffr_vobj *o;
	bool more = false;

	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_QP], link) {
		struct ffr_vqp *q = (struct ffr_vqp *)o;

		__atomic_store_n(&q->ring.hdr->sqi.need_db, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&q->ring.hdr->rqi.need_db, 1, __ATOMIC_SEQ_CST);
		more |= sq_ready(q) && ring_pending(&q->ring, &q->ring.hdr->sqi, q->sq_cons);
		more |= q->ring.rq.size && !q->broken && q->state != IBV_QPS_RESET &&
			ring_pending(&q->ring, &q->ring.hdr->rqi, q->rq_cons);
	}
	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_SRQ], link) {
		struct ffr_vsrq *s = (struct ffr_vsrq *)o;

		__atomic_store_n(&s->ring.hdr->rqi.need_db, 1, __ATOMIC_SEQ_CST);
		more |= !s->broken && ring_pending(&s->ring, &s->ring.hdr->rqi, s->cons);
	}
	return more;
}

static int vctx_pass(struct ffr_vctx *x)
{
	struct ffr_vobj *o;
	int did = 0;

	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_CQ], link)
		if (((struct ffr_vcq *)o)->stalled)
			ffr_vcq_drain((struct ffr_vcq *)o);
	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_SRQ], link)
		did += srq_run((struct ffr_vsrq *)o);
	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_QP], link) {
		struct ffr_vqp *q = (struct ffr_vqp *)o;

		did += qp_rq_run(q) + sq_run(q);
	}
	return did;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void heat(struct ffr_rdma *rd)
{
	if (rd->poll_ns)
		rd->hot_until = now_ns() + rd->poll_ns;
}

static bool hot(const struct ffr_rdma *rd)
{
	return rd->poll_ns && rd->hot_until;
}

/* Completions free send slots in the device: the QPs may post again. */
static void sq_unblock(struct ffr_vctx *x)
{
	struct ffr_vobj *o;

	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_QP], link)
		((struct ffr_vqp *)o)->sq_full = false;
}

void ffr_vctx_run(struct ffr_vctx *x)
{
	if (x->direct) /* no rings: the shim posts to the device itself */
		return;
	for (int pass = 0; pass < RUN_PASSES; pass++) {
		if (vctx_pass(x))
			continue;
		if (hot(x->rd) || !vctx_arm(x))
			return;
	}
	/* still busy: let the other contexts have a turn first */
	event_active(x->dbev, EV_READ, 0);
}

void ffr_ring_doorbell_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_vctx *x = arg;
	uint64_t v;
	ssize_t n;

	/* the shim holds the same open file: its O_NONBLOCK is not ours to
	 * rely on, and the loop runs this without the fd being readable */
	n = ffr_shared_read(fd, &v, sizeof(v));
	if (n < 0 && n != -EAGAIN)
		ff_dbg("verbs: doorbell: %s", strerror((int)-n));
	heat(x->rd);
	ffr_vctx_run(x);
}

void ffr_ring_comp_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_vctx *x = arg;
	struct ibv_cq *cq;
	void *cctx;

	heat(x->rd);
	while (x->rd->ibv->get_cq_event(x->cc, &cq, &cctx) == 0) {
		struct ffr_vcq *q = cctx;

		x->rd->ibv->ack_cq_events(cq, 1);
		ffr_vcq_drain(q);
		if (hot(x->rd)) {
			q->unarmed = true; /* polled until the router cools down */
			continue;
		}
		ibv_req_notify_cq(cq, 0);
		ffr_vcq_drain(q);
	}
	sq_unblock(x);
	ffr_vctx_run(x);
}

/* One busy-polling pass over a context: its rings and its device CQs. */
static int vctx_poll(struct ffr_vctx *x)
{
	struct ffr_vobj *o;
	int did = 0;

	if (x->direct)
		return 0;
	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_CQ], link)
		did += ffr_vcq_drain((struct ffr_vcq *)o) > 0;
	if (did)
		sq_unblock(x);
	return did + vctx_pass(x);
}

/* Cooling down: request completion events again and arm the rings, then
 * look once more for what arrived before the arming. */
static void vctx_cool(struct ffr_vctx *x)
{
	struct ffr_vobj *o;

	if (x->direct)
		return;
	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_CQ], link) {
		struct ffr_vcq *q = (struct ffr_vcq *)o;

		if (!q->unarmed)
			continue;
		q->unarmed = false;
		ibv_req_notify_cq(q->cq, 0);
		ffr_vcq_drain(q);
	}
	ffr_vctx_run(x);
}

int ffr_verbs_path_parse(const char *s, enum ffr_verbs_path *out)
{
	static const char *const names[] = {[FFR_VPATH_AUTO] = "auto",
					    [FFR_VPATH_DIRECT] = "direct",
					    [FFR_VPATH_RING] = "ring"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i])) {
			*out = (enum ffr_verbs_path)i;
			return 0;
		}
	return -EINVAL;
}

int ffr_rdma_set_path(struct ffr_rdma *rd, enum ffr_verbs_path path)
{
	if (path == FFR_VPATH_DIRECT && !ffr_direct_supported(rd)) {
		ff_err("rdma: --verbs-path direct: device %s is not soft-RoCE (rxe), the only "
		       "device with a direct data path",
		       rd->devname);
		return -EOPNOTSUPP;
	}
	rd->direct = path == FFR_VPATH_DIRECT || (path == FFR_VPATH_AUTO && ffr_direct_supported(rd));
	ff_info("rdma: verbs data path: %s", rd->direct ? "direct" : "ring");
	return 0;
}

bool ffr_rdma_hot(void *priv)
{
	struct ffr_rdma *rd = priv;

	return rd && hot(rd);
}

bool ffr_rdma_poll(void *priv)
{
	struct ffr_rdma *rd = priv;
	struct ffr_vctx *x;
	int did = 0;

	if (!rd || !hot(rd))
		return false;
	TAILQ_FOREACH (x, &rd->ctxs, link)
		if (!x->dead)
			did += vctx_poll(x);
	if (did) {
		heat(rd);
		return true;
	}
	if (now_ns() < rd->hot_until) {
		/* idle: a program polling on this CPU gets it at once */
		sched_yield();
		return true;
	}
	rd->hot_until = 0;
	TAILQ_FOREACH (x, &rd->ctxs, link)
		if (!x->dead)
			vctx_cool(x);
	return false;
}
