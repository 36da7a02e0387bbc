/* rdma_cm connections with an id on another host. The active side's
 * router opens a TCP connection to the other host's ingress and sends a
 * sealed preamble carrying the connect request (XPreamble.cm); the passive
 * side's router finds the listener and gives its app CONNECT_REQUEST. The
 * app's accept moves that router's QP and answers ACCEPT with its QP number
 * and PSN; the active side's router moves its own QP and answers RTU, and
 * both apps see ESTABLISHED (a reject comes back as REJECT). Each router
 * only ever moves its own QP, to the physical GID its own locality map
 * gives for the other container's overlay address. The TCP connection then
 * stays open as the connection's lifeline: either side's disconnect, exit
 * or crash closes it, and the other side sees DISCONNECTED.
 * The request is a preamble like any other: bound to this connection and
 * to the other router, and the ingress's refusal of it counts only with a
 * MAC bound to it (xhost/auth.c). Every frame after the preamble carries
 * an HMAC (rdma_cm key) bound to the preamble's own MAC, its direction and
 * its index, so only the two routers that share the secret and this
 * connection can speak on it (proto/ff.proto XCmMsg).
 * Invariants: a lifeline belongs to one id (x->id, id->x) or, while a
 * request is refused, to none; it owns its fd; every length read from the
 * other router is checked before use, and a frame that fails its MAC or
 * comes in the wrong state breaks the lifeline. */
#include "internal.h"

#include "log.h"
#include "msg.h"
#include "xhost.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <rdma/rdma_cma.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ANSWER_MS 60000 /* a connect request unanswered this long: UNREACHABLE */

enum cmx_state {
	X_CONNECTING, /* active: TCP connect, preamble queued */
	X_ASKED,      /* active: waiting for ACCEPT or REJECT */
	X_REQ,        /* passive: waiting for the app's accept or reject */
	X_ACCEPTED,   /* passive: ACCEPT sent, waiting for RTU */
	X_UP,         /* connected: the close is the disconnect */
};

struct ffr_cmx {
	struct ffr_router *r;
	struct ffr_cmid *id;
	enum cmx_state state;
	struct ffr_xline l; /* its fd, its frames */
	struct event *rev, *wev;
	struct ffr_cm_param peer; /* the other side's connect or accept */
	uint32_t peer_psn;
	char name[FFR_NAME_MAX + FFR_HOST_MAX + 2]; /* the other side, for logs */
};

/* ---- frames ---- */

static int cmx_flush(struct ffr_cmx *x)
{
	int err = ffr_xline_flush(&x->l);

	if (err == 1)
		event_add(x->wev, NULL);
	return err < 0 ? err : 0;
}

static int cmx_send(struct ffr_cmx *x, const Ff__XCmMsg *m)
{
	int err = ffr_xline_send(&x->l, &m->base);

	if (err == 1)
		event_add(x->wev, NULL);
	return err < 0 ? err : 0;
}

/* ---- lifelines ---- */

static void cmx_read_cb(evutil_socket_t fd, short what, void *arg);
static void cmx_write_cb(evutil_socket_t fd, short what, void *arg);

/* A lifeline on fd (consumed, also on failure). */
static struct ffr_cmx *cmx_new(struct ffr_router *r, int fd, bool active)
{
	struct ffr_cmx *x = calloc(1, sizeof(*x));

	if (!x) {
		close(fd);
		return NULL;
	}
	x->r = r;
	ffr_xline_init(&x->l, r, fd, FFR_KEY_CM, active);
	x->rev = event_new(r->base, fd, EV_READ | EV_PERSIST, cmx_read_cb, x);
	x->wev = event_new(r->base, fd, EV_WRITE, cmx_write_cb, x);
	if (!x->rev || !x->wev) {
		ffr_cmx_free(x);
		return NULL;
	}
	return x;
}

void ffr_cmx_free(struct ffr_cmx *x)
{
	if (!x)
		return;
	if (x->id)
		x->id->x = NULL;
	if (x->rev)
		event_free(x->rev);
	if (x->wev)
		event_free(x->wev);
	close(x->l.fd);
	free(x);
}

