/* rdma_cm on the virtual device, continued: events (read from the
 * channel's event socket and turned into struct rdma_cm_event, creating the
 * child id of a connect request), QPs on ids, addresses, rdma_getaddrinfo,
 * and the calls the virtual device does not offer.
 * Invariants: an event names ids by handle and is dropped if its id is
 * gone; the shim's events are kept on a list until acknowledged, so
 * rdma_ack_cm_event can tell them from librdmacm's without reading freed
 * memory. */
#include "real.h"
#include "cm.h"

#include "addr.h"
#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <rdma/rdma_verbs.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVENT_BUF 2048

static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ffs_cmevent *events;
/* rdma_getaddrinfo results of the shim's, to tell them from librdmacm's */
struct rai_node {
	struct rdma_addrinfo *r;
	struct rai_node *next;
};
static struct rai_node *rai_list;

int ffs_cm_err(int err)
{
	errno = -err;
	return -1;
}

int ffs_cm_fail(const char *what)
{
	ffs_vunsupported(what);
	errno = EOPNOTSUPP;
	return -1;
}

/* ---- addresses ---- */

int ffs_cm_addr(const struct sockaddr *sa, Ff__Addr *a, uint8_t buf[16])
{
	struct ff_sa s;
	socklen_t len;

	if (!sa)
		return -EINVAL;
	len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (ff_sa_from_sockaddr(&s, sa, len) < 0)
		return -EAFNOSUPPORT;
	ff_sa_to_proto(&s, a, buf);
	return 0;
}

void ffs_cm_set_addr(struct sockaddr_storage *out, const Ff__Addr *a)
{
	struct ff_sa s;

	if (ff_sa_from_proto(&s, a) == 0)
		ff_sa_to_sockaddr(&s, s.ip.family, out);
}

bool ffs_cm_is_any(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == INADDR_ANY;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return true;
}

static __be16 port_of(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_port;
	if (sa->sa_family == AF_INET6)
		return ((const struct sockaddr_in6 *)sa)->sin6_port;
	return 0;
}

FFS_EXPORT __be16 rdma_get_src_port(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_get_src_port)(id);
	return port_of(&id->route.addr.src_addr);
}

FFS_EXPORT __be16 rdma_get_dst_port(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_get_dst_port)(id);
	return port_of(&id->route.addr.dst_addr);
}

/* ---- events ---- */

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

static void own_gid(struct rdma_cm_id *id)
{
	struct ffs_vctx *x = id->verbs ? to_vctx(id->verbs) : NULL;

	if (x && x->info.ngids > 1)
		id->route.addr.addr.ibaddr.sgid = x->info.gids[1];
	id->route.addr.addr.ibaddr.pkey = htobe16(0xffff);
}

static void event_param(struct ffs_cmevent *e, const Ff__RdmaConnParam *m)
{
	struct rdma_conn_param *c = &e->ev.param.conn;
	size_t n = m->private_data.len < sizeof(e->pdata) ? m->private_data.len : sizeof(e->pdata);

	memcpy(e->pdata, m->private_data.data, n);
	c->private_data = n ? e->pdata : NULL;
	c->private_data_len = (uint8_t)n;
	c->responder_resources = (uint8_t)m->responder_resources;
	c->initiator_depth = (uint8_t)m->initiator_depth;
	c->flow_control = (uint8_t)m->flow_control;
	c->retry_count = (uint8_t)m->retry_count;
	c->rnr_retry_count = (uint8_t)m->rnr_retry_count;
	c->srq = (uint8_t)m->srq;
	c->qp_num = m->qp_num;
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

static void event_effects(struct rdma_cm_id *id, enum rdma_cm_event_type type)
{
	if (type == RDMA_CM_EVENT_ROUTE_RESOLVED)
		route_fill(id);
	else if (type == RDMA_CM_EVENT_ESTABLISHED && id->qp)
		id->qp->state = IBV_QPS_RTS;
	else if (type == RDMA_CM_EVENT_DISCONNECTED && id->qp)
		id->qp->state = IBV_QPS_ERR;
}

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

		if ((r == 0 || r == -ECONNRESET) && __atomic_load_n(&ch->closing, __ATOMIC_SEQ_CST)) {
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
	pthread_mutex_lock(&events_lock);
	e->next = events;
	events = e;
	pthread_mutex_unlock(&events_lock);
	*out = &e->ev;
	return 0;
}

FFS_EXPORT int rdma_ack_cm_event(struct rdma_cm_event *event)
{
	struct ffs_cmevent **pp, *e = NULL;

	pthread_mutex_lock(&events_lock);
	for (pp = &events; *pp; pp = &(*pp)->next)
		if (&(*pp)->ev == event) {
			e = *pp;
			*pp = e->next;
			break;
		}
	pthread_mutex_unlock(&events_lock);
	if (!e)
		return CMREAL(rdma_ack_cm_event)(event);
	free(e);
	return 0;
}

/* ---- QPs on ids ---- */

static struct ibv_pd *default_pd(struct ibv_context *verbs)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct ibv_pd *pd;

	pthread_mutex_lock(&lock);
	if (!pd)
		pd = ibv_alloc_pd(verbs);
	pthread_mutex_unlock(&lock);
	return pd;
}

