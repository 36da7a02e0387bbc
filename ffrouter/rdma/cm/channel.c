/* rdma_cm for containers: event channels, ids, binding, listening and
 * address/route resolution on overlay addresses. The connection itself is
 * set up by connect.c (with another host's router: xhost.c). No
 * kernel rdma_cm is involved: the router knows both ends (or their host)
 * from the locality map and moves the QPs.
 * Invariants: an id belongs to one channel, and a channel to one
 * container, which only binds and connects from its own addresses; a
 * closed request socket (the app exited) destroys all of the channel's
 * ids, and their peers see a disconnect or a reject. */
#include "internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <rdma/rdma_cma.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CM_BATCH 32
#define CM_MSG_MAX 4096
#define CM_MAX_BAD 16
#define PORT_LO 40000
#define PORT_HI 59999

/* ---- replies and events ---- */

static int cm_reply(struct ffr_cmchan *ch, Ff__Reply *rep)
{
	int err;

	if (ch->dead)
		return -EPIPE;
	err = ff_msg_send(ch->fd, &rep->base, NULL, 0);
	if (err)
		ch->dead = true;
	return err;
}

int ffr_cm_reply_status(struct ffr_cmchan *ch, uint64_t id, int err, const char *fmt, ...)
{
	struct ffr_status_reply s;
	char who[FFR_NAME_MAX + 32];
	va_list ap;

	snprintf(who, sizeof(who), "rdma_cm %s pid %d", ch->name, (int)ch->pid);
	va_start(ap, fmt);
	ffr_status_fill(&s, id, err, who, fmt, ap);
	va_end(ap);
	return cm_reply(ch, &s.rep);
}

/* The id's local and peer addresses, where it has them, into a message's
 * two fields (storage in la/lb and pa/pb). */
static void id_addrs(const struct ffr_cmid *id, Ff__Addr **local, Ff__Addr *la, uint8_t lb[16],
		     Ff__Addr **peer, Ff__Addr *pa, uint8_t pb[16])
{
	if (id->local.ip.family) {
		ff_sa_to_proto(&id->local, la, lb);
		*local = la;
	}
	if (id->peer.ip.family) {
		ff_sa_to_proto(&id->peer, pa, pb);
		*peer = pa;
	}
}

static void reply_id(struct ffr_cmchan *ch, uint64_t rid, const struct ffr_cmid *id)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__RdmaCmReply m = FF__RDMA_CM_REPLY__INIT;
	Ff__Addr la, pa;
	uint8_t lb[16], pb[16];

	m.id = id->h;
	id_addrs(id, &m.local, &la, lb, &m.peer, &pa, pb);
	rep.id = rid;
	rep.body_case = FF__REPLY__BODY_RDMA_CM;
	rep.rdma_cm = &m;
	cm_reply(ch, &rep);
}

void ffr_cm_event(struct ffr_cmid *id, uint32_t type, int status, const struct ffr_cm_param *param,
		  bool swap_rd, const uint8_t *peer_gid)
{
	Ff__RdmaCmEvent m = FF__RDMA_CM_EVENT__INIT;
	Ff__RdmaConnParam pm;
	Ff__Addr la, pa;
	uint8_t lb[16], pb[16];
	int err;

	m.event = type;
	m.id = id->h;
	m.listen_id = id->parent && type == RDMA_CM_EVENT_CONNECT_REQUEST ? id->parent->h : 0;
	m.status = status;
	if (param) {
		ffr_cm_param_to_msg(param, swap_rd, &pm);
		m.param = &pm;
	}
	id_addrs(id, &m.local, &la, lb, &m.peer, &pa, pb);
	if (peer_gid) {
		m.peer_gid.data = (uint8_t *)peer_gid;
		m.peer_gid.len = 16;
	}
	err = id->ch->efd < 0 ? -EPIPE : ff_msg_send(id->ch->efd, &m.base, NULL, 0);
	if (err == -EPIPE || err == -ECONNRESET)
		ff_dbg("rdma_cm %s: event %u for id %u: the app is gone", id->ch->name, type, id->h);
	else if (err)
		ff_warn("rdma_cm %s: event %u for id %u lost: %s", id->ch->name, type, id->h,
			strerror(-err));
}

/* ---- ids ---- */

struct ffr_cmid *ffr_cmid_new(struct ffr_cmchan *ch)
{
	struct ffr_cmid *id = calloc(1, sizeof(*id));

	if (!id)
		return NULL;
	if (ffr_htab_add(&ch->ids_tab, id, &id->h) < 0) {
		free(id);
		return NULL;
	}
	id->ch = ch;
	id->psn = (uint32_t)random() & 0xffffff;
	TAILQ_INSERT_TAIL(&ch->ids, id, link);
	return id;
}

