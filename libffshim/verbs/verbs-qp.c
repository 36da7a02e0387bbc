/* Queue pairs and shared receive queues of the virtual device. Creating,
 * changing, querying and destroying them are requests to the router;
 * posting work (the context's ops, inline in infiniband/verbs.h) only writes ring
 * slots and rings the doorbell when the router sleeps (vring.h).
 * Invariants: a work request is checked here exactly as a device would
 * (opcode, flags, gather list, inline size, queue room) so its errors stay
 * synchronous; the router checks it again. */
#include "real.h"
#include "verbs-internal.h"

#include "log.h"

#include <ff/vwire.h>

#include "vconv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ffs_vqp *ffs_vqp_find(struct ffs_vctx *x, uint64_t cookie)
{
	struct ffs_vqp *q;

	FFS_VFIND(x, qps, cookie, q);
	return q;
}

struct ffs_vsrq *ffs_vsrq_find(struct ffs_vctx *x, uint64_t cookie)
{
	struct ffs_vsrq *s;

	FFS_VFIND(x, srqs, cookie, s);
	return s;
}

/* ---- QP create ---- */

/* Whether a CQ or SRQ (by its context) belongs to ctx. */
static bool ours(struct ibv_context *ctx, const void *cq_or_srq_ctx)
{
	return cq_or_srq_ctx == ctx;
}

/* Creates q at the router; a's caps become what it granted. 0 or -errno. */
static int qp_call(struct ffs_vctx *x, struct ffs_vqp *q, struct ibv_pd *pd,
		   struct ibv_qp_init_attr *a)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateQp m = FF__VERBS_CREATE_QP__INIT;
	Ff__VerbsQpCaps caps;
	Ff__Reply *rep;
	int fd, err;

	ff_vqp_cap_to_msg(&a->cap, &caps);
	m.pd = to_vpd(pd)->h;
	m.send_cq = to_vcq(a->send_cq)->h;
	m.recv_cq = to_vcq(a->recv_cq)->h;
	m.srq = a->srq ? to_vsrq(a->srq)->h : 0;
	m.qp_type = a->qp_type;
	m.sq_sig_all = a->sq_sig_all;
	m.caps = &caps;
	m.cookie = (uintptr_t)q;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_QP;
	req.verbs_create_qp = &m;
	err = ffs_vcall(x, &req, NULL, 0, &rep, &fd);
	if (err)
		return err;
	q->h = rep->verbs_obj->handle;
	q->qp.qp_num = rep->verbs_obj->qp_num;
	if (rep->verbs_obj->caps)
		ff_vqp_cap_from_msg(rep->verbs_obj->caps, &a->cap);
	q->cap = a->cap;
	err = ffs_vqueues_map(
	    x, FF_VOBJ_QP, q->h, rep, fd,
	    &(struct ffs_vqueues){.ring = &q->ring, .dh = &q->dh, .dq = &q->dsq, .dq2 = &q->drq});
	if (err)
		return err;
	if (q->ring.hdr) {
		q->sq = q->ring.hdr->sq;
		q->rq = q->ring.hdr->rq;
	}
	return 0;
}

/* ibv_create_qp on the virtual device. NULL + errno. */
static struct ibv_qp *vcreate_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *a)
{
	struct ibv_context *ctx = pd->context;
	struct ffs_vqp *q;
	int err;

	if (!a->send_cq || !a->recv_cq || !ours(ctx, a->send_cq->context) ||
	    !ours(ctx, a->recv_cq->context) || (a->srq && !ours(ctx, a->srq->context))) {
		errno = EINVAL;
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		errno = ENOMEM;
		return NULL;
	}
	err = qp_call(to_vctx(ctx), q, pd, a);
	if (err) {
		if (err == -EOPNOTSUPP)
			ffs_vunsupported("this QP type");
		free(q);
		errno = -err;
		return NULL;
	}
	pthread_spin_init(&q->sq_lock, PTHREAD_PROCESS_PRIVATE);
	pthread_spin_init(&q->rq_lock, PTHREAD_PROCESS_PRIVATE);
	q->sq_sig_all = a->sq_sig_all;
	q->qp.context = ctx;
	q->qp.qp_context = a->qp_context;
	q->qp.pd = pd;
	q->qp.send_cq = a->send_cq;
	q->qp.recv_cq = a->recv_cq;
	q->qp.srq = a->srq;
	q->qp.handle = q->h;
	q->qp.state = IBV_QPS_RESET;
	q->qp.qp_type = a->qp_type;
	pthread_mutex_init(&q->qp.mutex, NULL);
	pthread_cond_init(&q->qp.cond, NULL);
	FFS_VLINK(to_vctx(ctx), qps, q);
	return &q->qp;
}

