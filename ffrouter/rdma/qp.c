/* Queue pairs: creation with their ring memfd, state changes, queries,
 * destruction. The address translation lives here: an app names its peer
 * by a virtual GID (derived from the peer's overlay address); at
 * modify_qp the router replaces it with the physical GID that reaches the
 * peer's host, its own source GID index and port. Invariants: an address
 * vector the device sees always comes from the locality map, never from
 * the app; a QP on this host may only be connected to a QP of the
 * container that owns the destination address, and one on another host
 * only once that host's router agreed (qp-xhost.c). */
#include "internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/vwire.h>

#include "vconv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What modify_qp accepts: no alternate paths, no resizing, no rate limits. */
#define QP_MASK_OK                                                                                 \
	(IBV_QP_STATE | IBV_QP_CUR_STATE | IBV_QP_EN_SQD_ASYNC_NOTIFY | IBV_QP_ACCESS_FLAGS |      \
	 IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY | IBV_QP_AV | IBV_QP_PATH_MTU |             \
	 IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_RQ_PSN |                    \
	 IBV_QP_MAX_QP_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER | IBV_QP_SQ_PSN |                          \
	 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_PATH_MIG_STATE | IBV_QP_DEST_QPN)

struct ffr_vqp *ffr_vqp_by_num(struct ffr_rdma *rd, uint32_t qpn)
{
	struct ffr_vctx *x;
	struct ffr_vobj *o;

	TAILQ_FOREACH (x, &rd->ctxs, link)
		TAILQ_FOREACH (o, &x->objs[FF_VOBJ_QP], link)
			if (((struct ffr_vqp *)o)->qpn == qpn)
				return (struct ffr_vqp *)o;
	return NULL;
}

/* ---- create ---- */

static int vqp_ring(struct ffr_vqp *q, const struct ibv_qp_cap *cap)
{
	size_t off = FF_VRING_HDR;
	uint32_t ssz = (uint32_t)(sizeof(struct ff_vwqe) + cap->max_send_sge * sizeof(struct ff_vsge) +
				  cap->max_inline_data);

	ffr_vq_geom(&q->ring.sq, cap->max_send_wr, ssz, &off);
	q->ring.sq.max_sge = cap->max_send_sge;
	q->ring.sq.max_inline = cap->max_inline_data;
	if (!q->srq) {
		ffr_vq_geom(&q->ring.rq, cap->max_recv_wr,
			    (uint32_t)(sizeof(struct ff_vrqe) +
				       cap->max_recv_sge * sizeof(struct ff_vsge)),
			    &off);
		q->ring.rq.max_sge = cap->max_recv_sge;
	}
	return ffr_vring_new(&q->ring, FF_VOBJ_QP, off);
}

static int caps_ok(const Ff__VerbsQpCaps *c)
{
	return c && c->max_send_wr <= FF_VRING_MAX_WR && c->max_recv_wr <= FF_VRING_MAX_WR &&
	       c->max_send_sge <= FF_VRING_MAX_SGE && c->max_recv_sge <= FF_VRING_MAX_SGE &&
	       c->max_inline_data <= FF_VRING_MAX_INLINE;
}

/* Takes a reference on each object the QP names, or on none of them
 * (vqp_unref drops what q points to). */
static int vqp_refs(struct ffr_vctx *x, const Ff__VerbsCreateQp *m, struct ffr_vqp *q)
{
	struct ffr_vpd *pd = ffr_vobj_get(x, m->pd, FF_VOBJ_PD);
	struct ffr_vcq *scq = ffr_vobj_get(x, m->send_cq, FF_VOBJ_CQ);
	struct ffr_vcq *rcq = ffr_vobj_get(x, m->recv_cq, FF_VOBJ_CQ);
	struct ffr_vsrq *srq = m->srq ? ffr_vobj_get(x, m->srq, FF_VOBJ_SRQ) : NULL;

	if (!pd || !scq || !rcq || (m->srq && !srq))
		return -EINVAL;
	q->pd = pd;
	q->scq = scq;
	q->rcq = rcq;
	q->srq = srq;
	q->pd->o.refs++;
	q->scq->o.refs++;
	q->rcq->o.refs++;
	if (q->srq)
		q->srq->o.refs++;
	return 0;
}