/* Like librdmacm: an id without CQs gets one CQ and channel per direction. */
static int own_cqs(struct rdma_cm_id *id, struct ibv_qp_init_attr *a)
{
	id->send_cq_channel = ibv_create_comp_channel(id->verbs);
	id->recv_cq_channel = ibv_create_comp_channel(id->verbs);
	if (!id->send_cq_channel || !id->recv_cq_channel)
		return -errno;
	id->send_cq = ibv_create_cq(id->verbs, (int)(a->cap.max_send_wr ? a->cap.max_send_wr : 1),
				    id, id->send_cq_channel, 0);
	id->recv_cq = ibv_create_cq(id->verbs, (int)(a->cap.max_recv_wr ? a->cap.max_recv_wr : 1),
				    id, id->recv_cq_channel, 0);
	if (!id->send_cq || !id->recv_cq)
		return -errno;
	a->send_cq = id->send_cq;
	a->recv_cq = id->recv_cq;
	to_cmid(id)->own_cqs = true;
	return 0;
}

static void drop_cqs(struct rdma_cm_id *id)
{
	if (!to_cmid(id)->own_cqs)
		return;
	if (id->send_cq)
		ibv_destroy_cq(id->send_cq);
	if (id->recv_cq)
		ibv_destroy_cq(id->recv_cq);
	if (id->send_cq_channel)
		ibv_destroy_comp_channel(id->send_cq_channel);
	if (id->recv_cq_channel)
		ibv_destroy_comp_channel(id->recv_cq_channel);
	id->send_cq = id->recv_cq = NULL;
	id->send_cq_channel = id->recv_cq_channel = NULL;
	to_cmid(id)->own_cqs = false;
}

static int qp_init(struct ibv_qp *qp)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = 1,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				   IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC,
	};

	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					     IBV_QP_ACCESS_FLAGS);
}

FFS_EXPORT int rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd,
			      struct ibv_qp_init_attr *attr)
{
	struct ibv_qp *qp;
	int err = 0;

	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_create_qp)(id, pd, attr);
	if (!id->verbs || (pd && pd->context != id->verbs))
		return ffs_cm_err(-EINVAL);
	if (!pd)
		pd = id->pd ? id->pd : default_pd(id->verbs);
	if (!pd)
		return -1;
	if (!attr->send_cq || !attr->recv_cq)
		err = own_cqs(id, attr);
	qp = err ? NULL : ibv_create_qp(pd, attr);
	if (!qp) {
		err = err ? err : -errno;
		drop_cqs(id);
		return ffs_cm_err(err);
	}
	err = qp_init(qp);
	if (err) {
		ibv_destroy_qp(qp);
		drop_cqs(id);
		return ffs_cm_err(-err);
	}
	id->qp = qp;
	id->pd = pd;
	return 0;
}

FFS_EXPORT int rdma_create_qp_ex(struct rdma_cm_id *id, struct ibv_qp_init_attr_ex *ax)
{
	struct ibv_qp_init_attr a;
	int ret;

	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_create_qp_ex)(id, ax);
	if ((ax->comp_mask & ~(uint32_t)(IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_CREATE_FLAGS)) ||
	    ax->create_flags)
		return ffs_cm_fail("rdma_create_qp_ex with these attributes");
	memset(&a, 0, sizeof(a));
	a.qp_context = ax->qp_context;
	a.send_cq = ax->send_cq;
	a.recv_cq = ax->recv_cq;
	a.srq = ax->srq;
	a.cap = ax->cap;
	a.qp_type = ax->qp_type;
	a.sq_sig_all = ax->sq_sig_all;
	ret = rdma_create_qp(id, (ax->comp_mask & IBV_QP_INIT_ATTR_PD) ? ax->pd : NULL, &a);
	if (!ret)
		ax->cap = a.cap;
	return ret;
}