FFS_EXPORT struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_create_qp)(pd, attr);
	return vcreate_qp(pd, attr);
}

bool ffs_qp_init_attr_from_ex(const struct ibv_qp_init_attr_ex *ax, struct ibv_qp_init_attr *a)
{
	if ((ax->comp_mask & ~(uint32_t)(IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_CREATE_FLAGS)) ||
	    ax->create_flags)
		return false;
	memset(a, 0, sizeof(*a));
	a->qp_context = ax->qp_context;
	a->send_cq = ax->send_cq;
	a->recv_cq = ax->recv_cq;
	a->srq = ax->srq;
	a->cap = ax->cap;
	a->qp_type = ax->qp_type;
	a->sq_sig_all = ax->sq_sig_all;
	return true;
}

struct ibv_qp *ffs_vcreate_qp_ex(struct ibv_context *ctx, struct ibv_qp_init_attr_ex *ax)
{
	struct ibv_qp_init_attr a;
	struct ibv_qp *qp;

	if (!ffs_qp_init_attr_from_ex(ax, &a) || !(ax->comp_mask & IBV_QP_INIT_ATTR_PD) ||
	    !ax->pd || ax->pd->context != ctx) {
		ffs_vunsupported("ibv_create_qp_ex with these attributes");
		errno = EOPNOTSUPP;
		return NULL;
	}
	qp = vcreate_qp(ax->pd, &a);
	if (qp)
		ax->cap = a.cap;
	return qp;
}

/* The new post-send API needs a provider's ibv_qp_ex: not offered. */
FFS_EXPORT struct ibv_qp_ex *ibv_qp_to_qp_ex(struct ibv_qp *qp)
{
	if (!ffs_is_vctx(qp->context))
		return VREAL(ibv_qp_to_qp_ex)(qp);
	return NULL;
}

FFS_EXPORT int ibv_destroy_qp(struct ibv_qp *qp)
{
	struct ffs_vqp *q = to_vqp(qp);
	struct ffs_vctx *x;
	int err;

	if (!ffs_is_vctx(qp->context))
		return VREAL(ibv_destroy_qp)(qp);
	x = to_vctx(qp->context);
	err = ffs_vdestroy(x, FF_VOBJ_QP, q->h);
	if (err && err != -EIO)
		return -err;
	FFS_VUNLINK(x, qps, q, struct ffs_vqp);
	ffs_vring_unmap(&q->ring);
	ffs_dq_unmap(&q->dsq);
	ffs_dq_unmap(&q->drq);
	pthread_spin_destroy(&q->sq_lock);
	pthread_spin_destroy(&q->rq_lock);
	pthread_mutex_destroy(&qp->mutex);
	pthread_cond_destroy(&qp->cond);
	free(q);
	return 0;
}

/* ---- modify / query ---- */

FFS_EXPORT int ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsModifyQp m = FF__VERBS_MODIFY_QP__INIT;
	Ff__VerbsQpAttr am;
	Ff__VerbsAh ah;
	int err;

	if (!ffs_is_vctx(qp->context))
		return VREAL(ibv_modify_qp)(qp, attr, mask);
	ff_vqp_attr_to_msg(attr, &am);
	am.mask = (uint32_t)mask;
	if (mask & IBV_QP_AV) {
		ff_vah_to_msg(&attr->ah_attr, &ah);
		am.ah_attr = &ah;
	}
	m.qp = to_vqp(qp)->h;
	m.attr = &am;
	req.body_case = FF__REQUEST__BODY_VERBS_MODIFY_QP;
	req.verbs_modify_qp = &m;
	err = ffs_vcall0(to_vctx(qp->context), &req, NULL, 0);
	if (err == -EOPNOTSUPP)
		ffs_vunsupported("modify_qp with these attributes");
	if (!err && (mask & IBV_QP_STATE))
		qp->state = attr->qp_state;
	return -err;
}

