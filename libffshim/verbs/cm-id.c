/* rdma_cm on the virtual device: event channels and ids whose state lives
 * in the router, and what an id offers besides its QP (cm-qp.c) and events
 * (cm-event.c): options, the calls the virtual device does not offer, and
 * the device list. A channel is two sockets from the router: requests (one
 * in flight, hidden fd) and events (the app's channel->fd, so it can poll
 * it). Ids use one process-wide context on ffnet0 (id->verbs), like
 * librdmacm's per-device context. Channels, ids and events that are not
 * the shim's go to the real librdmacm.
 * Invariants: an id is the shim's iff its channel is; ids are found by the
 * router's handle under the channel's ids lock; an id is freed only by
 * rdma_destroy_id, after the router forgot it. */
#include "real.h"
#include "cm.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"
#include "vconv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t chans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ffs_cmchan *chans;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ibv_context *cm_ctx;

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

bool ffs_cm_ours(const struct rdma_event_channel *ch)
{
	struct ffs_cmchan *c;

	pthread_mutex_lock(&chans_lock);
	for (c = chans; c && &c->ch != ch; c = c->next)
		;
	pthread_mutex_unlock(&chans_lock);
	return c != NULL;
}

struct ffs_cmchan *ffs_cmchan_get(const struct rdma_event_channel *ch)
{
	struct ffs_cmchan *c;

	pthread_mutex_lock(&chans_lock);
	for (c = chans; c && &c->ch != ch; c = c->next)
		;
	if (c)
		c->refs++;
	pthread_mutex_unlock(&chans_lock);
	return c;
}

void ffs_cmchan_put(struct ffs_cmchan *ch)
{
	bool last;

	pthread_mutex_lock(&chans_lock);
	last = --ch->refs == 0;
	pthread_mutex_unlock(&chans_lock);
	if (!last)
		return;
	pthread_mutex_destroy(&ch->lock);
	pthread_mutex_destroy(&ch->ids_lock);
	free(ch);
}

void ffs_cmlist_push(struct ffs_cmlist *l, struct ffs_cmnode *n, const void *obj)
{
	n->obj = obj;
	pthread_mutex_lock(&l->lock);
	n->next = l->head;
	l->head = n;
	pthread_mutex_unlock(&l->lock);
}

struct ffs_cmnode *ffs_cmlist_take(struct ffs_cmlist *l, const void *obj)
{
	struct ffs_cmnode **pp, *n = NULL;

	pthread_mutex_lock(&l->lock);
	for (pp = &l->head; *pp; pp = &(*pp)->next)
		if ((*pp)->obj == obj) {
			n = *pp;
			*pp = n->next;
			break;
		}
	pthread_mutex_unlock(&l->lock);
	return n;
}

struct ibv_context *ffs_cm_verbs(void)
{
	pthread_mutex_lock(&ctx_lock);
	if (!cm_ctx)
		cm_ctx = ffs_vopen();
	pthread_mutex_unlock(&ctx_lock);
	return cm_ctx;
}

int ffs_cmcall(struct ffs_cmchan *ch, Ff__Request *req, Ff__Reply **rep)
{
	return ffs_sockcall(&ch->req, &ch->lock, &ch->next_id, req, NULL, 0, rep, NULL);
}

/* ---- channels ---- */

/* Asks the router for an event channel: fds[0] the request socket,
 * fds[1] the event socket. 0 or -errno. */
static int cm_open(int *fds)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaCmOpen m = FF__RDMA_CM_OPEN__INIT;

	req.body_case = FF__REQUEST__BODY_RDMA_CM_OPEN;
	req.rdma_cm_open = &m;
	return ffs_open_call(&req, FF__REPLY__BODY__NOT_SET, 2, NULL, fds);
}

FFS_EXPORT struct rdma_event_channel *rdma_create_event_channel(void)
{
	struct ffs_cmchan *ch;
	int fds[2], saved = errno;

	ffs_init();
	if (cm_open(fds) < 0) {
		errno = saved;
		if (!CMREAL(rdma_create_event_channel)) {
			errno = ENODEV;
			return NULL;
		}
		return CMREAL(rdma_create_event_channel)();
	}
	ch = calloc(1, sizeof(*ch));
	if (!ch) {
		ff_close_fds(fds, 2);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&ch->lock, NULL);
	pthread_mutex_init(&ch->ids_lock, NULL);
	ch->req = ffs_hide_fd(fds[0]);
	ffs_fd_internal(ch->req, &ch->req);
	ch->ch.fd = fds[1];
	ch->refs = 1;
	pthread_mutex_lock(&chans_lock);
	ch->next = chans;
	chans = ch;
	pthread_mutex_unlock(&chans_lock);
	return &ch->ch;
}

