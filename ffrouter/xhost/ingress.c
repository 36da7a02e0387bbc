/* The ingress: other routers connect, send a sealed preamble (auth.c),
 * and the connection is queued on the target container's listener, or,
 * for a kind of preamble another part serves (ffr_ingress_handle: rdma_cm's
 * connect requests, rdma/'s remote QP checks), handed to it. A connection
 * is handed to the app as the socket it is: kernel TCP on the host, both
 * ends, no router on the data path.
 * Against connections that never send a whole preamble (slowloris): each
 * has an absolute deadline, preamble_ms from its accept, whatever it sends
 * meanwhile; and at most max_pending wait for a preamble at a time, at most
 * max_per_source of them from one address: one more is closed as soon as it
 * is accepted (and counted), so one source cannot keep the others out.
 * Invariant: a pending ingress connection owns its fd until it is queued
 * (the listener then owns it) or closed; it dies at its deadline; npending
 * is the number of pending ones. */
#include "internal.h"

#include "log.h"
#include "mac.h"
#include "msg.h"

#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH 64

struct ffr_ingress {
	TAILQ_ENTRY(ffr_ingress) link;
	struct ffr_router *r;
	int fd;
	struct event *ev;
	struct ff_sa from, local; /* the connection's two ends */
	struct timeval deadline;  /* from accept, never extended (warm: from its keeping) */
	bool warm;		  /* kept for its next preamble (warms, not ingresses) */
	char host[FFR_HOST_MAX + 1]; /* warm: the host that sent it */
	uint8_t in[FFR_XFRAME_MAX + 2];
	size_t inlen, inwant;
};

static void ingress_free(struct ffr_ingress *g)
{
	struct ffr_xhost *xh = ffr_xh(g->r);

	if (g->warm) {
		TAILQ_REMOVE(&xh->warms, g, link);
		xh->nwarm--;
	} else {
		TAILQ_REMOVE(&xh->ingresses, g, link);
		xh->npending--;
	}
	if (g->ev)
		event_free(g->ev);
	if (g->fd >= 0)
		close(g->fd);
	free(g);
}

/* Answers g's preamble; tag: its MAC, NULL if that did not hold. */
static void answer(struct ffr_ingress *g, const uint8_t *tag, Ff__Status st, const char *err)
{
	ffr_xreply_send(g->r, g->fd, tag, st, err);
}