static void attr_from_msg(const Ff__VerbsQpAttr *m, struct ibv_qp_attr *a)
{
	ff_vqp_attr_from_msg(m, a);
	if (m->cap)
		ff_vqp_cap_from_msg(m->cap, &a->cap);
	ff_vah_from_msg(m->ah_attr, &a->ah_attr);
}

FFS_EXPORT int ibv_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask,
			    struct ibv_qp_init_attr *init)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsQueryQp m = FF__VERBS_QUERY_QP__INIT;
	Ff__Reply *rep;
	int err;

	if (!ffs_is_vctx(qp->context))
		return VREAL(ibv_query_qp)(qp, attr, mask, init);
	m.qp = to_vqp(qp)->h;
	m.mask = (uint32_t)mask;
	req.body_case = FF__REQUEST__BODY_VERBS_QUERY_QP;
	req.verbs_query_qp = &m;
	err = ffs_vcall(to_vctx(qp->context), &req, NULL, 0, &rep, NULL);
	if (err)
		return -err;
	if (rep->body_case != FF__REPLY__BODY_VERBS_QP_ATTR) {
		ff__reply__free_unpacked(rep, NULL);
		return EPROTO;
	}
	attr_from_msg(rep->verbs_qp_attr, attr);
	ff__reply__free_unpacked(rep, NULL);
	memset(init, 0, sizeof(*init));
	init->qp_context = qp->qp_context;
	init->send_cq = qp->send_cq;
	init->recv_cq = qp->recv_cq;
	init->srq = qp->srq;
	init->cap = attr->cap;
	init->qp_type = qp->qp_type;
	init->sq_sig_all = to_vqp(qp)->sq_sig_all;
	qp->state = attr->qp_state;
	return 0;
}

/* ---- posting ---- */

/* Makes slots up to prod visible to the router, waking it if it sleeps. */
static void ring_publish(struct ffs_vctx *x, struct ff_vq_idx *ix, uint32_t prod)
{
	__atomic_store_n(&ix->prod, prod, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&ix->need_db, __ATOMIC_RELAXED) &&
	    __atomic_exchange_n(&ix->need_db, 0, __ATOMIC_SEQ_CST))
		ffs_vdoorbell(x);
}

/* Copies wr's gather list inline into dst, *len bytes. 0 or EINVAL. */
static int inline_copy(const struct ff_vq_geom *g, uint8_t *dst, const struct ibv_send_wr *wr,
		       uint32_t *len)
{
	uint32_t n = 0;

	for (int i = 0; i < wr->num_sge; i++) {
		if (wr->sg_list[i].length > g->max_inline - n)
			return EINVAL;
		memcpy(dst + n, (void *)(uintptr_t)wr->sg_list[i].addr, wr->sg_list[i].length);
		n += wr->sg_list[i].length;
	}
	*len = n;
	return 0;
}

/* wr as ring slot w, refused (EINVAL) as a device would. */
static int wqe_fill(struct ffs_vqp *q, struct ff_vwqe *w, const struct ibv_send_wr *wr)
{
	const struct ff_vq_geom *g = &q->sq;
	bool atomic =
	    wr->opcode == IBV_WR_ATOMIC_CMP_AND_SWP || wr->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD;

	if (!ffs_send_wr_ok(wr, q->qp.qp_type))
		return EINVAL;
	w->wr_id = wr->wr_id;
	w->opcode = (uint8_t)wr->opcode;
	w->send_flags = wr->send_flags;
	w->imm_data = wr->imm_data;
	w->remote_addr = atomic ? wr->wr.atomic.remote_addr : wr->wr.rdma.remote_addr;
	w->rkey = atomic ? wr->wr.atomic.rkey : wr->wr.rdma.rkey;
	w->compare_add = atomic ? wr->wr.atomic.compare_add : 0;
	w->swap = atomic ? wr->wr.atomic.swap : 0;
	w->inline_len = 0;
	w->num_sge = 0;
	if (wr->send_flags & IBV_SEND_INLINE)
		return inline_copy(g, (uint8_t *)&w->sge[g->max_sge], wr, &w->inline_len);
	if ((uint32_t)wr->num_sge > g->max_sge)
		return EINVAL;
	memcpy(w->sge, wr->sg_list, (size_t)wr->num_sge * sizeof(struct ff_vsge));
	w->num_sge = (uint8_t)wr->num_sge;
	return 0;
}