FFS_EXPORT void rdma_destroy_event_channel(struct rdma_event_channel *channel)
{
	struct ffs_cmchan *ch = to_cmchan(channel), **pp;

	if (!ffs_cm_ours(channel)) {
		CMREAL(rdma_destroy_event_channel)(channel);
		return;
	}
	pthread_mutex_lock(&chans_lock);
	for (pp = &chans; *pp; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			break;
		}
	/* before the router closes the event socket: a thread blocked in
	 * rdma_get_cm_event then knows the end is the app's own doing */
	__atomic_store_n(&ch->closing, true, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&chans_lock);
	ffs_internal_close(&ch->req);
	REAL(close)(ch->ch.fd);
	ffs_cmchan_put(ch);
}

/* ---- ids ---- */

struct ffs_cmid *ffs_cmid_find(struct ffs_cmchan *ch, uint32_t h)
{
	struct ffs_cmid *id;

	pthread_mutex_lock(&ch->ids_lock);
	for (id = ch->ids; id && id->h != h; id = id->next)
		;
	pthread_mutex_unlock(&ch->ids_lock);
	return id;
}

struct ffs_cmid *ffs_cmid_add(struct ffs_cmchan *ch, uint32_t h, void *context,
			      enum rdma_port_space ps)
{
	struct ffs_cmid *id = calloc(1, sizeof(*id));

	if (!id)
		return NULL;
	id->h = h;
	id->ch = ch;
	id->id.channel = &ch->ch;
	id->id.context = context;
	id->id.ps = ps;
	id->id.qp_type = ps == RDMA_PS_UDP || ps == RDMA_PS_IPOIB ? IBV_QPT_UD : IBV_QPT_RC;
	pthread_mutex_lock(&ch->ids_lock);
	id->next = ch->ids;
	ch->ids = id;
	pthread_mutex_unlock(&ch->ids_lock);
	return id;
}

/* Unlists id from its channel and frees it. */
static void cmid_del(struct ffs_cmid *id)
{
	struct ffs_cmchan *ch = id->ch;

	pthread_mutex_lock(&ch->ids_lock);
	for (struct ffs_cmid **pp = &ch->ids; *pp; pp = &(*pp)->next)
		if (*pp == id) {
			*pp = id->next;
			break;
		}
	pthread_mutex_unlock(&ch->ids_lock);
	free(id);
}

FFS_EXPORT int rdma_create_id(struct rdma_event_channel *channel, struct rdma_cm_id **out,
			      void *context, enum rdma_port_space ps)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaCreateId m = FF__RDMA_CREATE_ID__INIT;
	struct ffs_cmid *id;
	Ff__Reply *rep = NULL;
	int err;

	if (!channel || !ffs_cm_ours(channel)) {
		if (!channel && ffs_vprobe(&(struct ffs_vinfo){0}) == 0)
			return ffs_cm_fail(
			    "rdma_create_id without an event channel (synchronous ids)");
		return CMREAL(rdma_create_id)(channel, out, context, ps);
	}
	m.ps = ps;
	req.body_case = FF__REQUEST__BODY_RDMA_CREATE_ID;
	req.rdma_create_id = &m;
	err = ffs_cmcall(to_cmchan(channel), &req, &rep);
	if (err)
		return ffs_cm_err(err);
	id = ffs_cmid_add(to_cmchan(channel), rep->rdma_cm ? rep->rdma_cm->id : 0, context, ps);
	ff__reply__free_unpacked(rep, NULL);
	if (!id)
		return ffs_cm_err(-ENOMEM);
	*out = &id->id;
	return 0;
}

/* One request about id; *rep gets the reply if rep is not NULL (caller
 * frees). librdmacm's convention: 0, or -1 with errno. */
static int id_op(struct ffs_cmid *id, Ff__Request *req, Ff__Reply **rep)
{
	Ff__Reply *r = NULL;
	int err = ffs_cmcall(id->ch, req, &r);

	if (err)
		return ffs_cm_err(err);
	if (rep)
		*rep = r;
	else
		ff__reply__free_unpacked(r, NULL);
	return 0;
}