void ffr_cmid_free(struct ffr_cmid *id)
{
	if (!id)
		return;
	ffr_cm_detach(id);
	if (id->state == CM_LISTEN)
		TAILQ_REMOVE(&id->ch->cm->listens, id, llink);
	TAILQ_REMOVE(&id->ch->ids, id, link);
	ffr_htab_del(&id->ch->ids_tab, id->h, id);
	free(id);
}

static struct ffr_cmid *id_get(struct ffr_cmchan *ch, uint32_t h)
{
	return ffr_htab_get(&ch->ids_tab, h);
}

/* Is (ip, port) taken by an id of container c? */
static bool port_taken(struct ffr_cm *cm, const struct ffr_container *c, const struct ff_sa *sa)
{
	struct ffr_cmchan *ch;
	struct ffr_cmid *id;

	TAILQ_FOREACH (ch, &cm->chans, link)
		TAILQ_FOREACH (id, &ch->ids, link)
			if (ch->c == c && id->local.port == sa->port &&
			    (id->state == CM_BOUND || id->state == CM_LISTEN) &&
			    (ff_ip_is_any(&id->local.ip) || ff_ip_is_any(&sa->ip) ||
			     ff_ip_equal(&id->local.ip, &sa->ip)))
				return true;
	return false;
}

static int pick_port(struct ffr_cm *cm, const struct ffr_container *c, struct ff_sa *sa)
{
	for (int k = 0; k <= PORT_HI - PORT_LO; k++) {
		if (cm->next_port < PORT_LO || cm->next_port > PORT_HI)
			cm->next_port = PORT_LO;
		sa->port = cm->next_port++;
		if (!port_taken(cm, c, sa))
			return 0;
	}
	return -EADDRINUSE;
}

/* ---- requests ---- */

static void op_create_id(struct ffr_cmchan *ch, Ff__Request *req)
{
	struct ffr_cmid *id;

	if (!ch->c) {
		ffr_cm_reply_status(ch, req->id, -ENOENT, "container unregistered");
		return;
	}
	id = ffr_cmid_new(ch);
	if (!id) {
		ffr_cm_reply_status(ch, req->id, -ENOMEM, "out of ids");
		return;
	}
	id->ps = req->rdma_create_id->ps;
	id->qp_type = req->rdma_create_id->qp_type;
	reply_id(ch, req->id, id);
}

static int bind_addr(struct ffr_cmid *id, const Ff__Addr *a)
{
	struct ffr_cmchan *ch = id->ch;
	struct ff_sa sa;

	if (!a || ff_sa_from_proto(&sa, a) < 0 || !ch->c)
		return -EINVAL;
	if (id->state != CM_IDLE)
		return -EINVAL;
	if (!ff_ip_is_any(&sa.ip) && !ffr_container_owns_ip(ch->c, &sa.ip))
		return -EADDRNOTAVAIL;
	if (!sa.port && pick_port(ch->cm, ch->c, &sa) < 0)
		return -EADDRINUSE;
	if (port_taken(ch->cm, ch->c, &sa))
		return -EADDRINUSE;
	id->local = sa;
	id->state = CM_BOUND;
	return 0;
}

static void op_bind(struct ffr_cmchan *ch, Ff__Request *req)
{
	struct ffr_cmid *id = id_get(ch, req->rdma_bind->id);
	int err = id ? bind_addr(id, req->rdma_bind->addr) : -EINVAL;

	if (err)
		ffr_cm_reply_status(ch, req->id, err, "bind: %s", strerror(-err));
	else
		reply_id(ch, req->id, id);
}

static void op_listen(struct ffr_cmchan *ch, Ff__Request *req)
{
	struct ffr_cmid *id = id_get(ch, req->rdma_listen->id);
	int err = -EINVAL;

	if (id && id->state == CM_BOUND) {
		id->state = CM_LISTEN;
		id->backlog = req->rdma_listen->backlog > 0 ? req->rdma_listen->backlog : 128;
		TAILQ_INSERT_TAIL(&ch->cm->listens, id, llink);
		err = 0;
	}
	ffr_cm_reply_status(ch, req->id, err, err ? "listen: id not bound" : NULL);
}

/* The source of a connection from id to dst: its bound address, or the
 * container's own of the same family with a fresh port. */
static int src_for(struct ffr_cmid *id, const struct ff_sa *dst)
{
	const struct ff_ip *own = ffr_container_ip(id->ch->c, dst->ip.family);

	if (id->state == CM_BOUND && !ff_ip_is_any(&id->local.ip))
		return id->local.ip.family == dst->ip.family ? 0 : -EAFNOSUPPORT;
	if (!own)
		return -EAFNOSUPPORT;
	id->local.ip = *own;
	return id->state == CM_BOUND ? 0 : pick_port(id->ch->cm, id->ch->c, &id->local);
}