static void vqp_unref(struct ffr_vqp *q)
{
	if (q->pd)
		q->pd->o.refs--;
	if (q->scq)
		q->scq->o.refs--;
	if (q->rcq)
		q->rcq->o.refs--;
	if (q->srq)
		q->srq->o.refs--;
}

static int vqp_make(struct ffr_vctx *x, const Ff__VerbsCreateQp *m, struct ffr_vqp *q,
		    struct ibv_qp_cap *cap)
{
	struct ibv_qp_init_attr ia = {.qp_context = q};
	int err;

	if (m->qp_type != IBV_QPT_RC && m->qp_type != IBV_QPT_UC)
		return -EOPNOTSUPP;
	if (!caps_ok(m->caps))
		return -EINVAL;
	err = vqp_refs(x, m, q);
	if (err)
		return err;
	q->cookie = m->cookie;
	q->qp_type = m->qp_type;
	q->sq_sig_all = m->sq_sig_all;
	q->state = IBV_QPS_RESET;
	ff_vqp_cap_from_msg(m->caps, &ia.cap);
	if (q->srq) /* receives come from the SRQ */
		ia.cap.max_recv_wr = ia.cap.max_recv_sge = 0;
	if (x->direct) {
		*cap = ia.cap;
		return ffr_direct_qp_create(x, q, cap);
	}
	ia.send_cq = q->scq->cq;
	ia.recv_cq = q->rcq->cq;
	ia.srq = q->srq ? q->srq->srq : NULL;
	ia.qp_type = m->qp_type;
	ia.sq_sig_all = m->sq_sig_all;
	q->qp = x->rd->ibv->create_qp(q->pd->pd, &ia);
	if (!q->qp)
		return errno ? -errno : -EIO;
	q->qpn = q->qp->qp_num;
	/* a device may offer more than asked (rxe rounds queues up and turns
	 * inline bytes into SGEs); rings and the router's gather lists hold no
	 * more than the limits, and the app is told so */
	if (ia.cap.max_inline_data > FF_VRING_MAX_INLINE)
		ia.cap.max_inline_data = FF_VRING_MAX_INLINE;
	if (ia.cap.max_send_wr > FF_VRING_MAX_WR)
		ia.cap.max_send_wr = FF_VRING_MAX_WR;
	if (ia.cap.max_recv_wr > FF_VRING_MAX_WR)
		ia.cap.max_recv_wr = FF_VRING_MAX_WR;
	if (ia.cap.max_send_sge > FF_VRING_MAX_SGE)
		ia.cap.max_send_sge = FF_VRING_MAX_SGE;
	if (ia.cap.max_recv_sge > FF_VRING_MAX_SGE)
		ia.cap.max_recv_sge = FF_VRING_MAX_SGE;
	*cap = ia.cap;
	return vqp_ring(q, cap);
}

static void vqp_release(struct ffr_vctx *x, struct ffr_vqp *q)
{
	if (q->qp)
		x->rd->ibv->destroy_qp(q->qp);
	if (q->dsq.len)
		ffr_direct_destroy(x, FF_VOBJ_QP, q->dh);
	ffr_vring_free(&q->ring);
	vqp_unref(q);
	free(q);
}