FFS_EXPORT int rdma_destroy_id(struct rdma_cm_id *cid)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaIdOp m = FF__RDMA_ID_OP__INIT;
	struct ffs_cmid *id = to_cmid(cid);

	if (!ffs_cm_ours(cid->channel))
		return CMREAL(rdma_destroy_id)(cid);
	m.id = id->h;
	req.body_case = FF__REQUEST__BODY_RDMA_DESTROY_ID;
	req.rdma_destroy_id = &m;
	id_op(id, &req, NULL); /* the router may be gone: forget it anyway */
	free(cid->route.path_rec);
	cmid_del(id);
	return 0;
}

/* The addresses the router settled for id. */
static void take_addrs(struct ffs_cmid *id, const Ff__RdmaCmReply *m)
{
	if (m && m->local)
		ffs_cm_set_addr(&id->id.route.addr.src_storage, m->local);
	if (m && m->peer)
		ffs_cm_set_addr(&id->id.route.addr.dst_storage, m->peer);
}

/* Gives id the process's context on ffnet0, as librdmacm gives a device. */
static int attach_verbs(struct ffs_cmid *id)
{
	if (id->id.verbs)
		return 0;
	id->id.verbs = ffs_cm_verbs();
	id->id.port_num = 1;
	return id->id.verbs ? 0 : ffs_cm_err(-errno);
}

FFS_EXPORT int rdma_bind_addr(struct rdma_cm_id *cid, struct sockaddr *addr)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaBind m = FF__RDMA_BIND__INIT;
	struct ffs_cmid *id = to_cmid(cid);
	Ff__Addr a;
	uint8_t ab[16];
	Ff__Reply *rep = NULL;
	int err;

	if (!ffs_cm_ours(cid->channel))
		return CMREAL(rdma_bind_addr)(cid, addr);
	err = ffs_cm_addr(addr, &a, ab);
	if (err)
		return ffs_cm_err(err);
	m.id = id->h;
	m.addr = &a;
	req.body_case = FF__REQUEST__BODY_RDMA_BIND;
	req.rdma_bind = &m;
	err = id_op(id, &req, &rep);
	if (err)
		return err;
	take_addrs(id, rep->rdma_cm);
	ff__reply__free_unpacked(rep, NULL);
	/* like librdmacm: an id bound to a device address knows its device */
	return ffs_cm_is_any(&cid->route.addr.src_addr) ? 0 : attach_verbs(id);
}

FFS_EXPORT int rdma_listen(struct rdma_cm_id *cid, int backlog)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaListen m = FF__RDMA_LISTEN__INIT;

	if (!ffs_cm_ours(cid->channel))
		return CMREAL(rdma_listen)(cid, backlog);
	m.id = to_cmid(cid)->h;
	m.backlog = backlog;
	req.body_case = FF__REQUEST__BODY_RDMA_LISTEN;
	req.rdma_listen = &m;
	return id_op(to_cmid(cid), &req, NULL);
}

FFS_EXPORT int rdma_resolve_addr(struct rdma_cm_id *cid, struct sockaddr *src, struct sockaddr *dst,
				 int timeout_ms)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaResolveAddr m = FF__RDMA_RESOLVE_ADDR__INIT;
	struct ffs_cmid *id = to_cmid(cid);
	Ff__Addr sa, da;
	uint8_t sb[16], db[16];
	Ff__Reply *rep = NULL;
	int err;

	if (!ffs_cm_ours(cid->channel))
		return CMREAL(rdma_resolve_addr)(cid, src, dst, timeout_ms);
	err = ffs_cm_addr(dst, &da, db);
	if (!err && src)
		err = ffs_cm_addr(src, &sa, sb);
	if (err)
		return ffs_cm_err(err);
	m.id = id->h;
	m.dst = &da;
	m.src = src ? &sa : NULL;
	req.body_case = FF__REQUEST__BODY_RDMA_RESOLVE_ADDR;
	req.rdma_resolve_addr = &m;
	err = attach_verbs(id);
	if (!err)
		err = id_op(id, &req, &rep);
	if (err)
		return err;
	take_addrs(id, rep->rdma_cm);
	ff__reply__free_unpacked(rep, NULL);
	return 0;
}