const struct ffr_cm_param *ffr_cmx_peer_param(const struct ffr_cmx *x)
{
	return x ? &x->peer : NULL;
}

void ffr_cmx_reject(struct ffr_cmx *x, int reason, const uint8_t *pdata, size_t len)
{
	Ff__XCmMsg m = FF__XCM_MSG__INIT;

	m.kind = FF__XCM_MSG__KIND__REJECT;
	m.reason = reason;
	m.private_data.data = (uint8_t *)pdata;
	m.private_data.len = pdata ? len : 0;
	if (cmx_send(x, &m) < 0)
		ff_dbg("rdma_cm: reject to %s not sent", x->name);
}

/* The lifeline broke (err) or the other router hung up: what the app sees
 * depends on how far the connection got. Frees x. */
static void cmx_fail(struct ffr_cmx *x, int err, const char *why)
{
	struct ffr_cmid *id = x->id;
	enum cmx_state st = x->state;

	if (id && (err != -ECONNRESET || st != X_UP))
		ff_info("rdma_cm %s: connection with %s: %s", id->ch->name, x->name, why);
	ffr_cmx_free(x);
	if (!id)
		return;
	switch (st) {
	case X_CONNECTING:
	case X_ASKED:
		id->state = CM_ROUTE;
		ffr_cm_event(id, RDMA_CM_EVENT_UNREACHABLE, err, NULL, false, NULL);
		break;
	case X_REQ:
		break; /* the app's accept or reject will find no one to answer */
	case X_ACCEPTED:
		ffr_cm_qp_error(id);
		id->state = CM_DISCONNECTED;
		ffr_cm_event(id, RDMA_CM_EVENT_CONNECT_ERROR, err, NULL, false, NULL);
		break;
	case X_UP:
		ffr_cm_qp_error(id);
		id->state = CM_DISCONNECTED;
		ffr_cm_event(id, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, false, NULL);
		break;
	}
}

/* ---- the active side ---- */

/* The request of id to t on host h, bound to x's connection. */
static int seal_request(struct ffr_cmx *x, struct ffr_cmid *id, const struct ffr_container *t,
			const struct ffr_host *h)
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT;
	Ff__XCmRequest cm = FF__XCM_REQUEST__INIT;
	Ff__RdmaConnParam pm;
	struct ffr_xbind b;
	Ff__Addr s, d;
	uint8_t sb[16], db[16];
	int n = ffr_preamble_bind(&p, &b, t->host, x->l.fd, &h->addr);

	if (n < 0)
		return n;
	p.src_host = x->r->host_id;
	p.src_container = id->ch->name;
	ff_sa_to_proto(&id->local, &s, sb);
	ff_sa_to_proto(&id->peer, &d, db);
	p.src = &s;
	p.dst = &d;
	ffr_cm_param_to_msg(&id->param, false, &pm);
	cm.param = &pm;
	cm.psn = id->psn;
	cm.ps = id->ps;
	p.cm = &cm;
	n = ffr_preamble_seal(x->r, &p, x->l.out, sizeof(x->l.out));
	if (n < 0)
		return n;
	memcpy(x->l.tag, x->l.out + n - FFR_MAC_LEN, FFR_MAC_LEN);
	x->l.outlen = (size_t)n;
	return 0;
}