void ffr_vop_create_qp(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	Ff__VerbsObjReply ob = FF__VERBS_OBJ_REPLY__INIT;
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__VerbsQpCaps caps;
	struct ibv_qp_cap cap;
	struct ffr_vqp *q;
	int err = ffr_vcharge(x, FF_VOBJ_QP, 1);

	if (err)
		goto out_err;
	q = calloc(1, sizeof(*q));
	if (q)
		q->ring.fd = -1;
	err = q ? vqp_make(x, req->verbs_create_qp, q, &cap) : -ENOMEM;
	if (!err)
		err = ffr_vobj_add(x, &q->o, FF_VOBJ_QP);
	if (err) {
		if (q)
			vqp_release(x, q);
		ffr_vuncharge(x, FF_VOBJ_QP, 1);
		goto out_err;
	}
	ff_vqp_cap_to_msg(&cap, &caps);
	ob.handle = q->o.handle;
	ob.qp_num = q->qpn;
	ob.caps = &caps;
	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_VERBS_OBJ;
	rep.verbs_obj = &ob;
	if (x->direct) {
		ob.dev_handle = q->dh;
		ob.map_off = q->dsq.off;
		ob.map_len = q->dsq.len;
		ob.map2_off = q->drq.off;
		ob.map2_len = q->drq.len;
		ffr_vreply(x, &rep, NULL, 0);
		return;
	}
	ffr_vreply(x, &rep, &q->ring.fd, 1);
	ff_close_fds(&q->ring.fd, 1);
	return;
out_err:
	ffr_vreply_status(x, req->id, err, "create_qp: %s", strerror(-err));
}

/* The device's QP, whichever path made it. */
static int dev_modify(struct ffr_vqp *q, struct ibv_qp_attr *a, int mask)
{
	return q->o.x->direct ? -ffr_direct_qp_modify(q, a, mask) : q->o.x->rd->ibv->modify_qp(q->qp, a, mask);
}

static int dev_query(struct ffr_vqp *q, struct ibv_qp_attr *a, int mask, struct ibv_qp_init_attr *ia)
{
	return q->o.x->direct ? -ffr_direct_qp_query(q, a, mask, ia)
			      : q->o.x->rd->ibv->query_qp(q->qp, a, mask, ia);
}

int ffr_vqp_destroy(struct ffr_vqp *q)
{
	struct ffr_vctx *x = q->o.x;

	if (x->direct ? ffr_direct_destroy(x, FF_VOBJ_QP, q->dh) != 0 : x->rd->ibv->destroy_qp(q->qp) != 0)
		return -EBUSY;
	q->qp = NULL;
	q->dsq.len = 0;
	ffr_vobj_del(&q->o);
	vqp_release(x, q);
	ffr_vuncharge(x, FF_VOBJ_QP, 1);
	return 0;
}

/* ---- modify ---- */

/* The peer must be a QP of the container that owns the address (same
 * host; a peer on another host is checked by that host's router,
 * qp-xhost.c), and not one connected to another QP: the device does not
 * check who sends to a QP, so q could write into that connection with its
 * peer's rkeys. */
static int peer_ok(struct ffr_vqp *q, const struct ffr_container *t, uint32_t qpn)
{
	struct ffr_vqp *p = ffr_vqp_by_num(q->o.x->rd, qpn);

	if (!p || p->o.x->c != t) {
		ff_warn("verbs %s: QP %u may not connect to QP %u: not one of %s's", q->o.x->name,
			q->qpn, qpn, t->name);
		return -EINVAL;
	}
	if (p != q && p->connected && (p->dest_host[0] || p->dest_qpn != q->qpn)) {
		ff_warn("verbs %s: QP %u may not connect to QP %u of %s: it is connected to QP "
			"%u%s%s",
			q->o.x->name, q->qpn, qpn, t->name, p->dest_qpn,
			p->dest_host[0] ? " of host " : "", p->dest_host);
		return -EINVAL;
	}
	return 0;
}

void ffr_vqp_cut_off(struct ffr_rdma *rd, const char *host, uint32_t qpn,
		     const struct ffr_vqp *keep, const char *who)
{
	struct ffr_vctx *x;
	struct ffr_vobj *o;

	if (!host)
		host = "";
	TAILQ_FOREACH (x, &rd->ctxs, link)
		TAILQ_FOREACH (o, &x->objs[FF_VOBJ_QP], link) {
			struct ffr_vqp *z = (struct ffr_vqp *)o;

			if (z == keep || !z->connected || z->dest_qpn != qpn ||
			    strcmp(z->dest_host, host) != 0)
				continue;
			ff_warn("verbs %s: QP %u was connected to QP %u%s%s, which now talks to %s: "
				"QP %u goes to the error state",
				x->name, z->qpn, qpn, *host ? " of host " : "", host, who, z->qpn);
			ffr_vqp_set_error(z);
			z->connected = false;
		}
}

