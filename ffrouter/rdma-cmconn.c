/* rdma_cm connections between containers on this host: a connect from an
 * active id reaches the listener that owns the destination address and
 * port as a new child id (CONNECT_REQUEST); accept moves both QPs to RTS
 * with each other's numbers and PSNs and the physical addresses from the
 * locality map, then both sides see ESTABLISHED; reject and disconnect
 * reach the other side as REJECTED and DISCONNECTED.
 * Invariants: a connection only ever uses QPs of the two containers whose
 * ids it joins (checked by QP number and owner); peer_id links are kept
 * symmetric and cleared on both sides before either id goes away. */
#include "rdma.h"

#include "log.h"

#include <errno.h>
#include <rdma/rdma_cma.h>
#include <string.h>

#define REJ_INVALID_SERVICE_ID 8 /* IB CM: no listener */
#define REJ_CONSUMER_DEFINED 28
#define MAX_PDATA 196

static int param_from(const Ff__RdmaConnParam *m, struct ffr_cm_param *p)
{
	memset(p, 0, sizeof(*p));
	if (!m)
		return 0;
	if (m->private_data.len > MAX_PDATA)
		return -EINVAL;
	memcpy(p->pdata, m->private_data.data, m->private_data.len);
	p->pdata_len = (uint32_t)m->private_data.len;
	p->responder_resources = m->responder_resources > 255 ? 255 : (uint8_t)m->responder_resources;
	p->initiator_depth = m->initiator_depth > 255 ? 255 : (uint8_t)m->initiator_depth;
	p->flow_control = (uint8_t)!!m->flow_control;
	p->retry_count = m->retry_count > 7 ? 7 : (uint8_t)m->retry_count;
	p->rnr_retry_count = m->rnr_retry_count > 7 ? 7 : (uint8_t)m->rnr_retry_count;
	p->srq = m->srq;
	p->qp_num = m->qp_num;
	return 0;
}

static void vgid_of(const struct ff_ip *ip, uint8_t g[16])
{
	memset(g, 0, 16);
	if (ip->family == AF_INET6) {
		memcpy(g, ip->ip, 16);
		return;
	}
	g[10] = g[11] = 0xff;
	memcpy(g + 12, ip->ip, 4);
}

static struct ffr_cmid *find_listener(struct ffr_rdma *rd, const struct ffr_container *t,
				      const struct ff_sa *dst)
{
	struct ffr_cmid *l;

	TAILQ_FOREACH (l, &rd->listens, llink)
		if (l->ch->c == t && l->local.port == dst->port &&
		    (ff_ip_is_any(&l->local.ip) || ff_ip_equal(&l->local.ip, &dst->ip)))
			return l;
	return NULL;
}

static void unlink_peer(struct ffr_cmid *id)
{
	if (id->peer_id)
		id->peer_id->peer_id = NULL;
	id->peer_id = NULL;
}

static void leave_listener(struct ffr_cmid *child)
{
	if (child->parent)
		child->parent->pending--;
	child->parent = NULL;
}

int ffr_cm_connect(struct ffr_cmid *id, const Ff__RdmaConnParam *m)
{
	struct ffr_rdma *rd = id->ch->rd;
	struct ffr_container *t;
	struct ffr_cmid *l, *child;
	struct ffr_vqp *q;
	uint8_t gid[16];
	int err;

	if (id->state != CM_ROUTE || !id->ch->c)
		return -EINVAL;
	err = param_from(m, &id->param);
	if (err)
		return err;
	q = ffr_vqp_of(rd, id->ch->c, id->param.qp_num);
	if (!q || (q->state != IBV_QPS_INIT && q->state != IBV_QPS_RESET))
		return -EINVAL;
	t = ffr_container_by_ip(rd->r, &id->peer.ip);
	if (t && t->remote)
		return -EOPNOTSUPP; /* rdma_cm across hosts: not yet */
	l = t ? find_listener(rd, t, &id->peer) : NULL;
	if (!l || l->pending >= (uint32_t)l->backlog || !(child = ffr_cmid_new(l->ch))) {
		ffr_cm_event(id, RDMA_CM_EVENT_REJECTED, REJ_INVALID_SERVICE_ID, NULL, false, NULL);
		return 0;
	}
	id->state = CM_CONNECTING;
	child->state = CM_REQ;
	child->parent = l;
	l->pending++;
	child->ps = l->ps;
	child->qp_type = l->qp_type;
	child->local = id->peer;
	child->peer = id->local;
	child->peer_id = id;
	id->peer_id = child;
	vgid_of(&id->local.ip, gid);
	ffr_cm_event(child, RDMA_CM_EVENT_CONNECT_REQUEST, 0, &id->param, true, gid);
	return 0;
}

static uint8_t clamp(uint8_t v, int max)
{
	return v > max ? (uint8_t)max : v;
}