/* Counts and logs (at most once a second) a refused preamble. */
static void refused(struct ffr_ingress *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void refused(struct ffr_ingress *g, const char *fmt, ...)
{
	struct ffr_xhost *xh = ffr_xh(g->r);
	char a[FF_ADDRSTRLEN], why[256];
	va_list ap;

	xh->stats.preambles_refused++;
	if (!ffr_ratelog(&xh->refused_log))
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	ff_warn("ingress from %s: preamble refused: %s%s", ff_sa_fmt(&g->from, a, sizeof(a)), why,
		xh->refused_log.more);
}

static const char *refusal(int err)
{
	switch (err) {
	case -EACCES:
		return "bad MAC: wrong or no cluster secret";
	case -EPROTO:
		return "another version of the router-to-router protocol";
	case -ETIME:
		return "stale: clocks more than a minute apart?";
	case -EALREADY:
		return "replayed";
	case -EXDEV:
		return "sealed for another host";
	case -EADDRNOTAVAIL:
		return "not from the address of its host in the locality map "
		       "(NAT between the hosts? see --addr-check)";
	case -ENOTCONN:
		return "sealed for another connection";
	default:
		return strerror(-err);
	}
}

int ffr_ingress_queue(struct ffr_router *r, struct ffr_container *c, const struct ff_sa *local,
		      const struct ff_sa *peer, const char *peer_name, int fd, Ff__Path path)
{
	Ff__Accepted a = FF__ACCEPTED__INIT;
	Ff__Addr lm, pm;
	uint8_t lb[16], pb[16];
	struct ffr_listener *l = ffr_listener_find(c, local);
	struct ffr_conn *cn;

	if (!l) {
		close(fd);
		return -ECONNREFUSED;
	}
	cn = ffr_conn_remote(r, c, false, local, peer, peer_name, fd, path);
	ff_sa_to_proto(local, &lm, lb);
	ff_sa_to_proto(peer, &pm, pb);
	a.local = &lm;
	a.peer = &pm;
	a.path = path;
	a.conn_id = cn ? cn->id : 0;
	a.slot = cn ? cn->srv.slot : UINT32_MAX;
	return ffr_listener_push(l, &a, fd);
}

/* A TCP hand-off: g's connection goes to the listener of its target, if
 * its source is a container of the sending host. Frees p. */
static void handoff(struct ffr_ingress *g, Ff__XPreamble *p, const uint8_t *tag)
{
	struct ffr_router *r = g->r;
	struct ffr_container *s = NULL, *t = NULL;
	struct ff_sa src = {.port = 0}, dst = {.port = 0};
	char name[FFR_NAME_MAX + FFR_HOST_MAX + 2], a[FF_ADDRSTRLEN];
	bool addrs = ff_sa_from_proto(&src, p->src) == 0 && ff_sa_from_proto(&dst, p->dst) == 0;
	int err;

	if (addrs) {
		s = ffr_container_by_ip(r, &src.ip);
		t = ffr_container_by_ip(r, &dst.ip);
	}
	if (!s || !s->remote || strcmp(s->host, p->src_host) != 0) {
		refused(g, "its source %s is not a container of host %.63s in the locality map",
			addrs ? ff_sa_fmt(&src, a, sizeof(a)) : "(malformed)", p->src_host);
		ff__xpreamble__free_unpacked(p, NULL);
		answer(g, tag, FF__STATUS__ST_PERM, "source is not a container of the sending host");
		return;
	}
	ff__xpreamble__free_unpacked(p, NULL);
	snprintf(name, sizeof(name), "%s@%s", s->name, s->host); /* the map's names */
	if (!t || t->remote) {
		answer(g, tag, FF__STATUS__ST_REFUSED, "no such container on this host");
		return;
	}
	if (!ffr_listener_find(t, &dst)) {
		answer(g, tag, FF__STATUS__ST_REFUSED, "connection refused");
		return;
	}
	/* the answer first: once queued, the app may write at once */
	answer(g, tag, FF__STATUS__ST_OK, NULL);
	err = ffr_ingress_queue(r, t, &dst, &src, name, g->fd, FF__PATH__PATH_TCP);
	g->fd = -1;
	if (err)
		ff_warn("%s: accept queue full, dropped a connection from %s", t->name, name);
}

static const char *const unserved[FFR_PREAMBLE_KINDS] = {
	[FFR_PREAMBLE_CM] = "no rdma_cm on this host",
	[FFR_PREAMBLE_QP] = "no RDMA verbs on this host",
	[FFR_PREAMBLE_SOCK] = "no sockets over RDMA on this host",
};

/* The part that serves p; FFR_PREAMBLE_KINDS: none, a TCP hand-off; -1:
 * it asks for two things at once. */
static int preamble_kind(const Ff__XPreamble *p)
{
	if (!!p->cm + !!p->qp + !!p->sock > 1)
		return -1;
	if (p->cm)
		return FFR_PREAMBLE_CM;
	if (p->sock)
		return FFR_PREAMBLE_SOCK;
	return p->qp ? FFR_PREAMBLE_QP : FFR_PREAMBLE_KINDS;
}

/* Keeps g, whose warm preamble p held, for its next frame: the preamble
 * of one connection. Refuses it (answered) if its host is not in the map
 * or keeps too many already. Frees p; whether g is kept. */
static bool keep_warm(struct ffr_ingress *g, Ff__XPreamble *p, const uint8_t *tag)
{
	struct ffr_xhost *xh = ffr_xh(g->r);
	struct timeval tv = {.tv_sec = FFR_WARM_IDLE_MS / 1000,
			     .tv_usec = FFR_WARM_IDLE_MS % 1000 * 1000};
	const char *why = NULL;
	struct ffr_ingress *o;
	uint32_t same = 0;

	TAILQ_FOREACH (o, &xh->warms, link)
		same += !strcmp(o->host, p->src_host);
	if (p->src || p->dst || p->src_container[0] || p->cm || p->qp || p->sock)
		why = "a warm connection names no connection";
	else if (!ffr_host_find(g->r, p->src_host))
		why = "its host is not in the locality map";
	else if (same >= FFR_WARM_CONNS_MAX || xh->nwarm >= xh->max_pending)
		why = "too many warm connections";
	if (why) {
		xh->stats.warm_refused++;
		refused(g, "warm connection from %.63s: %s", p->src_host, why);
		ff__xpreamble__free_unpacked(p, NULL);
		answer(g, tag, FF__STATUS__ST_BUSY, why);
		return false;
	}
	snprintf(g->host, sizeof(g->host), "%s", p->src_host);
	ff__xpreamble__free_unpacked(p, NULL);
	TAILQ_REMOVE(&xh->ingresses, g, link);
	xh->npending--;
	TAILQ_INSERT_TAIL(&xh->warms, g, link);
	xh->nwarm++;
	g->warm = true;
	g->inlen = 0;
	g->inwant = 2;
	evutil_gettimeofday(&g->deadline, NULL);
	evutil_timeradd(&g->deadline, &tv, &g->deadline);
	return event_add(g->ev, &tv) == 0; /* pending already: only its timeout moves */
}

/* Serves g's preamble; whether g is kept (a warm connection). */
static bool preamble(struct ffr_ingress *g)
{
	struct ffr_router *r = g->r;
	struct ffr_xvia via = {g->from, g->local};
	const uint8_t *tag = g->inlen >= 2 + FFR_MAC_LEN ? g->in + g->inlen - FFR_MAC_LEN : NULL;
	Ff__XPreamble *p = NULL;
	int kind, err = ffr_preamble_accept(r, g->in + 2, g->inlen - 2, &via, &p);

	if (err) {
		r->bad_messages++;
		refused(g, "%s", refusal(err));
		answer(g, err == -EACCES ? NULL : tag, FF__STATUS__ST_PERM, "not authenticated");
		return false;
	}
	if (g->warm && (p->warm || strcmp(p->src_host, g->host) != 0)) {
		refused(g, "a warm connection's preamble from %.63s: %s", p->src_host,
			p->warm ? "warm again" : "from another host than its warm one");
		ff__xpreamble__free_unpacked(p, NULL);
		answer(g, tag, FF__STATUS__ST_INVALID, "not this warm connection's preamble");
		return false;
	}
	if (p->warm)
		return keep_warm(g, p, tag); /* still in our epoll set: no change to it */
	/* Out of our epoll set before the socket is handed over: a
	 * registration belongs to the open file, which the app keeps, and would
	 * wake this loop for every packet of the connection from then on. */
	event_del(g->ev);
	kind = preamble_kind(p);
	if (kind == FFR_PREAMBLE_KINDS) {
		handoff(g, p, tag);
	} else if (kind < 0) {
		ff__xpreamble__free_unpacked(p, NULL);
		refused(g, "more than one kind of request");
		answer(g, tag, FF__STATUS__ST_INVALID, "more than one kind of request");
	} else if (ffr_xh(r)->served[kind]) {
		/* rdma_cm: the connection becomes that connection's lifeline; a
		 * QP check: answered there */
		ffr_xh(r)->served[kind](r, p, g->fd, tag);
		g->fd = -1;
	} else {
		ff__xpreamble__free_unpacked(p, NULL);
		answer(g, tag, FF__STATUS__ST_UNSUPPORTED, unserved[kind]);
	}
	return false;
}

/* Waits for more of the preamble until the deadline; -ETIMEDOUT if it has
 * passed. */
static int ingress_arm(struct ffr_ingress *g)
{
	struct timeval now, left;

	evutil_gettimeofday(&now, NULL);
	if (!evutil_timercmp(&now, &g->deadline, <))
		return -ETIMEDOUT;
	evutil_timersub(&g->deadline, &now, &left);
	return event_add(g->ev, &left) < 0 ? -ENOMEM : 0;
}

static void ingress_timeout(struct ffr_ingress *g)
{
	struct ffr_xhost *xh = ffr_xh(g->r);
	char a[FF_ADDRSTRLEN];

	if (g->warm) { /* unused: its router replaces it before, unless it is gone */
		ingress_free(g);
		return;
	}
	xh->stats.ingress_timeouts++;
	if (ffr_ratelog(&xh->timeout_log))
		ff_info("ingress from %s: no preamble within %d ms, closed%s",
			ff_sa_fmt(&g->from, a, sizeof(a)), xh->preamble_ms, xh->timeout_log.more);
	ingress_free(g);
}

static void ingress_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_ingress *g = arg;
	int err;

	if (what & EV_TIMEOUT) {
		ingress_timeout(g);
		return;
	}
	err = ffr_xframe_read(fd, g->in, sizeof(g->in), &g->inlen, &g->inwant);
	if (!err) {
		err = ingress_arm(g); /* the deadline stays where it was */
		if (err == -ETIMEDOUT)
			ingress_timeout(g);
		else if (err)
			ingress_free(g);
		return;
	}
	if (err == -EPROTO)
		g->r->bad_messages++;
	else if (err > 0 && preamble(g))
		return;
	ingress_free(g);
}