FFS_EXPORT void rdma_destroy_qp(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel)) {
		CMREAL(rdma_destroy_qp)(id);
		return;
	}
	if (id->qp)
		ibv_destroy_qp(id->qp);
	id->qp = NULL;
	drop_cqs(id);
}

/* ---- the rest ---- */

FFS_EXPORT int rdma_set_option(struct rdma_cm_id *id, int level, int optname, void *val,
			       size_t len)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_set_option)(id, level, optname, val, len);
	return 0; /* TOS, reuse, timeouts: nothing to tune in the router */
}

FFS_EXPORT int rdma_init_qp_attr(struct rdma_cm_id *id, struct ibv_qp_attr *attr, int *mask)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_init_qp_attr)(id, attr, mask);
	return ffs_cm_fail("rdma_init_qp_attr (QPs not created with rdma_create_qp)");
}

FFS_EXPORT int rdma_establish(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_establish)(id);
	return ffs_cm_fail("rdma_establish");
}

FFS_EXPORT int rdma_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *channel)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_migrate_id)(id, channel);
	return ffs_cm_fail("rdma_migrate_id");
}

FFS_EXPORT int rdma_notify(struct rdma_cm_id *id, enum ibv_event_type event)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_notify)(id, event);
	return 0;
}

/* ---- what the virtual device's ids do not offer ----
 * librdmacm would treat the shim's ids and channels as its own (and crash):
 * each of these fails with EOPNOTSUPP and a log line instead. */

FFS_EXPORT int rdma_create_ep(struct rdma_cm_id **id, struct rdma_addrinfo *res,
			      struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	struct ffs_vinfo info;

	ffs_init();
	if (ffs_vprobe(&info) < 0)
		return CMREAL(rdma_create_ep)(id, res, pd, attr);
	return ffs_cm_fail("rdma_create_ep (synchronous ids)");
}

FFS_EXPORT void rdma_destroy_ep(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel)) {
		CMREAL(rdma_destroy_ep)(id);
		return;
	}
	rdma_destroy_qp(id);
	rdma_destroy_id(id);
}

FFS_EXPORT int rdma_get_request(struct rdma_cm_id *listen, struct rdma_cm_id **id)
{
	if (!ffs_cm_ours(listen->channel))
		return CMREAL(rdma_get_request)(listen, id);
	return ffs_cm_fail("rdma_get_request (synchronous ids)");
}

FFS_EXPORT int rdma_join_multicast(struct rdma_cm_id *id, struct sockaddr *addr, void *context)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_join_multicast)(id, addr, context);
	return ffs_cm_fail("rdma_join_multicast");
}

FFS_EXPORT int rdma_join_multicast_ex(struct rdma_cm_id *id, struct rdma_cm_join_mc_attr_ex *attr,
				      void *context)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_join_multicast_ex)(id, attr, context);
	return ffs_cm_fail("rdma_join_multicast_ex");
}

FFS_EXPORT int rdma_leave_multicast(struct rdma_cm_id *id, struct sockaddr *addr)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_leave_multicast)(id, addr);
	return ffs_cm_fail("rdma_leave_multicast");
}

FFS_EXPORT int rdma_set_local_ece(struct rdma_cm_id *id, struct ibv_ece *ece)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_set_local_ece)(id, ece);
	return ffs_cm_fail("rdma_set_local_ece");
}

FFS_EXPORT int rdma_get_remote_ece(struct rdma_cm_id *id, struct ibv_ece *ece)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_get_remote_ece)(id, ece);
	return ffs_cm_fail("rdma_get_remote_ece");
}

FFS_EXPORT int rdma_reject_ece(struct rdma_cm_id *id, const void *pdata, uint8_t len)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_reject_ece)(id, pdata, len);
	return ffs_cm_fail("rdma_reject_ece");
}

FFS_EXPORT int rdma_create_srq(struct rdma_cm_id *id, struct ibv_pd *pd,
			       struct ibv_srq_init_attr *attr)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_create_srq)(id, pd, attr);
	return ffs_cm_fail("rdma_create_srq (an SRQ on the id: use ibv_create_srq)");
}

FFS_EXPORT int rdma_create_srq_ex(struct rdma_cm_id *id, struct ibv_srq_init_attr_ex *attr)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_create_srq_ex)(id, attr);
	return ffs_cm_fail("rdma_create_srq_ex (an SRQ on the id: use ibv_create_srq)");
}

/* Only ever an SRQ the app put on the id itself: the shim makes none. */
FFS_EXPORT void rdma_destroy_srq(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel)) {
		CMREAL(rdma_destroy_srq)(id);
		return;
	}
	if (id->srq)
		ibv_destroy_srq(id->srq);
	id->srq = NULL;
}