/* q now talks to dest_qpn of host (NULL: this one): a QP of this host still
 * connected to q from before (when q was free to take it) is cut off. */
static void vqp_connected(struct ffr_vqp *q, uint32_t dest_qpn, const char *host)
{
	struct ffr_rdma *rd = q->o.x->rd;
	char who[FFR_NAME_MAX + FFR_HOST_MAX + 48];

	q->connected = true;
	snprintf(q->dest_host, sizeof(q->dest_host), "%s", host ? host : "");
	q->dest_qpn = dest_qpn;
	snprintf(who, sizeof(who), "QP %u%s%s", dest_qpn, host ? " of host " : "",
		 host ? host : "");
	ffr_vqp_cut_off(rd, NULL, q->qpn, host ? NULL : ffr_vqp_by_num(rd, dest_qpn), who);
}

static void vqp_state(struct ffr_vqp *q, uint32_t state)
{
	q->state = state;
	if (state == IBV_QPS_RESET)
		q->connected = false;
}

/* The device's address vector to the container that owns ip. */
static int av_for(struct ffr_vqp *q, const struct ff_ip *ip, struct ibv_ah_attr *out,
		  struct ffr_container **peer)
{
	struct ffr_rdma *rd = q->o.x->rd;
	struct ffr_container *t = ffr_container_by_ip(rd->r, ip);
	char s[FF_ADDRSTRLEN];
	int err;

	if (!t) {
		ff_warn("verbs %s: QP %u to %s: not a container address", q->o.x->name,
			q->qpn, ff_ip_fmt(ip, s, sizeof(s)));
		return -EHOSTUNREACH;
	}
	memset(out, 0, sizeof(*out));
	err = ffr_rdma_peer_gid(rd, t, &out->grh.dgid);
	if (err)
		return err;
	out->is_global = 1;
	out->grh.sgid_index = (uint8_t)rd->gid_index;
	out->grh.hop_limit = 64;
	out->port_num = rd->port;
	*peer = t;
	return 0;
}

/* Replaces the app's address vector by the one that reaches its peer. */
static int translate_av(struct ffr_vqp *q, const Ff__VerbsAh *ah, struct ffr_vqp_mod *m,
			struct ffr_container **peer)
{
	struct ibv_ah_attr *out = &m->a.ah_attr;
	int err;

	if (!ah || !ah->is_global || ah->dgid.len != 16 || ah->port_num > 1)
		return -EINVAL;
	if (ffr_vgid_ip(ah->dgid.data, &m->peer_ip) < 0)
		return -EINVAL;
	err = av_for(q, &m->peer_ip, out, peer);
	if (err)
		return err;
	out->grh.hop_limit = ah->hop_limit ? (uint8_t)ah->hop_limit : 64;
	out->grh.traffic_class = (uint8_t)ah->traffic_class;
	out->grh.flow_label = ah->flow_label;
	out->sl = (uint8_t)ah->sl;
	out->static_rate = (uint8_t)ah->static_rate;
	memcpy(m->vgid, ah->dgid.data, 16);
	m->sgid_index = (uint8_t)ah->sgid_index;
	if ((*peer)->remote)
		snprintf(m->peer_host, sizeof(m->peer_host), "%s", (*peer)->host);
	return 0;
}

/* The app's attributes m as the device is to get them, in *o; 0 or why
 * not. A peer here is checked now, one on another host by its router. */