int ffr_cmx_connect(struct ffr_cmid *id, struct ffr_container *t)
{
	struct ffr_router *r = id->ch->cm->r;
	struct ffr_host *h = ffr_host_find(r, t->host);
	int ms = ffr_xconnect_ms(r);
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	union ibv_gid gid;
	struct ffr_cmx *x = NULL;
	const char *why = NULL;
	int fd = -EHOSTUNREACH;

	if (!ffr_xhost_sealed(r))
		why = "no cluster secret: cross-host is off";
	else if (!h || ffr_rdma_peer_gid(id->ch->cm->rd, t, &gid) < 0)
		why = "its host has no RDMA in the locality map";
	else if ((fd = ffr_xsocket(r, &h->addr)) < 0 || !(x = cmx_new(r, fd, true)))
		why = fd < 0 ? strerror(-fd) : "out of memory";
	else if (seal_request(x, id, t, h) < 0 || event_add(x->wev, &tv) < 0)
		why = "cannot seal the request";
	if (why) {
		ff_info("rdma_cm %s: connect to %s@%s: %s", id->ch->name, t->name, t->host, why);
		ffr_cmx_free(x);
		ffr_cm_event(id, RDMA_CM_EVENT_UNREACHABLE, fd < 0 ? fd : -EHOSTUNREACH, NULL, false,
			     NULL);
		return 0;
	}
	snprintf(x->name, sizeof(x->name), "%s@%s", t->name, t->host);
	x->state = X_CONNECTING;
	x->id = id;
	id->x = x;
	id->state = CM_CONNECTING;
	ff_dbg("rdma_cm %s: connect request to %s", id->ch->name, x->name);
	return 0;
}

static void got_accept(struct ffr_cmx *x, const Ff__XCmMsg *m)
{
	struct ffr_cmid *id = x->id;
	struct ffr_qp_conn qc;
	struct ffr_vqp *q = ffr_cm_qp(id);
	Ff__XCmMsg rtu = FF__XCM_MSG__INIT;
	uint8_t gid[16];
	int err;

	if (!m->param || ffr_cm_param_from(m->param, &x->peer) < 0) {
		cmx_fail(x, -EPROTO, "malformed accept");
		return;
	}
	x->peer_psn = m->psn & 0xffffff;
	ffr_cm_qp_conn(id->ch->cm->rd, &id->param, id->psn, &x->peer, x->peer_psn, true, &qc);
	err = q ? ffr_vqp_connect(q, &id->peer.ip, &qc) : -ENOENT;
	if (err) {
		ff_warn("rdma_cm %s: connection with %s: QP not connected: %s", id->ch->name,
			x->name, strerror(-err));
		ffr_cmx_reject(x, FFR_REJ_NO_RESOURCES, NULL, 0);
		ffr_cmx_free(x);
		id->state = CM_ROUTE;
		ffr_cm_event(id, RDMA_CM_EVENT_CONNECT_ERROR, err, NULL, false, NULL);
		return;
	}
	rtu.kind = FF__XCM_MSG__KIND__RTU;
	err = cmx_send(x, &rtu);
	if (err) {
		ffr_vqp_set_error(q);
		cmx_fail(x, err, "RTU not sent");
		return;
	}
	x->state = X_UP;
	event_add(x->rev, NULL); /* no deadline any more */
	id->state = CM_CONNECTED;
	id->ch->cm->conns_total++;
	ffr_cm_vgid(&id->peer.ip, gid);
	ffr_cm_event(id, RDMA_CM_EVENT_ESTABLISHED, 0, &x->peer, true, gid);
}

/* A REJECT: before our RTU, the app's connect is refused; after our
 * ACCEPT, the other side could not use it. Frees x. */
static void got_reject(struct ffr_cmx *x, const Ff__XCmMsg *m)
{
	struct ffr_cmid *id = x->id;
	struct ffr_cm_param p = {0};
	int reason = m->reason > 0 && m->reason < 256 ? m->reason : FFR_REJ_CONSUMER_DEFINED;
	bool asked = x->state == X_ASKED;

	ffr_cm_param_pdata(&p, m->private_data.data, m->private_data.len);
	ff_dbg("rdma_cm %s: %s rejected the connection (%d)", id->ch->name, x->name, reason);
	ffr_cmx_free(x);
	if (asked) {
		id->state = CM_ROUTE;
	} else {
		ffr_cm_qp_error(id);
		id->state = CM_DISCONNECTED;
	}
	ffr_cm_event(id, RDMA_CM_EVENT_REJECTED, reason, &p, false, NULL);
}

