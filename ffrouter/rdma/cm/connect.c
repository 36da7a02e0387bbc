/* rdma_cm connections: a connect from an active id reaches the listener
 * that owns the destination address and port as a new child id
 * (CONNECT_REQUEST); accept moves both QPs to RTS with each other's numbers
 * and PSNs and the physical addresses from the locality map, then both
 * sides see ESTABLISHED; reject and disconnect reach the other side as
 * REJECTED and DISCONNECTED. Between containers of this host both ids are
 * here (peer_id); with a container on another host the other id is in that
 * host's router, reached through the id's lifeline (xhost.c).
 * Responder resources and initiator depth follow librdmacm and the IB CM:
 * RDMA_MAX_RESP_RES / RDMA_MAX_INIT_DEPTH (255, and what an accept without
 * parameters asks for) mean "as many as the device and the other side
 * allow", larger explicit values are EINVAL; the passive side's accepted
 * values decide both QPs.
 * Invariants: a connection only ever uses QPs of the two containers whose
 * ids it joins (checked by QP number and owner); peer_id links are kept
 * symmetric and cleared on both sides before either id goes away; an id
 * has a peer_id or a lifeline, never both. */
#include "internal.h"

#include "log.h"
#include "vconv.h"

#include <errno.h>
#include <rdma/rdma_cma.h>
#include <string.h>

#define MAX_PDATA 196

void ffr_cm_param_pdata(struct ffr_cm_param *p, const void *data, size_t len)
{
	if (len > UINT8_MAX)
		len = 0;
	if (len)
		memcpy(p->pdata, data, len);
	p->c.private_data = len ? p->pdata : NULL;
	p->c.private_data_len = (uint8_t)len;
}

int ffr_cm_param_from(const Ff__RdmaConnParam *m, struct ffr_cm_param *p)
{
	struct rdma_conn_param *c = &p->c;

	memset(p, 0, sizeof(*p));
	if (!m)
		return 0;
	if (m->private_data.len > MAX_PDATA || ff_vconn_param_from_msg(m, c) < 0)
		return -EINVAL;
	ffr_cm_param_pdata(p, c->private_data, c->private_data_len);
	/* what the IB CM fields can hold */
	c->responder_resources = m->responder_resources > 255 ? 255 : c->responder_resources;
	c->initiator_depth = m->initiator_depth > 255 ? 255 : c->initiator_depth;
	c->flow_control = !!m->flow_control;
	c->retry_count = m->retry_count > 7 ? 7 : c->retry_count;
	c->rnr_retry_count = m->rnr_retry_count > 7 ? 7 : c->rnr_retry_count;
	c->srq = !!m->srq;
	c->qp_num &= 0xffffff;
	return 0;
}

void ffr_cm_vgid(const struct ff_ip *ip, uint8_t g[16])
{
	memset(g, 0, 16);
	if (ip->family == AF_INET6) {
		memcpy(g, ip->ip, 16);
		return;
	}
	g[10] = g[11] = 0xff;
	memcpy(g + 12, ip->ip, 4);
}

static uint8_t clamp(uint8_t v, int max)
{
	return v > max ? (uint8_t)(max < 0 ? 0 : max) : v;
}

/* One of the two depths: 255 takes what the other side offered, up to the
 * device's limit; anything else must be within that limit. */
static int depth(uint8_t *v, int max, uint8_t offered)
{
	if (*v == RDMA_MAX_INIT_DEPTH)
		*v = clamp(offered, max);
	else if (*v > max)
		return -EINVAL;
	return 0;
}

void ffr_cm_param_to_msg(const struct ffr_cm_param *p, bool swap, Ff__RdmaConnParam *m)
{
	ff_vconn_param_to_msg(&p->c, m);
	/* the other side sees the resources from its own point of view */
	if (swap) {
		m->responder_resources = p->c.initiator_depth;
		m->initiator_depth = p->c.responder_resources;
	}
}

int ffr_cm_depths(struct ffr_rdma *rd, struct ffr_cm_param *p, const struct ffr_cm_param *other)
{
	/* from this side's point of view, the other side's initiator depth is
	 * what it wants of our responder resources, and the other way round */
	int err = depth(&p->c.responder_resources, rd->dattr.max_qp_rd_atom,
			other ? other->c.initiator_depth : RDMA_MAX_RESP_RES);

	return err ? err
		   : depth(&p->c.initiator_depth, rd->dattr.max_qp_init_rd_atom,
			   other ? other->c.responder_resources : RDMA_MAX_INIT_DEPTH);
}