static int vqp_prepare(struct ffr_vqp *q, const Ff__VerbsQpAttr *m, struct ffr_vqp_mod *o)
{
	struct ffr_rdma *rd = q->o.x->rd;
	struct ffr_container *peer = NULL;
	struct ibv_qp_attr *a = &o->a;
	int err;

	memset(o, 0, sizeof(*o));
	o->mask = (int)m->mask;
	if (m->mask & ~(uint32_t)QP_MASK_OK)
		return -EOPNOTSUPP;
	ff_vqp_attr_from_msg(m, a);
	if ((o->mask & IBV_QP_PKEY_INDEX) && a->pkey_index)
		return -EINVAL;
	if (o->mask & IBV_QP_PORT) {
		if (a->port_num != 1)
			return -EINVAL;
		a->port_num = rd->port;
	}
	/* a destination QP only with the address that says whose it is (the
	 * one transition that takes it, to RTR, takes both) */
	if ((o->mask & IBV_QP_DEST_QPN) && !(o->mask & IBV_QP_AV))
		return -EINVAL;
	if (o->mask & IBV_QP_AV) {
		err = translate_av(q, m->ah_attr, o, &peer);
		if (err)
			return err;
	}
	if ((o->mask & IBV_QP_DEST_QPN) && !peer->remote && peer_ok(q, peer, a->dest_qp_num))
		return -EINVAL;
	return 0;
}

int ffr_vqp_apply(struct ffr_vqp *q, const struct ffr_vqp_mod *m)
{
	struct ibv_qp_attr a = m->a;
	int err = dev_modify(q, &a, m->mask);

	if (err)
		return -err;
	if (m->mask & IBV_QP_AV) { /* what query_qp tells the app: its own view */
		memcpy(q->vgid, m->vgid, 16);
		q->sgid_index = m->sgid_index;
	}
	if (m->mask & IBV_QP_STATE)
		vqp_state(q, a.qp_state);
	if (m->mask & IBV_QP_DEST_QPN)
		vqp_connected(q, a.dest_qp_num, m->peer_host[0] ? m->peer_host : NULL);
	return 0;
}

void ffr_vop_modify_qp(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	const Ff__VerbsModifyQp *m = req->verbs_modify_qp;
	struct ffr_vqp *q = ffr_vobj_get(x, m->qp, FF_VOBJ_QP);
	struct ffr_vqp_mod mod;
	int err = q && m->attr ? vqp_prepare(q, m->attr, &mod) : -EINVAL;

	/* towards a QP of another host: only once its router agrees */
	if (!err && (mod.mask & IBV_QP_DEST_QPN) && mod.peer_host[0]) {
		err = ffr_vqp_ask(q, req->id, &mod);
		if (!err)
			return; /* the reply comes with the answer */
	}
	if (!err)
		err = ffr_vqp_apply(q, &mod);
	ffr_vreply_status(x, req->id, err, err ? "modify_qp: %s" : NULL, strerror(-err));
	if (!err)
		ffr_vctx_run(x); /* work the new state allows */
}

/* ---- query ---- */

struct qp_attr_msg {
	Ff__VerbsQpAttr m;
	Ff__VerbsQpCaps cap;
	Ff__VerbsAh ah;
};

/* What query_qp tells the app: the device's attributes in its own view
 * (port 1, the destination GID and source index it gave, caps no larger
 * than its ring). */
static void attr_to_msg(const struct ffr_vqp *q, const struct ibv_qp_attr *a,
			const struct ibv_qp_init_attr *ia, struct qp_attr_msg *o)
{
	Ff__VerbsQpAttr *m = &o->m;
	struct ibv_ah_attr ah = a->ah_attr;

	ff_vqp_attr_to_msg(a, m);
	m->pkey_index = 0;
	m->port_num = 1;
	m->sq_sig_all = q->sq_sig_all;
	m->qp_type = q->qp_type;
	ff_vqp_cap_to_msg(&ia->cap, &o->cap);
	if (!q->o.x->direct && q->ring.sq.size < ia->cap.max_send_wr)
		o->cap.max_send_wr = q->ring.sq.size;
	m->cap = &o->cap;
	memcpy(ah.grh.dgid.raw, q->vgid, 16);
	ah.grh.sgid_index = q->sgid_index;
	ah.dlid = 0;
	ah.src_path_bits = 0;
	ah.port_num = 1;
	ff_vah_to_msg(&ah, &o->ah);
	o->ah.dgid.data = (uint8_t *)q->vgid; /* not the local copy */
	m->ah_attr = &o->ah;
}