static void op_resolve_addr(struct ffr_cmchan *ch, Ff__Request *req)
{
	const Ff__RdmaResolveAddr *m = req->rdma_resolve_addr;
	struct ffr_cmid *id = id_get(ch, m->id);
	struct ffr_container *t;
	union ibv_gid gid;
	struct ff_sa dst;
	int err = -EINVAL;

	if (!id || !ch->c || (id->state != CM_IDLE && id->state != CM_BOUND) ||
	    !m->dst || ff_sa_from_proto(&dst, m->dst) < 0)
		goto out_err;
	if (m->src && id->state == CM_IDLE && (err = bind_addr(id, m->src)))
		goto out_err;
	err = src_for(id, &dst);
	if (err)
		goto out_err;
	id->peer = dst;
	reply_id(ch, req->id, id);
	/* an overlay address, on this host or one the map says has RDMA */
	t = ffr_container_by_ip(ch->cm->r, &dst.ip);
	if (!t || ffr_rdma_peer_gid(ch->cm->rd, t, &gid) < 0) {
		ffr_cm_event(id, RDMA_CM_EVENT_ADDR_ERROR, -EHOSTUNREACH, NULL, false, NULL);
		return;
	}
	id->state = CM_ADDR;
	ffr_cm_event(id, RDMA_CM_EVENT_ADDR_RESOLVED, 0, NULL, false, NULL);
	return;
out_err:
	ffr_cm_reply_status(ch, req->id, err, "resolve_addr: %s", strerror(-err));
}

static void op_resolve_route(struct ffr_cmchan *ch, Ff__Request *req)
{
	struct ffr_cmid *id = id_get(ch, req->rdma_resolve_route->id);

	if (!id || id->state != CM_ADDR) {
		ffr_cm_reply_status(ch, req->id, -EINVAL, "resolve_route: address not resolved");
		return;
	}
	id->state = CM_ROUTE;
	ffr_cm_reply_status(ch, req->id, 0, NULL);
	ffr_cm_event(id, RDMA_CM_EVENT_ROUTE_RESOLVED, 0, NULL, false, NULL);
}

static void op_connect(struct ffr_cmchan *ch, Ff__Request *req)
{
	struct ffr_cmid *id = id_get(ch, req->rdma_connect->id);
	int err = id ? ffr_cm_connect(id, req->rdma_connect->param) : -EINVAL;

	ffr_cm_reply_status(ch, req->id, err, err ? "connect: %s" : NULL, strerror(-err));
}

static void op_accept(struct ffr_cmchan *ch, Ff__Request *req)
{
	struct ffr_cmid *id = id_get(ch, req->rdma_accept->id);
	int err = id ? ffr_cm_accept(id, req->rdma_accept->param) : -EINVAL;

	ffr_cm_reply_status(ch, req->id, err, err ? "accept: %s" : NULL, strerror(-err));
}

static void op_reject(struct ffr_cmchan *ch, Ff__Request *req)
{
	const Ff__RdmaReject *m = req->rdma_reject;
	struct ffr_cmid *id = id_get(ch, m->id);
	int err = id ? ffr_cm_reject(id, m->private_data.data, m->private_data.len) : -EINVAL;

	ffr_cm_reply_status(ch, req->id, err, err ? "reject: %s" : NULL, strerror(-err));
}

static void op_disconnect(struct ffr_cmchan *ch, Ff__Request *req)
{
	struct ffr_cmid *id = id_get(ch, req->rdma_disconnect->id);
	int err = id ? ffr_cm_disconnect(id) : -EINVAL;

	ffr_cm_reply_status(ch, req->id, err, err ? "disconnect: %s" : NULL, strerror(-err));
}

static void op_destroy_id(struct ffr_cmchan *ch, Ff__Request *req)
{
	struct ffr_cmid *id = id_get(ch, req->rdma_destroy_id->id);

	ffr_cmid_free(id);
	ffr_cm_reply_status(ch, req->id, id ? 0 : -EINVAL, id ? NULL : "no such id");
}

typedef void (*cm_handler)(struct ffr_cmchan *ch, Ff__Request *req);
static const cm_handler cm_ops[] = {
	[FF__REQUEST__BODY_RDMA_CREATE_ID] = op_create_id,
	[FF__REQUEST__BODY_RDMA_BIND] = op_bind,
	[FF__REQUEST__BODY_RDMA_LISTEN] = op_listen,
	[FF__REQUEST__BODY_RDMA_RESOLVE_ADDR] = op_resolve_addr,
	[FF__REQUEST__BODY_RDMA_RESOLVE_ROUTE] = op_resolve_route,
	[FF__REQUEST__BODY_RDMA_CONNECT] = op_connect,
	[FF__REQUEST__BODY_RDMA_ACCEPT] = op_accept,
	[FF__REQUEST__BODY_RDMA_REJECT] = op_reject,
	[FF__REQUEST__BODY_RDMA_DISCONNECT] = op_disconnect,
	[FF__REQUEST__BODY_RDMA_DESTROY_ID] = op_destroy_id,
};