/* ---- the passive side ---- */

int ffr_cmx_accept(struct ffr_cmid *id, struct ffr_vqp *q)
{
	struct ffr_cmx *x = id->x;
	Ff__XCmMsg m = FF__XCM_MSG__INIT;
	Ff__RdmaConnParam pm;
	struct ffr_qp_conn qc;
	int err;

	if (x->state != X_REQ)
		return -EINVAL;
	ffr_cm_qp_conn(id->ch->cm->rd, &x->peer, x->peer_psn, &id->param, id->psn, false, &qc);
	err = ffr_vqp_connect(q, &id->peer.ip, &qc);
	if (err)
		return err;
	ffr_cm_param_to_msg(&id->param, false, &pm);
	m.kind = FF__XCM_MSG__KIND__ACCEPT;
	m.param = &pm;
	m.psn = id->psn;
	err = cmx_send(x, &m);
	if (err) {
		ffr_vqp_set_error(q);
		ffr_cmx_free(x);
		return -ECONNRESET;
	}
	ffr_cm_leave_listener(id);
	x->state = X_ACCEPTED;
	id->state = CM_CONNECTING;
	return 0;
}

static void got_rtu(struct ffr_cmx *x)
{
	struct ffr_cmid *id = x->id;
	uint8_t gid[16];

	x->state = X_UP;
	id->state = CM_CONNECTED;
	id->ch->cm->conns_total++;
	ffr_cm_vgid(&id->peer.ip, gid);
	ffr_cm_event(id, RDMA_CM_EVENT_ESTABLISHED, 0, &x->peer, true, gid);
}

/* Why the request p may not reach a listener here (0: it may). */
static int request_check(struct ffr_router *r, const Ff__XPreamble *p, struct ff_sa *src,
			 struct ff_sa *dst, struct ffr_container **t, const char **why)
{
	struct ffr_container *s;
	union ibv_gid gid;

	if (!ffr_cm_of(r)->rd) {
		*why = "no RDMA device here";
		return FFR_REJ_INVALID_SERVICE_ID;
	}
	if (!p->src || !p->dst || ff_sa_from_proto(src, p->src) < 0 ||
	    ff_sa_from_proto(dst, p->dst) < 0 || !p->cm->param) {
		*why = "malformed request";
		return FFR_REJ_INVALID_SERVICE_ID;
	}
	*t = ffr_container_by_ip(r, &dst->ip);
	if (!*t || (*t)->remote) {
		*why = "no such container on this host";
		return FFR_REJ_INVALID_SERVICE_ID;
	}
	s = ffr_container_by_ip(r, &src->ip);
	if (!s || !s->remote || strcmp(s->host, p->src_host) != 0) {
		*why = "its source is not a container of that host in the locality map";
		return FFR_REJ_INVALID_GID;
	}
	if (ffr_rdma_peer_gid(ffr_cm_of(r)->rd, s, &gid) < 0) {
		*why = "that host has no RDMA in the locality map";
		return FFR_REJ_INVALID_GID;
	}
	return 0;
}