int ffs_vpost_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	struct ffs_vqp *q = to_vqp(qp);
	struct ff_vq_idx *ix = &q->ring.hdr->sqi;
	uint32_t start;
	int err = 0;

	if (qp->state < IBV_QPS_RTS) {
		*bad = wr;
		return EINVAL;
	}
	pthread_spin_lock(&q->sq_lock);
	start = q->sq_prod;
	for (; wr; wr = wr->next) {
		uint32_t cons = __atomic_load_n(&ix->cons, __ATOMIC_ACQUIRE);

		if (q->sq_prod - cons >= q->sq.size) {
			err = ENOMEM;
			break;
		}
		err = wqe_fill(q, FF_VRING_SLOT(q->ring.hdr, &q->sq, q->sq_prod), wr);
		if (err)
			break;
		q->sq_prod++;
	}
	if (q->sq_prod != start)
		ring_publish(to_vctx(qp->context), ix, q->sq_prod);
	pthread_spin_unlock(&q->sq_lock);
	if (err)
		*bad = wr;
	return err;
}

/* Queues receive requests on a QP's or an SRQ's ring. Lock held. */
static int rq_post(struct ffs_vctx *x, struct ffs_vring *rg, const struct ff_vq_geom *g,
		   uint32_t *prod, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct ff_vq_idx *ix = &rg->hdr->rqi;
	uint32_t start = *prod;
	int err = 0;

	for (; wr; wr = wr->next) {
		uint32_t cons = __atomic_load_n(&ix->cons, __ATOMIC_ACQUIRE);
		struct ff_vrqe *e;

		if (*prod - cons >= g->size) {
			err = ENOMEM;
			break;
		}
		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > g->max_sge) {
			err = EINVAL;
			break;
		}
		e = FF_VRING_SLOT(rg->hdr, g, *prod);
		e->wr_id = wr->wr_id;
		e->num_sge = (uint32_t)wr->num_sge;
		memcpy(e->sge, wr->sg_list, (size_t)wr->num_sge * sizeof(struct ff_vsge));
		(*prod)++;
	}
	if (*prod != start)
		ring_publish(x, ix, *prod);
	if (err)
		*bad = wr;
	return err;
}

int ffs_vpost_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct ffs_vqp *q = to_vqp(qp);
	int err;

	if (qp->srq || qp->state == IBV_QPS_RESET || !q->rq.size) {
		*bad = wr;
		return EINVAL;
	}
	pthread_spin_lock(&q->rq_lock);
	err = rq_post(to_vctx(qp->context), &q->ring, &q->rq, &q->rq_prod, wr, bad);
	pthread_spin_unlock(&q->rq_lock);
	return err;
}

int ffs_vpost_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct ffs_vsrq *s = to_vsrq(srq);
	int err;

	pthread_spin_lock(&s->lock);
	err = rq_post(to_vctx(srq->context), &s->ring, &s->g, &s->prod, wr, bad);
	pthread_spin_unlock(&s->lock);
	return err;
}

/* ---- SRQ ---- */