static struct ibv_context **our_devlist;

FFS_EXPORT struct ibv_context **rdma_get_devices(int *num)
{
	struct ibv_context **list;
	struct ffs_vinfo info;

	ffs_init();
	if (ffs_vprobe(&info) < 0)
		return CMREAL(rdma_get_devices)(num);
	list = calloc(2, sizeof(*list));
	if (!list || !(list[0] = ffs_cm_verbs())) {
		free(list);
		return NULL;
	}
	if (num)
		*num = 1;
	our_devlist = list;
	return list;
}

FFS_EXPORT void rdma_free_devices(struct ibv_context **list)
{
	if (list && list == our_devlist) {
		our_devlist = NULL;
		free(list);
		return;
	}
	CMREAL(rdma_free_devices)(list);
}

/* ---- rdma_getaddrinfo: numeric or resolvable names, one result ---- */

static void rai_free(struct rdma_addrinfo *r)
{
	if (!r)
		return;
	free(r->ai_src_addr);
	free(r->ai_dst_addr);
	free(r);
}

static int rai_addr(struct sockaddr **out, socklen_t *len, const struct addrinfo *ai)
{
	*out = malloc(ai->ai_addrlen);
	if (!*out)
		return EAI_MEMORY;
	memcpy(*out, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	return 0;
}

static int rai_fill(struct rdma_addrinfo *r, const struct rdma_addrinfo *hints,
		    const struct addrinfo *ai)
{
	bool passive = hints && (hints->ai_flags & RAI_PASSIVE);
	int err;

	r->ai_flags = hints ? hints->ai_flags : 0;
	r->ai_family = ai->ai_family;
	r->ai_qp_type = hints && hints->ai_qp_type ? hints->ai_qp_type : IBV_QPT_RC;
	r->ai_port_space = hints && hints->ai_port_space ? hints->ai_port_space : RDMA_PS_TCP;
	if (passive)
		return rai_addr(&r->ai_src_addr, &r->ai_src_len, ai);
	err = rai_addr(&r->ai_dst_addr, &r->ai_dst_len, ai);
	if (!err && hints && hints->ai_src_addr && hints->ai_src_len) {
		r->ai_src_addr = malloc(hints->ai_src_len);
		if (!r->ai_src_addr)
			return EAI_MEMORY;
		memcpy(r->ai_src_addr, hints->ai_src_addr, hints->ai_src_len);
		r->ai_src_len = hints->ai_src_len;
	}
	return err;
}

FFS_EXPORT int rdma_getaddrinfo(const char *node, const char *service,
				const struct rdma_addrinfo *hints, struct rdma_addrinfo **res)
{
	struct addrinfo h = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	struct rdma_addrinfo *r;
	struct rai_node *n;
	struct ffs_vinfo info;
	int err;

	ffs_init();
	if (ffs_vprobe(&info) < 0)
		return CMREAL(rdma_getaddrinfo)(node, service, hints, res);
	h.ai_family = hints ? hints->ai_family : 0;
	h.ai_flags = (hints && (hints->ai_flags & RAI_PASSIVE) ? AI_PASSIVE : 0) |
		     (hints && (hints->ai_flags & RAI_NUMERICHOST) ? AI_NUMERICHOST : 0);
	err = getaddrinfo(node, service, &h, &ai);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	n = malloc(sizeof(*n));
	err = r && n ? rai_fill(r, hints, ai) : EAI_MEMORY;
	freeaddrinfo(ai);
	if (err) {
		rai_free(r);
		free(n);
		return err;
	}
	n->r = r;
	pthread_mutex_lock(&events_lock);
	n->next = rai_list;
	rai_list = n;
	pthread_mutex_unlock(&events_lock);
	*res = r;
	return 0;
}

static bool rai_take(struct rdma_addrinfo *r)
{
	struct rai_node **pp, *n = NULL;

	pthread_mutex_lock(&events_lock);
	for (pp = &rai_list; *pp; pp = &(*pp)->next)
		if ((*pp)->r == r) {
			n = *pp;
			*pp = n->next;
			break;
		}
	pthread_mutex_unlock(&events_lock);
	free(n);
	return n != NULL;
}

FFS_EXPORT void rdma_freeaddrinfo(struct rdma_addrinfo *res)
{
	if (rai_take(res))
		rai_free(res);
	else if (res)
		CMREAL(rdma_freeaddrinfo)(res);
}