FFS_EXPORT int rdma_resolve_route(struct rdma_cm_id *cid, int timeout_ms)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaResolveRoute m = FF__RDMA_RESOLVE_ROUTE__INIT;

	if (!ffs_cm_ours(cid->channel))
		return CMREAL(rdma_resolve_route)(cid, timeout_ms);
	m.id = to_cmid(cid)->h;
	req.body_case = FF__REQUEST__BODY_RDMA_RESOLVE_ROUTE;
	req.rdma_resolve_route = &m;
	return id_op(to_cmid(cid), &req, NULL);
}

/* The app's connection parameters (or librdmacm's defaults) as m. */
static void param_msg(const struct rdma_cm_id *cid, const struct rdma_conn_param *p,
		      Ff__RdmaConnParam *m)
{
	ff__rdma_conn_param__init(m);
	if (p) {
		ff_vconn_param_to_msg(p, m);
	} else {
		/* like librdmacm without parameters: as many as the device and
		 * the other side allow (the router resolves RDMA_MAX_*) */
		m->responder_resources = RDMA_MAX_RESP_RES;
		m->initiator_depth = RDMA_MAX_INIT_DEPTH;
		m->retry_count = 7;
		m->rnr_retry_count = 7;
	}
	if (cid->qp) {
		m->qp_num = cid->qp->qp_num;
		m->srq = cid->qp->srq != NULL;
	}
}

/* rdma_connect or rdma_accept (accept set) on the shim's id. */
static int conn_op(struct rdma_cm_id *cid, const struct rdma_conn_param *p, bool accept)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaConnect m = FF__RDMA_CONNECT__INIT;
	Ff__RdmaConnParam pm;

	if (!cid->qp)
		return ffs_cm_fail("rdma_cm connections without a QP on the id");
	param_msg(cid, p, &pm);
	m.id = to_cmid(cid)->h;
	m.param = &pm;
	req.body_case = accept ? FF__REQUEST__BODY_RDMA_ACCEPT : FF__REQUEST__BODY_RDMA_CONNECT;
	if (accept)
		req.rdma_accept = &m;
	else
		req.rdma_connect = &m;
	return id_op(to_cmid(cid), &req, NULL);
}

FFS_EXPORT int rdma_connect(struct rdma_cm_id *cid, struct rdma_conn_param *p)
{
	if (!ffs_cm_ours(cid->channel))
		return CMREAL(rdma_connect)(cid, p);
	return conn_op(cid, p, false);
}

/* As with librdmacm, the QP is ready to send once accept returns. */
FFS_EXPORT int rdma_accept(struct rdma_cm_id *cid, struct rdma_conn_param *p)
{
	int ret;

	if (!ffs_cm_ours(cid->channel))
		return CMREAL(rdma_accept)(cid, p);
	ret = conn_op(cid, p, true);
	if (!ret)
		cid->qp->state = IBV_QPS_RTS;
	return ret;
}

FFS_EXPORT int rdma_reject(struct rdma_cm_id *cid, const void *pdata, uint8_t len)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaReject m = FF__RDMA_REJECT__INIT;

	if (!ffs_cm_ours(cid->channel))
		return CMREAL(rdma_reject)(cid, pdata, len);
	m.id = to_cmid(cid)->h;
	m.private_data.data = (uint8_t *)pdata;
	m.private_data.len = pdata ? len : 0;
	req.body_case = FF__REQUEST__BODY_RDMA_REJECT;
	req.rdma_reject = &m;
	return id_op(to_cmid(cid), &req, NULL);
}

FFS_EXPORT int rdma_disconnect(struct rdma_cm_id *cid)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__RdmaIdOp m = FF__RDMA_ID_OP__INIT;

	if (!ffs_cm_ours(cid->channel))
		return CMREAL(rdma_disconnect)(cid);
	m.id = to_cmid(cid)->h;
	req.body_case = FF__REQUEST__BODY_RDMA_DISCONNECT;
	req.rdma_disconnect = &m;
	return id_op(to_cmid(cid), &req, NULL);
}

/* ---- options and notifications ---- */

FFS_EXPORT int rdma_set_option(struct rdma_cm_id *id, int level, int optname, void *val, size_t len)
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

FFS_EXPORT int rdma_create_ep(struct rdma_cm_id **id, struct rdma_addrinfo *res, struct ibv_pd *pd,
			      struct ibv_qp_init_attr *attr)
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

/* ---- devices ---- */

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