void ffr_cm_qp_conn(struct ffr_rdma *rd, const struct ffr_cm_param *act, uint32_t act_psn,
		    const struct ffr_cm_param *acc, uint32_t acc_psn, bool active,
		    struct ffr_qp_conn *out)
{
	int rd_max = rd->dattr.max_qp_init_rd_atom, dest_max = rd->dattr.max_qp_rd_atom;
	const struct ffr_cm_param *other = active ? acc : act;
	/* the accept settled the depths, as the passive side sees them */
	uint8_t resp = acc->c.responder_resources, init = acc->c.initiator_depth;

	memset(out, 0, sizeof(*out));
	out->retry_cnt = act->c.retry_count;
	out->dest_qpn = other->c.qp_num;
	out->rq_psn = active ? acc_psn : act_psn;
	out->sq_psn = active ? act_psn : acc_psn;
	out->max_dest_rd_atomic = clamp(active ? init : resp, dest_max);
	out->max_rd_atomic = clamp(active ? resp : init, rd_max);
	out->rnr_retry = other->c.rnr_retry_count;
}

static struct ffr_cmid *find_listener(struct ffr_cm *cm, const struct ffr_container *t,
				      const struct ff_sa *dst)
{
	struct ffr_cmid *l;

	TAILQ_FOREACH (l, &cm->listens, llink)
		if (l->ch->c == t && l->local.port == dst->port &&
		    (ff_ip_is_any(&l->local.ip) || ff_ip_equal(&l->local.ip, &dst->ip)))
			return l;
	return NULL;
}

struct ffr_cmid *ffr_cm_request(struct ffr_cm *cm, const struct ffr_container *t,
				const struct ff_sa *dst, const struct ff_sa *src)
{
	struct ffr_cmid *l = find_listener(cm, t, dst), *child;

	if (!l || l->pending >= (uint32_t)l->backlog || !(child = ffr_cmid_new(l->ch)))
		return NULL;
	child->state = CM_REQ;
	child->parent = l;
	l->pending++;
	child->ps = l->ps;
	child->qp_type = l->qp_type;
	child->local = *dst;
	child->peer = *src;
	return child;
}

static void unlink_peer(struct ffr_cmid *id)
{
	if (id->peer_id)
		id->peer_id->peer_id = NULL;
	id->peer_id = NULL;
}

void ffr_cm_leave_listener(struct ffr_cmid *child)
{
	if (child->parent)
		child->parent->pending--;
	child->parent = NULL;
}

struct ffr_vqp *ffr_cm_qp(struct ffr_cmid *id)
{
	return id->ch->c ? ffr_vqp_of(id->ch->cm->rd, id->ch->c, id->param.c.qp_num) : NULL;
}

int ffr_cm_connect(struct ffr_cmid *id, const Ff__RdmaConnParam *m)
{
	struct ffr_rdma *rd = id->ch->cm->rd;
	struct ffr_container *t;
	struct ffr_cmid *child;
	struct ffr_vqp *q;
	uint8_t gid[16];
	int err;

	if (id->state != CM_ROUTE || !id->ch->c)
		return -EINVAL;
	err = ffr_cm_param_from(m, &id->param);
	if (!err)
		err = ffr_cm_depths(rd, &id->param, NULL);
	if (err)
		return err;
	q = ffr_cm_qp(id);
	if (!q || !ffr_vqp_connectable(q))
		return -EINVAL;
	t = ffr_container_by_ip(rd->r, &id->peer.ip);
	if (t && t->remote)
		return ffr_cmx_connect(id, t);
	child = t ? ffr_cm_request(id->ch->cm, t, &id->peer, &id->local) : NULL;
	if (!child) {
		ffr_cm_event(id, RDMA_CM_EVENT_REJECTED, FFR_REJ_INVALID_SERVICE_ID, NULL, false,
			     NULL);
		return 0;
	}
	id->state = CM_CONNECTING;
	child->peer_id = id;
	id->peer_id = child;
	ffr_cm_vgid(&id->local.ip, gid);
	ffr_cm_event(child, RDMA_CM_EVENT_CONNECT_REQUEST, 0, &id->param, true, gid);
	return 0;
}