void ffr_vop_query_qp(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_vqp *q = ffr_vobj_get(x, req->verbs_query_qp->qp, FF_VOBJ_QP);
	Ff__Reply rep = FF__REPLY__INIT;
	struct ibv_qp_init_attr ia;
	struct ibv_qp_attr a;
	struct qp_attr_msg o;
	int err = -EINVAL;

	if (q) {
		memset(&a, 0, sizeof(a));
		memset(&ia, 0, sizeof(ia));
		err = -dev_query(q, &a, (int)req->verbs_query_qp->mask, &ia);
	}
	if (err) {
		ffr_vreply_status(x, req->id, err, "query_qp: %s", strerror(-err));
		return;
	}
	attr_to_msg(q, &a, &ia, &o);
	o.m.mask = req->verbs_query_qp->mask;
	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_VERBS_QP_ATTR;
	rep.verbs_qp_attr = &o.m;
	ffr_vreply(x, &rep, NULL, 0);
}

/* ---- for rdma_cm ---- */

struct ffr_vqp *ffr_vqp_of(struct ffr_rdma *rd, const struct ffr_container *c, uint32_t qpn)
{
	struct ffr_vqp *q = ffr_vqp_by_num(rd, qpn);

	return q && q->o.x->c == c ? q : NULL;
}

static int qp_to(struct ffr_vqp *q, struct ibv_qp_attr *a, int mask)
{
	int err = dev_modify(q, a, mask | IBV_QP_STATE);

	if (err)
		return -err;
	vqp_state(q, a->qp_state);
	return 0;
}

static int qp_init(struct ffr_vqp *q)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = q->o.x->rd->port,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				   IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC,
	};

	return qp_to(q, &a, IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
}

int ffr_vqp_connect(struct ffr_vqp *q, const struct ff_ip *peer_ip, const struct ffr_qp_conn *p)
{
	struct ffr_container *t;
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_RTR};
	int err = q->state == IBV_QPS_RESET ? qp_init(q) : 0;

	if (!err)
		err = av_for(q, peer_ip, &a.ah_attr, &t);
	if (err)
		return err;
	a.path_mtu = q->o.x->rd->active_mtu;
	a.dest_qp_num = p->dest_qpn;
	a.rq_psn = p->rq_psn;
	a.max_dest_rd_atomic = p->max_dest_rd_atomic;
	a.min_rnr_timer = 12;
	err = qp_to(q, &a, IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
				   IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (err)
		return err;
	vqp_connected(q, p->dest_qpn, t->remote ? t->host : NULL);
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = p->retry_cnt;
	a.rnr_retry = p->rnr_retry;
	a.sq_psn = p->sq_psn;
	a.max_rd_atomic = p->max_rd_atomic;
	err = qp_to(q, &a, IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
				   IBV_QP_MAX_QP_RD_ATOMIC);
	if (err)
		return err;
	memset(q->vgid, 0, sizeof(q->vgid));
	if (peer_ip->family == AF_INET6) {
		memcpy(q->vgid, peer_ip->ip, 16);
	} else {
		q->vgid[10] = q->vgid[11] = 0xff;
		memcpy(q->vgid + 12, peer_ip->ip, 4);
	}
	q->sgid_index = 1;
	ffr_vctx_run(q->o.x);
	return 0;
}

int ffr_vqp_set_error(struct ffr_vqp *q)
{
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};

	return qp_to(q, &a, 0);
}

bool ffr_vqp_connectable(const struct ffr_vqp *q)
{
	return q->state == IBV_QPS_INIT || q->state == IBV_QPS_RESET;
}