void ffr_cmx_incoming(struct ffr_router *r, Ff__XPreamble *p, int fd, const uint8_t *tag)
{
	struct ffr_cmx *x = cmx_new(r, fd, false);
	struct ffr_container *t = NULL;
	struct ffr_cmid *child = NULL;
	struct ff_sa src, dst;
	const char *why = NULL;
	uint8_t gid[16];
	int reason;

	if (!x) {
		ff__xpreamble__free_unpacked(p, NULL);
		return;
	}
	memcpy(x->l.tag, tag, FFR_MAC_LEN);
	x->state = X_REQ;
	snprintf(x->name, sizeof(x->name), "%.63s@%.63s", p->src_container, p->src_host);
	reason = request_check(r, p, &src, &dst, &t, &why);
	if (!reason && ffr_cm_param_from(p->cm->param, &x->peer) < 0) {
		why = "too much private data";
		reason = FFR_REJ_CONSUMER_DEFINED;
	}
	x->peer_psn = p->cm->psn & 0xffffff;
	ff__xpreamble__free_unpacked(p, NULL);
	if (!reason && !(child = ffr_cm_request(ffr_cm_of(r), t, &dst, &src))) {
		why = "no listener, or its backlog is full";
		reason = FFR_REJ_INVALID_SERVICE_ID;
	}
	if (reason || event_add(x->rev, NULL) < 0) {
		ff_info("rdma_cm: connect request from %s refused: %s", x->name,
			why ? why : "out of memory");
		ffr_cmx_reject(x, reason ? reason : FFR_REJ_NO_RESOURCES, NULL, 0);
		ffr_cmid_free(child);
		ffr_cmx_free(x);
		return;
	}
	x->id = child;
	child->x = x;
	ff_dbg("rdma_cm %s: connect request from %s", child->ch->name, x->name);
	ffr_cm_vgid(&src.ip, gid);
	ffr_cm_event(child, RDMA_CM_EVENT_CONNECT_REQUEST, 0, &x->peer, true, gid);
}

/* ---- events ---- */

static void got_frame(struct ffr_cmx *x, const Ff__XCmMsg *m)
{
	if (m->kind == FF__XCM_MSG__KIND__REJECT && (x->state == X_ASKED || x->state == X_ACCEPTED))
		got_reject(x, m);
	else if (m->kind == FF__XCM_MSG__KIND__ACCEPT && x->state == X_ASKED)
		got_accept(x, m);
	else if (m->kind == FF__XCM_MSG__KIND__RTU && x->state == X_ACCEPTED)
		got_rtu(x);
	else
		cmx_fail(x, -EPROTO, "unexpected message");
}

/* A first answer that is no CM frame: the ingress refused the preamble
 * with an XReply (not authenticated, no rdma_cm there), or it is a forgery:
 * a refusal either way, the log says which. */
static void got_refusal(struct ffr_cmx *x)
{
	Ff__Status st;
	char text[160], why[200];
	int err = ffr_xreply_open(x->r, x->l.tag, x->l.in + 2, x->l.inlen - 2, &st, text, sizeof(text));

	snprintf(why, sizeof(why), "the other router refused: %s",
		 err == -EBADMSG ? "a frame that failed its check" : text);
	cmx_fail(x, -ECONNREFUSED, why);
}

static void cmx_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_cmx *x = arg;
	Ff__XCmMsg *m;
	int r;

	if (what & EV_TIMEOUT) {
		cmx_fail(x, -ETIMEDOUT, "no answer in time");
		return;
	}
	for (;;) {
		r = ffr_xline_read(&x->l);
		if (r <= 0)
			break;
		m = (Ff__XCmMsg *)ffr_xline_open(&x->l, &ff__xcm_msg__descriptor);
		if (!m) {
			if (x->l.active && x->l.rx_n == 0)
				got_refusal(x);
			else
				cmx_fail(x, -EPROTO, "a frame failed its check");
			return;
		}
		got_frame(x, m); /* may free x */
		ff__xcm_msg__free_unpacked(m, NULL);
		return; /* any next frame: on the next callback */
	}
	if (r < 0)
		cmx_fail(x, r, r == -ECONNRESET ? "the other router closed the connection"
						: strerror(-r));
}

static void cmx_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_cmx *x = arg;
	struct timeval tv = {.tv_sec = ANSWER_MS / 1000};
	socklen_t len = sizeof(int);
	int err = 0;

	if (x->state == X_CONNECTING) {
		if (what & EV_TIMEOUT) {
			cmx_fail(x, -ETIMEDOUT, "the other router did not answer in time");
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			cmx_fail(x, err ? -err : -errno, strerror(err ? err : errno));
			return;
		}
		x->state = X_ASKED;
		if (event_add(x->rev, &tv) < 0) {
			cmx_fail(x, -ENOMEM, "out of memory");
			return;
		}
	}
	err = cmx_flush(x);
	if (err)
		cmx_fail(x, err, strerror(-err));
}