static void cm_dispatch(struct ffr_cmchan *ch, Ff__Request *req, int nfds)
{
	unsigned k = (unsigned)req->body_case;
	cm_handler fn = k < sizeof(cm_ops) / sizeof(cm_ops[0]) ? cm_ops[k] : NULL;

	if (!fn || nfds) {
		ch->cm->r->bad_messages++;
		ffr_cm_reply_status(ch, req->id, -EINVAL, "not an rdma_cm request");
		if (++ch->bad >= CM_MAX_BAD)
			ch->dead = true;
		return;
	}
	ff_dbg("rdma_cm %s pid %d: request %u", ch->name, (int)ch->pid, k);
	fn(ch, req);
}

static void cm_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_cmchan *ch = arg;
	uint8_t *buf = malloc(CM_MSG_MAX);

	for (int i = 0; buf && i < CM_BATCH && !ch->dead; i++) {
		ProtobufCMessage *m = NULL;
		int fds[2], nfds = 0;
		int r = ff_msg_recv(ch->fd, &ff__request__descriptor, buf, CM_MSG_MAX, &m, fds, 2,
				    &nfds, MSG_DONTWAIT);

		if (r == -EAGAIN)
			break;
		if (r == 0 || r == -ECONNRESET || r == -ENOTCONN) {
			ch->dead = true;
			break;
		}
		if (r < 0) {
			ffr_cm_reply_status(ch, 0, -EINVAL, "malformed message");
			ch->dead = ++ch->bad >= CM_MAX_BAD;
			continue;
		}
		ff_close_fds(fds, nfds);
		cm_dispatch(ch, (Ff__Request *)m, nfds);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	free(buf);
	if (ch->dead)
		ffr_cmchan_free(ch);
}

/* ---- channels ---- */

static int cmchan_open(struct ffr_cmchan *ch, int *fds)
{
	int rq[2], ev[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rq) < 0)
		return -errno;
	ch->fd = rq[0];
	fds[0] = rq[1];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ev) < 0)
		return -errno;
	ch->efd = ev[0];
	fds[1] = ev[1];
	if (fcntl(ch->fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(ch->efd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	ch->ev = event_new(ch->cm->r->base, ch->fd, EV_READ | EV_PERSIST, cm_read_cb, ch);
	if (!ch->ev || event_add(ch->ev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

void ffr_op_rdma_cm_open(struct ffr_chan *c, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_cm *cm = ffr_cm_of(c->r);
	struct ffr_cmchan *ch;
	Ff__Reply rep = FF__REPLY__INIT;
	int sfds[2] = {-1, -1}, err = -ENOMEM;

	if (!cm->rd) {
		ffr_reply_status(c, req->id, FF__STATUS__ST_UNSUPPORTED, "no RDMA device here");
		return;
	}
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		goto out_err;
	ch->cm = cm;
	ch->c = c->c;
	ch->pid = c->pid;
	ch->fd = ch->efd = -1;
	snprintf(ch->name, sizeof(ch->name), "%s", c->c->name);
	TAILQ_INIT(&ch->ids);
	TAILQ_INSERT_TAIL(&cm->chans, ch, link);
	err = cmchan_open(ch, sfds);
	if (err) {
		ffr_cmchan_free(ch);
		goto out_err;
	}
	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_RDMA_CM;
	rep.rdma_cm = &(Ff__RdmaCmReply)FF__RDMA_CM_REPLY__INIT;
	ffr_reply(c, &rep, sfds, 2);
	ff_close_fds(sfds, 2);
	ff_dbg("rdma_cm %s pid %d: event channel opened", ch->name, (int)ch->pid);
	return;
out_err:
	ff_close_fds(sfds, 2);
	ffr_reply_status(c, req->id, ffr_errno_status(err), "rdma_cm: %s", strerror(-err));
}

void ffr_cmchan_free(struct ffr_cmchan *ch)
{
	struct ffr_cmid *id;

	if (!ch)
		return;
	/* children first: they point at their listeners */
	while ((id = TAILQ_LAST(&ch->ids, ffr_cmid_list)))
		ffr_cmid_free(id);
	if (ch->ev)
		event_free(ch->ev);
	ff_close_fds(&ch->fd, 1);
	ff_close_fds(&ch->efd, 1);
	TAILQ_REMOVE(&ch->cm->chans, ch, link);
	ffr_htab_free(&ch->ids_tab);
	ff_dbg("rdma_cm %s pid %d: event channel closed", ch->name, (int)ch->pid);
	free(ch);
}