/* Both QPs to RTS: the passive side's (acc) first, then the active one's. */
static int join_qps(struct ffr_rdma *rd, struct ffr_cmid *act, struct ffr_cmid *acc,
		    struct ffr_vqp *aq, struct ffr_vqp *pq)
{
	int rd_max = rd->dattr.max_qp_init_rd_atom, dest_max = rd->dattr.max_qp_rd_atom;
	struct ffr_qp_conn pc = {
		.dest_qpn = aq->qp->qp_num, .rq_psn = act->psn, .sq_psn = acc->psn,
		.max_dest_rd_atomic = clamp(acc->param.responder_resources, dest_max),
		.max_rd_atomic = clamp(acc->param.initiator_depth, rd_max),
		.retry_cnt = act->param.retry_count, .rnr_retry = act->param.rnr_retry_count,
	};
	struct ffr_qp_conn ac = {
		.dest_qpn = pq->qp->qp_num, .rq_psn = acc->psn, .sq_psn = act->psn,
		.max_dest_rd_atomic = clamp(act->param.responder_resources, dest_max),
		.max_rd_atomic = clamp(act->param.initiator_depth, rd_max),
		.retry_cnt = act->param.retry_count, .rnr_retry = acc->param.rnr_retry_count,
	};
	int err = ffr_vqp_connect(pq, &act->local.ip, &pc);

	return err ? err : ffr_vqp_connect(aq, &acc->local.ip, &ac);
}

int ffr_cm_accept(struct ffr_cmid *id, const Ff__RdmaConnParam *m)
{
	struct ffr_rdma *rd = id->ch->rd;
	struct ffr_cmid *act = id->peer_id;
	struct ffr_vqp *pq, *aq;
	uint8_t gid[16];
	int err;

	if (id->state != CM_REQ || !id->ch->c)
		return -EINVAL;
	if (!act)
		return -ECONNRESET; /* the active side went away */
	err = param_from(m, &id->param);
	if (err)
		return err;
	pq = ffr_vqp_of(rd, id->ch->c, id->param.qp_num);
	aq = act->ch->c ? ffr_vqp_of(rd, act->ch->c, act->param.qp_num) : NULL;
	if (!pq)
		return -EINVAL;
	if (!aq)
		return -ECONNRESET;
	err = join_qps(rd, act, id, aq, pq);
	if (err)
		return err;
	leave_listener(id);
	id->state = act->state = CM_CONNECTED;
	rd->cm_conns_total++;
	vgid_of(&id->local.ip, gid);
	ffr_cm_event(act, RDMA_CM_EVENT_ESTABLISHED, 0, &id->param, true, gid);
	vgid_of(&act->local.ip, gid);
	ffr_cm_event(id, RDMA_CM_EVENT_ESTABLISHED, 0, &act->param, true, gid);
	return 0;
}

int ffr_cm_reject(struct ffr_cmid *id, const uint8_t *pdata, size_t len)
{
	struct ffr_cmid *act = id->peer_id;
	struct ffr_cm_param p = {0};

	if (id->state != CM_REQ || len > MAX_PDATA)
		return -EINVAL;
	leave_listener(id);
	id->state = CM_IDLE;
	unlink_peer(id);
	if (act) {
		memcpy(p.pdata, pdata, len);
		p.pdata_len = (uint32_t)len;
		act->state = CM_ROUTE;
		ffr_cm_event(act, RDMA_CM_EVENT_REJECTED, REJ_CONSUMER_DEFINED, &p, false, NULL);
	}
	return 0;
}

static void qp_error(struct ffr_cmid *id)
{
	struct ffr_vqp *q = id->ch->c ? ffr_vqp_of(id->ch->rd, id->ch->c, id->param.qp_num) : NULL;

	if (q)
		ffr_vqp_set_error(q);
}

int ffr_cm_disconnect(struct ffr_cmid *id)
{
	struct ffr_cmid *peer = id->peer_id;

	if (id->state == CM_DISCONNECTED)
		return 0;
	if (id->state != CM_CONNECTED)
		return -EINVAL;
	qp_error(id);
	id->state = CM_DISCONNECTED;
	unlink_peer(id);
	ffr_cm_event(id, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, false, NULL);
	if (peer) {
		qp_error(peer);
		peer->state = CM_DISCONNECTED;
		ffr_cm_event(peer, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, false, NULL);
	}
	return 0;
}

void ffr_cm_detach(struct ffr_cmid *id)
{
	struct ffr_cmid *peer = id->peer_id, *c;
	struct ffr_cm_param none = {0};

	if (id->state == CM_LISTEN)
		TAILQ_FOREACH (c, &id->ch->ids, link)
			if (c->parent == id)
				c->parent = NULL;
	leave_listener(id);
	if (!peer)
		return;
	unlink_peer(id);
	if (id->state == CM_REQ) { /* never answered */
		peer->state = CM_ROUTE;
		ffr_cm_event(peer, RDMA_CM_EVENT_REJECTED, REJ_CONSUMER_DEFINED, &none, false, NULL);
	} else if (id->state == CM_CONNECTED) {
		qp_error(id);
		qp_error(peer);
		peer->state = CM_DISCONNECTED;
		ffr_cm_event(peer, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, false, NULL);
	}
}