/* Both QPs to RTS: the passive side's (acc) first, then the active one's. */
static int join_qps(struct ffr_rdma *rd, struct ffr_cmid *act, struct ffr_cmid *acc,
		    struct ffr_vqp *aq, struct ffr_vqp *pq)
{
	struct ffr_qp_conn pc, ac;
	int err;

	ffr_cm_qp_conn(rd, &act->param, act->psn, &acc->param, acc->psn, false, &pc);
	ffr_cm_qp_conn(rd, &act->param, act->psn, &acc->param, acc->psn, true, &ac);
	err = ffr_vqp_connect(pq, &act->local.ip, &pc);
	return err ? err : ffr_vqp_connect(aq, &acc->local.ip, &ac);
}

int ffr_cm_accept(struct ffr_cmid *id, const Ff__RdmaConnParam *m)
{
	struct ffr_rdma *rd = id->ch->cm->rd;
	struct ffr_cmid *act = id->peer_id;
	struct ffr_vqp *pq, *aq;
	uint8_t gid[16];
	int err;

	if (id->state != CM_REQ || !id->ch->c)
		return -EINVAL;
	if (!act && !id->x)
		return -ECONNRESET; /* the active side went away */
	err = ffr_cm_param_from(m, &id->param);
	if (!err)
		err = ffr_cm_depths(rd, &id->param, act ? &act->param : ffr_cmx_peer_param(id->x));
	if (err)
		return err;
	pq = ffr_cm_qp(id);
	if (!pq)
		return -EINVAL;
	if (id->x)
		return ffr_cmx_accept(id, pq);
	aq = ffr_cm_qp(act);
	if (!aq)
		return -ECONNRESET;
	err = join_qps(rd, act, id, aq, pq);
	if (err)
		return err;
	ffr_cm_leave_listener(id);
	id->state = act->state = CM_CONNECTED;
	id->ch->cm->conns_total++;
	ffr_cm_vgid(&id->local.ip, gid);
	ffr_cm_event(act, RDMA_CM_EVENT_ESTABLISHED, 0, &id->param, true, gid);
	ffr_cm_vgid(&act->local.ip, gid);
	ffr_cm_event(id, RDMA_CM_EVENT_ESTABLISHED, 0, &act->param, true, gid);
	return 0;
}

int ffr_cm_reject(struct ffr_cmid *id, const uint8_t *pdata, size_t len)
{
	struct ffr_cmid *act = id->peer_id;
	struct ffr_cm_param p = {0};

	if (id->state != CM_REQ || len > MAX_PDATA)
		return -EINVAL;
	ffr_cm_leave_listener(id);
	id->state = CM_IDLE;
	if (id->x) {
		ffr_cmx_reject(id->x, FFR_REJ_CONSUMER_DEFINED, pdata, len);
		ffr_cmx_free(id->x);
		return 0;
	}
	unlink_peer(id);
	if (act) {
		ffr_cm_param_pdata(&p, pdata, len);
		act->state = CM_ROUTE;
		ffr_cm_event(act, RDMA_CM_EVENT_REJECTED, FFR_REJ_CONSUMER_DEFINED, &p, false, NULL);
	}
	return 0;
}

void ffr_cm_qp_error(struct ffr_cmid *id)
{
	struct ffr_vqp *q = ffr_cm_qp(id);

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
	ffr_cm_qp_error(id);
	id->state = CM_DISCONNECTED;
	unlink_peer(id);
	ffr_cmx_free(id->x); /* the other router learns it from the close */
	ffr_cm_event(id, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, false, NULL);
	if (peer) {
		ffr_cm_qp_error(peer);
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
	ffr_cm_leave_listener(id);
	if (id->x) {
		if (id->state == CM_REQ) /* never answered */
			ffr_cmx_reject(id->x, FFR_REJ_CONSUMER_DEFINED, NULL, 0);
		ffr_cmx_free(id->x);
		return;
	}
	if (!peer)
		return;
	unlink_peer(id);
	if (id->state == CM_REQ) { /* never answered */
		peer->state = CM_ROUTE;
		ffr_cm_event(peer, RDMA_CM_EVENT_REJECTED, FFR_REJ_CONSUMER_DEFINED, &none, false, NULL);
	} else if (id->state == CM_CONNECTED) {
		ffr_cm_qp_error(id);
		ffr_cm_qp_error(peer);
		peer->state = CM_DISCONNECTED;
		ffr_cm_event(peer, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, false, NULL);
	}
}
