/* rdma_cm events on the virtual device: each is read from the channel's
 * event socket and turned into a struct rdma_cm_event, creating the child
 * id of a connect request and filling in what librdmacm would (route,
 * GIDs, the QP state the event implies).
 * Invariants: an event names ids by handle and is dropped if its id is
 * gone; the shim's events are kept on a list until acknowledged, so
 * rdma_ack_cm_event can tell them from librdmacm's without reading freed
 * memory. */
#include "real.h"
#include "cm.h"

#include "fdpass.h"
#include "msg.h"
#include "vconv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVENT_BUF 2048

static struct ffs_cmlist events = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- events ---- */

/* On ROUTE_RESOLVED: the one path record librdmacm would give, its MTU
 * the port's. */
static void route_fill(struct rdma_cm_id *id)
{
	struct ibv_sa_path_rec *p = id->route.path_rec;
	struct ibv_port_attr pa;

	if (!p && !(p = calloc(1, sizeof(*p))))
		return;
	p->dgid = id->route.addr.addr.ibaddr.dgid;
	p->sgid = id->route.addr.addr.ibaddr.sgid;
	p->pkey = htobe16(0xffff);
	p->hop_limit = 64;
	p->reversible = 1;
	p->numb_path = 1;
	p->mtu = IBV_MTU_1024;
	if (id->verbs && ffs_vquery_port(id->verbs, 1, &pa, sizeof(pa)) == 0)
		p->mtu = pa.active_mtu;
	id->route.path_rec = p;
	id->route.num_paths = 1;
}

/* The id's source GID (index 1: the virtual port's RoCE v2 IPv4 one) and
 * the default P_Key. */
static void own_gid(struct rdma_cm_id *id)
{
	struct ffs_vctx *x = id->verbs ? to_vctx(id->verbs) : NULL;

	if (x && x->info.ngids > 1)
		id->route.addr.addr.ibaddr.sgid = x->info.gids[1];
	id->route.addr.addr.ibaddr.pkey = htobe16(0xffff);
}

/* The connection parameters an event carries (private data copied into e). */
static void event_param(struct ffs_cmevent *e, const Ff__RdmaConnParam *m)
{
	struct rdma_conn_param *c = &e->ev.param.conn;

	if (ff_vconn_param_from_msg(m, c) < 0) /* more than rdma_cm carries */
		return;
	if (c->private_data_len)
		memcpy(e->pdata, c->private_data, c->private_data_len);
	c->private_data = c->private_data_len ? e->pdata : NULL;
}

/* The id an event is for: a connect request brings a new child. */
static struct ffs_cmid *event_id(struct ffs_cmchan *ch, const Ff__RdmaCmEvent *m,
				 struct ffs_cmid **listen)
{
	struct ffs_cmid *id;

	*listen = NULL;
	if (m->event != RDMA_CM_EVENT_CONNECT_REQUEST)
		return ffs_cmid_find(ch, m->id);
	*listen = ffs_cmid_find(ch, m->listen_id);
	if (!*listen)
		return NULL;
	id = ffs_cmid_add(ch, m->id, (*listen)->id.context, (*listen)->id.ps);
	if (id) {
		id->id.verbs = ffs_cm_verbs();
		id->id.port_num = 1;
	}
	return id;
}

/* What an event changes in the id and its QP, as librdmacm's would. */
static void event_effects(struct rdma_cm_id *id, enum rdma_cm_event_type type)
{
	if (type == RDMA_CM_EVENT_ROUTE_RESOLVED)
		route_fill(id);
	else if (type == RDMA_CM_EVENT_ESTABLISHED && id->qp)
		id->qp->state = IBV_QPS_RTS;
	else if (type == RDMA_CM_EVENT_DISCONNECTED && id->qp)
		id->qp->state = IBV_QPS_ERR;
}

/* The app's event for the router's m, or NULL to drop it (its id is gone). */
static struct ffs_cmevent *event_build(struct ffs_cmchan *ch, const Ff__RdmaCmEvent *m)
{
	struct ffs_cmid *id, *listen;
	struct ffs_cmevent *e;

	id = event_id(ch, m, &listen);
	if (!id || !(e = calloc(1, sizeof(*e))))
		return NULL;
	e->ev.id = &id->id;
	e->ev.listen_id = listen ? &listen->id : NULL;
	e->ev.event = m->event;
	e->ev.status = m->status;
	if (m->local)
		ffs_cm_set_addr(&id->id.route.addr.src_storage, m->local);
	if (m->peer)
		ffs_cm_set_addr(&id->id.route.addr.dst_storage, m->peer);
	own_gid(&id->id);
	if (m->peer_gid.len == 16)
		memcpy(id->id.route.addr.addr.ibaddr.dgid.raw, m->peer_gid.data, 16);
	if (m->param)
		event_param(e, m->param);
	event_effects(&id->id, m->event);
	id->id.event = &e->ev;
	return e;
}

/* The channel was destroyed while this thread waited for an event: with
 * librdmacm the read would block for good (it holds the file, and no event
 * comes any more), and programs (rping) count on that rather than on an
 * error that makes them exit with a failure. */
static void wait_forever(void)
{
	for (;;)
		pause();
}

FFS_EXPORT int rdma_get_cm_event(struct rdma_event_channel *channel, struct rdma_cm_event **out)
{
	struct ffs_cmchan *ch = ffs_cmchan_get(channel);
	struct ffs_cmevent *e = NULL;
	uint8_t buf[EVENT_BUF];
	int fd = channel->fd;

	if (!ch)
		return CMREAL(rdma_get_cm_event)(channel, out);
	while (!e) {
		ProtobufCMessage *m;
		int fds[2], nfds = 0;
		int r = ff_msg_recv(fd, &ff__rdma_cm_event__descriptor, buf, sizeof(buf), &m, fds,
				    2, &nfds, 0);

		if ((r == 0 || r == -ECONNRESET) &&
		    __atomic_load_n(&ch->closing, __ATOMIC_SEQ_CST)) {
			ffs_cmchan_put(ch);
			wait_forever();
		}
		if (r <= 0) {
			ffs_cmchan_put(ch);
			return ffs_cm_err(r ? r : -ENODEV);
		}
		ff_close_fds(fds, nfds);
		e = event_build(ch, (Ff__RdmaCmEvent *)m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	ffs_cmchan_put(ch);
	ffs_cmlist_push(&events, &e->node, &e->ev);
	*out = &e->ev;
	return 0;
}

FFS_EXPORT int rdma_ack_cm_event(struct rdma_cm_event *event)
{
	struct ffs_cmnode *n = ffs_cmlist_take(&events, event);

	if (!n)
		return CMREAL(rdma_ack_cm_event)(event);
	free(FFS_CONTAINER_OF(n, struct ffs_cmevent, node));
	return 0;
}