/* Creates s at the router; a's attributes become what it granted. */
static int srq_call(struct ffs_vctx *x, struct ffs_vsrq *s, struct ibv_pd *pd,
		    struct ibv_srq_init_attr *a)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateSrq m = FF__VERBS_CREATE_SRQ__INIT;
	Ff__Reply *rep;
	int fd, err;

	m.pd = to_vpd(pd)->h;
	m.max_wr = a->attr.max_wr;
	m.max_sge = a->attr.max_sge;
	m.srq_limit = a->attr.srq_limit;
	m.cookie = (uintptr_t)s;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_SRQ;
	req.verbs_create_srq = &m;
	err = ffs_vcall(x, &req, NULL, 0, &rep, &fd);
	if (err)
		return err;
	s->h = rep->verbs_obj->handle;
	a->attr.max_wr = rep->verbs_obj->max_wr;
	a->attr.max_sge = rep->verbs_obj->max_sge;
	s->max_sge = a->attr.max_sge;
	err = ffs_vqueues_map(x, FF_VOBJ_SRQ, s->h, rep, fd,
			      &(struct ffs_vqueues){.ring = &s->ring, .dq = &s->dq});
	if (err)
		return err;
	if (s->ring.hdr)
		s->g = s->ring.hdr->rq;
	return 0;
}

FFS_EXPORT struct ibv_srq *ibv_create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *attr)
{
	struct ffs_vsrq *s;
	int err;

	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_create_srq)(pd, attr);
	s = calloc(1, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	err = srq_call(to_vctx(pd->context), s, pd, attr);
	if (err) {
		free(s);
		errno = -err;
		return NULL;
	}
	pthread_spin_init(&s->lock, PTHREAD_PROCESS_PRIVATE);
	s->srq.context = pd->context;
	s->srq.srq_context = attr->srq_context;
	s->srq.pd = pd;
	s->srq.handle = s->h;
	pthread_mutex_init(&s->srq.mutex, NULL);
	pthread_cond_init(&s->srq.cond, NULL);
	FFS_VLINK(to_vctx(pd->context), srqs, s);
	return &s->srq;
}

/* Modifies (mask) or, with mask 0, queries srq; attr gets the result.
 * 0 or a positive errno. */
static int srq_attr_call(struct ibv_srq *srq, struct ibv_srq_attr *attr, int mask)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsModifySrq m = FF__VERBS_MODIFY_SRQ__INIT;
	Ff__Reply *rep;
	int err;

	m.srq = to_vsrq(srq)->h;
	m.mask = (uint32_t)mask;
	m.max_wr = attr->max_wr;
	m.srq_limit = attr->srq_limit;
	req.body_case = FF__REQUEST__BODY_VERBS_MODIFY_SRQ;
	req.verbs_modify_srq = &m;
	err = ffs_vcall(to_vctx(srq->context), &req, NULL, 0, &rep, NULL);
	if (err)
		return -err;
	attr->max_wr = rep->verbs_obj->max_wr;
	attr->max_sge = rep->verbs_obj->max_sge;
	attr->srq_limit = rep->verbs_obj->srq_limit;
	ff__reply__free_unpacked(rep, NULL);
	return 0;
}

FFS_EXPORT int ibv_modify_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr, int mask)
{
	struct ibv_srq_attr tmp;

	if (!ffs_is_vctx(srq->context))
		return VREAL(ibv_modify_srq)(srq, attr, mask);
	if (mask & IBV_SRQ_MAX_WR) {
		ffs_vunsupported("resizing an SRQ");
		return EOPNOTSUPP;
	}
	tmp = *attr;
	return srq_attr_call(srq, &tmp, mask);
}

FFS_EXPORT int ibv_query_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr)
{
	if (!ffs_is_vctx(srq->context))
		return VREAL(ibv_query_srq)(srq, attr);
	return srq_attr_call(srq, attr, 0);
}

FFS_EXPORT int ibv_destroy_srq(struct ibv_srq *srq)
{
	struct ffs_vsrq *s = to_vsrq(srq);
	struct ffs_vctx *x;
	int err;

	if (!ffs_is_vctx(srq->context))
		return VREAL(ibv_destroy_srq)(srq);
	x = to_vctx(srq->context);
	err = ffs_vdestroy(x, FF_VOBJ_SRQ, s->h);
	if (err && err != -EIO)
		return -err;
	FFS_VUNLINK(x, srqs, s, struct ffs_vsrq);
	ffs_vring_unmap(&s->ring);
	ffs_dq_unmap(&s->dq);
	pthread_spin_destroy(&s->lock);
	pthread_mutex_destroy(&srq->mutex);
	pthread_cond_destroy(&srq->cond);
	free(s);
	return 0;
}
