/* The ingress: other routers connect, send a sealed preamble (auth.c),
 * and the connection is queued on the target container's listener, or,
 * for a kind of preamble another part serves (ffr_ingress_handle), handed
 * to it. A connection is handed to the app as the socket it is: kernel
 * TCP on the host, both ends, no router on the data path.
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
#include <inttypes.h>
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
	struct ff_sa from;
	struct timeval deadline; /* from accept, never extended */
	uint8_t in[FFR_XFRAME_MAX + 2];
	size_t inlen, inwant;
};

static void ingress_free(struct ffr_ingress *g)
{
	struct ffr_xhost *xh = ffr_xh(g->r);

	TAILQ_REMOVE(&xh->ingresses, g, link);
	xh->npending--;
	if (g->ev)
		event_free(g->ev);
	if (g->fd >= 0)
		close(g->fd);
	free(g);
}

static void answer(int fd, Ff__Status st, const char *err)
{
	uint8_t buf[256];
	size_t len = ffr_xreply_frame(st, err, buf, sizeof(buf));

	/* a few bytes into an empty socket buffer: they fit */
	if (send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
		ff_dbg("ingress: reply not sent: %s", strerror(errno));
}

int ffr_ingress_queue(struct ffr_router *r, struct ffr_container *c, const struct ff_sa *local,
		      const struct ff_sa *peer, const char *peer_name, int fd)
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
	cn = ffr_conn_tcp(r, c, false, local, peer, peer_name, fd);
	ff_sa_to_proto(local, &lm, lb);
	ff_sa_to_proto(peer, &pm, pb);
	a.local = &lm;
	a.peer = &pm;
	a.path = FF__PATH__PATH_TCP;
	a.conn_id = cn ? cn->id : 0;
	a.slot = cn ? cn->srv.slot : UINT32_MAX;
	return ffr_listener_push(l, &a, fd);
}

static void preamble(struct ffr_ingress *g)
{
	struct ffr_router *r = g->r;
	Ff__XPreamble *p = NULL;
	struct ffr_container *t;
	struct ff_sa src, dst;
	char name[FFR_NAME_MAX + FFR_HOST_MAX + 2], a[FF_ADDRSTRLEN];
	int err = ffr_preamble_open(r, g->in + 2, g->inlen - 2, &p);

	/* Out of our epoll set before the socket is handed over: a
	 * registration belongs to the open file, which the app keeps, and would
	 * wake this loop for every packet of the connection from then on. */
	event_del(g->ev);

	if (err) {
		r->bad_messages++;
		ff_warn("ingress from %s: preamble refused (%s)", ff_sa_fmt(&g->from, a, sizeof(a)),
			err == -EACCES ? "bad MAC: wrong or no cluster secret"
			: err == -ETIME ? "stale: clocks more than a minute apart?"
			: err == -EALREADY ? "replayed"
					   : strerror(-err));
		answer(g->fd, FF__STATUS__ST_PERM, "not authenticated");
		return;
	}
	if (p->cm && ffr_xh(r)->served[FFR_PREAMBLE_CM]) {
		/* rdma_cm: the connection becomes that connection's lifeline */
		ffr_xh(r)->served[FFR_PREAMBLE_CM](r, p, g->fd, g->in + g->inlen - FFR_MAC_LEN);
		g->fd = -1;
		return;
	}
	if (p->cm) {
		ff__xpreamble__free_unpacked(p, NULL);
		answer(g->fd, FF__STATUS__ST_UNSUPPORTED, "no rdma_cm on this host");
		return;
	}
	snprintf(name, sizeof(name), "%.63s@%.63s", p->src_container, p->src_host);
	err = ff_sa_from_proto(&src, p->src) < 0 || ff_sa_from_proto(&dst, p->dst) < 0 ? -EINVAL : 0;
	ff__xpreamble__free_unpacked(p, NULL);
	t = err ? NULL : ffr_container_by_ip(r, &dst.ip);
	if (!t || t->remote) {
		answer(g->fd, FF__STATUS__ST_REFUSED, "no such container on this host");
		return;
	}
	if (!ffr_listener_find(t, &dst)) {
		answer(g->fd, FF__STATUS__ST_REFUSED, "connection refused");
		return;
	}
	/* the answer first: once queued, the app may write at once */
	answer(g->fd, FF__STATUS__ST_OK, NULL);
	err = ffr_ingress_queue(r, t, &dst, &src, name, g->fd);
	g->fd = -1;
	if (err)
		ff_warn("%s: accept queue full, dropped a connection from %s", t->name, name);
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
	uint64_t quiet;

	xh->stats.ingress_timeouts++;
	if (ffr_ratelog(&xh->timeout_log, &quiet))
		ff_info("ingress from %s: no preamble within %d ms, closed (%" PRIu64
			" more since the last such line)",
			ff_sa_fmt(&g->from, a, sizeof(a)), xh->preamble_ms, quiet);
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
	else if (err > 0)
		preamble(g);
	ingress_free(g);
}

/* Whether one more connection from ip may wait for its preamble. */
static bool ingress_room(struct ffr_xhost *xh, const struct ff_ip *ip)
{
	bool all = xh->npending >= xh->max_pending, one = false;
	struct ffr_ingress *g;
	char a[FF_ADDRSTRLEN];
	uint32_t same = 0;
	uint64_t quiet;

	TAILQ_FOREACH (g, &xh->ingresses, link)
		if (!all && ff_ip_equal(&g->from.ip, ip) && ++same >= xh->max_per_source) {
			one = true;
			break;
		}
	if (!all && !one)
		return true;
	xh->stats.ingress_overcap++;
	if (ffr_ratelog(&xh->overcap_log, &quiet))
		ff_warn("ingress from %s: closed at once, %u connections %s wait for a preamble "
			"already (%" PRIu64 " more closed since the last such line)",
			ff_ip_fmt(ip, a, sizeof(a)), all ? xh->max_pending : xh->max_per_source,
			all ? "in all" : "from that address", quiet);
	return false;
}

/* A pending connection on fd (consumed), with its deadline. */
static void ingress_new(struct ffr_router *r, int fd, const struct ff_sa *from)
{
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
	evutil_gettimeofday(&g->deadline, NULL);
	evutil_timeradd(&g->deadline, &tv, &g->deadline);
	TAILQ_INSERT_TAIL(&xh->ingresses, g, link);
	xh->npending++;
	g->ev = event_new(r->base, fd, EV_READ, ingress_cb, g);
	if (!g->ev || event_add(g->ev, &tv) < 0)
		ingress_free(g);
}

static void ingress_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ff_sa from = {.port = 0};

		if (fd < 0)
			return;
		ff_sa_from_sockaddr(&from, (struct sockaddr *)&ss, len);
		ingress_new(arg, fd, &from);
	}
}

int ffr_tcp_listen(const struct ff_sa *addr)
{
	struct sockaddr_storage ss;
	int one = 1, len = ff_sa_to_sockaddr(addr, addr->ip.family, &ss), err;
	int fd = socket(addr->ip.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0 || listen(fd, 1024) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int ffr_ingress_open(struct ffr_router *r, const char *hostport)
{
	struct ffr_xhost *xh = ffr_xh(r);
	struct ff_sa addr;

	if (ffr_parse_hostport(hostport, &addr) < 0)
		return -EINVAL;
	xh->ifd = ffr_tcp_listen(&addr);
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