/* Whether one more connection from ip may wait for its preamble. */
static bool ingress_room(struct ffr_xhost *xh, const struct ff_ip *ip)
{
	bool all = xh->npending >= xh->max_pending;
	struct ffr_ingress *g;
	char a[FF_ADDRSTRLEN];
	uint32_t same = 0;

	if (!all) {
		TAILQ_FOREACH (g, &xh->ingresses, link)
			if (ff_ip_equal(&g->from.ip, ip) && ++same >= xh->max_per_source)
				break;
		if (same < xh->max_per_source)
			return true;
	}
	xh->stats.ingress_overcap++;
	if (ffr_ratelog(&xh->overcap_log))
		ff_warn("ingress from %s: closed at once, %u connections %s wait for a preamble "
			"already%s",
			ff_ip_fmt(ip, a, sizeof(a)), all ? xh->max_pending : xh->max_per_source,
			all ? "in all" : "from that address", xh->overcap_log.more);
	return false;
}

/* A pending connection on fd (consumed), with its deadline. */
static void ingress_new(struct ffr_router *r, int fd, const struct ff_sa *from)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ffr_xhost *xh = ffr_xh(r);
	struct timeval tv = {.tv_sec = xh->preamble_ms / 1000,
			     .tv_usec = (xh->preamble_ms % 1000) * 1000};
	struct ffr_ingress *g;

	if (!ingress_room(xh, &from->ip)) {
		close(fd);
		return;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		close(fd);
		return;
	}
	g->r = r;
	g->fd = fd;
	g->inwant = 2;
	g->from = *from;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		ff_sa_from_sockaddr(&g->local, (struct sockaddr *)&ss, len);
	evutil_gettimeofday(&g->deadline, NULL);
	evutil_timeradd(&g->deadline, &tv, &g->deadline);
	TAILQ_INSERT_TAIL(&xh->ingresses, g, link);
	xh->npending++;
	g->ev = event_new(r->base, fd, EV_READ | EV_PERSIST, ingress_cb, g);
	if (!g->ev || event_add(g->ev, &tv) < 0)
		ingress_free(g);
}

static void ingress_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = ffr_accept(arg, lfd, (struct sockaddr *)&ss, &len,
				    SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ff_sa from = {.port = 0};

		if (fd < 0)
			return;
		ff_sa_from_sockaddr(&from, (struct sockaddr *)&ss, len);
		ingress_new(arg, fd, &from);
	}
}

int ffr_ingress_open(struct ffr_router *r, const char *hostport)
{
	struct ffr_xhost *xh = ffr_xh(r);
	struct ff_sa addr;

	if (ff_sa_parse(hostport, &addr, 0) < 0)
		return -EINVAL;
	xh->ifd = ffr_listen_tcp(&addr, 1024, false);
	if (xh->ifd < 0)
		return xh->ifd;
	xh->iev = event_new(r->base, xh->ifd, EV_READ | EV_PERSIST, ingress_accept_cb, r);
	if (!xh->iev || event_add(xh->iev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* Closes the ingress, the preambles being read and the published ports. */
void ffr_ingress_close(struct ffr_router *r)
{
	struct ffr_xhost *xh = ffr_xh(r);
	struct ffr_ingress *g;
	struct ffr_publish *p;

	while ((g = TAILQ_FIRST(&xh->ingresses)))
		ingress_free(g);
	while ((g = TAILQ_FIRST(&xh->warms)))
		ingress_free(g);
	while ((p = TAILQ_FIRST(&xh->publishes)))
		ffr_publish_free(p);
	if (xh->iev)
		event_free(xh->iev);
	if (xh->ifd >= 0)
		close(xh->ifd);
	xh->iev = NULL;
	xh->ifd = -1;
}

int ffr_ingress_handle(struct ffr_router *r, enum ffr_preamble_kind kind, ffr_preamble_fn fn)
{
	struct ffr_xhost *xh = ffr_xh(r);

	if (!xh || kind >= FFR_PREAMBLE_KINDS)
		return -EINVAL;
	if (xh->served[kind])
		return -EEXIST;
	xh->served[kind] = fn;
	return 0;
}
