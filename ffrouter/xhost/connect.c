/* A connect to a container on another host: this router opens a host TCP
 * connection to that host's router (its ingress), sends a sealed preamble
 * naming source and destination, reads the answer, and on success hands
 * the connected socket to the app (ConnectReply, path TCP). From then on
 * the two apps share a plain host TCP connection; no router is in the way.
 *
 * The preamble is bound to the connection it is sent on, and the other
 * router's answer counts only if its MAC, bound to the preamble's, holds:
 * whoever sits between the hosts can refuse a connect (as a reset would),
 * never accept one.
 * Everything is non-blocking on the event loop; the shim waits for the
 * reply. Failures map to the errno the kernel would have given the app.
 * Invariant: an xconn owns its fd until it is handed over or closed, and
 * dies with the channel that asked for it. */
#include "internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct ffr_xconn {
	TAILQ_ENTRY(ffr_xconn) link;
	struct ffr_router *r;
	struct ffr_chan *ch;
	uint64_t req_id;
	char cname[FFR_NAME_MAX + 1]; /* client container */
	char peer[FFR_NAME_MAX + FFR_HOST_MAX + 2]; /* target "name@host" */
	struct ff_sa src, dst;
	int fd;
	struct event *ev;
	bool direct; /* policy host: a plain host connection, no router at the far end */
	bool warm;   /* on a warm connection (warm.c), not one of its own */
	bool answer_here; /* the app reads the answer: handed over once the preamble is out */
	bool sent;
	struct ffr_host *h; /* the target's host (NULL: direct) */
	uint16_t src_port;  /* the app's bound port, 0 if none */
	uint8_t tag[FFR_MAC_LEN]; /* the preamble's MAC, which the answer's is bound to */
	uint8_t out[FFR_XFRAME_MAX + 2];
	size_t outlen, outoff;
	uint8_t in[FFR_XFRAME_MAX + 2];
	size_t inlen, inwant; /* inwant: 2 until the length is known */
	struct timeval deadline;
};

static void xconn_free(struct ffr_xconn *x)
{
	TAILQ_REMOVE(&ffr_xh(x->r)->xconns, x, link);
	if (x->ev)
		event_free(x->ev);
	if (x->fd >= 0)
		close(x->fd);
	free(x);
}

void ffr_xconn_cancel_chan(void *priv, struct ffr_chan *ch)
{
	struct ffr_xhost *xh = priv;
	struct ffr_xconn *x, *next;

	for (x = TAILQ_FIRST(&xh->xconns); x; x = next) {
		next = TAILQ_NEXT(x, link);
		if (x->ch == ch)
			xconn_free(x);
	}
}

void ffr_xconn_free_all(struct ffr_router *r)
{
	struct ffr_xconn *x;

	while ((x = TAILQ_FIRST(&ffr_xh(r)->xconns)))
		xconn_free(x);
}

static Ff__Status errno_status(int err)
{
	switch (err) {
	case ECONNREFUSED:
	case ECONNRESET:
	case EPIPE:
		return FF__STATUS__ST_REFUSED;
	case ETIMEDOUT:
		return FF__STATUS__ST_TIMEDOUT;
	default:
		return FF__STATUS__ST_UNREACH;
	}
}

struct ffr_conn *ffr_conn_remote(struct ffr_router *r, struct ffr_container *c, bool client,
				 const struct ff_sa *local, const struct ff_sa *remote,
				 const char *remote_name, int fd, Ff__Path path)
{
	struct ffr_conn *cn = ffr_conn_new(r, path);
	struct ffr_conn_side *mine, *theirs;

	if (!cn)
		return NULL;
	mine = client ? &cn->cli : &cn->srv;
	theirs = client ? &cn->srv : &cn->cli;
	if (ffr_conn_side_set(mine, c, local, ffr_fd_ino(fd)) < 0) {
		ffr_conn_free(r, cn);
		return NULL;
	}
	snprintf(theirs->name, sizeof(theirs->name), "%s", remote_name);
	theirs->addr = *remote;
	ffr_conn_established(r, cn);
	return cn;
}

/* A plain host socket for an app whose policy is host: not an overlay
 * connection, so nothing to name or count (path NONE). */
static void hand_over_direct(struct ffr_xconn *x)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__ConnectReply cr = FF__CONNECT_REPLY__INIT;

	rep.id = x->req_id;
	rep.body_case = FF__REPLY__BODY_CONNECT;
	rep.connect = &cr;
	cr.path = FF__PATH__PATH_NONE;
	ffr_reply(x->ch, &rep, &x->fd, 1);
}

/* The connection x hands over, recorded (NULL: its container is gone). */
static struct ffr_conn *xconn_record(struct ffr_xconn *x)
{
	struct ffr_container *c = ffr_container_find(x->r, x->cname);

	return c && !c->remote ? ffr_conn_remote(x->r, c, true, &x->src, &x->dst, x->peer, x->fd,
						 FF__PATH__PATH_TCP)
			       : NULL;
}

/* The other router accepted: the socket goes to the app. */
static void hand_over(struct ffr_xconn *x)
{
	struct ffr_conn *cn = xconn_record(x);

	if (!cn)
		ffr_reply_status(x->ch, x->req_id, FF__STATUS__ST_INTERNAL, "cannot record connection");
	else
		ffr_connect_reply(x->ch, x->req_id, cn, x->fd);
}

/* The preamble is out and the app reads the other router's answer itself:
 * the socket goes over now, with the bytes that mean OK (they are
 * deterministic, and only routers can make them). */
static void hand_over_early(struct ffr_xconn *x)
{
	struct ffr_conn *cn = xconn_record(x);
	uint8_t ok[128];
	size_t len = ffr_xreply_seal(x->r, x->tag, FF__STATUS__ST_OK, NULL, ok, sizeof(ok));
	struct timeval now, left;

	evutil_gettimeofday(&now, NULL);
	evutil_timersub(&x->deadline, &now, &left);
	if (!cn) {
		ffr_reply_status(x->ch, x->req_id, FF__STATUS__ST_INTERNAL, "cannot record connection");
	} else {
		ffr_xh(x->r)->stats.answered_early++;
		ffr_connect_reply_answer(x->ch, x->req_id, cn, x->fd, ok, len,
					 left.tv_sec < 0 ? 1 : (uint32_t)(left.tv_sec * 1000 + left.tv_usec / 1000 + 1));
	}
	xconn_free(x);
}

/* Ends the attempt: hands the socket over on OK, else reports st. */
static void finish(struct ffr_xconn *x, Ff__Status st, const char *why)
{
	char d[FF_ADDRSTRLEN];

	if (st == FF__STATUS__ST_OK && x->direct) {
		hand_over_direct(x);
	} else if (st == FF__STATUS__ST_OK) {
		hand_over(x);
	} else {
		ff_info("%s -> %s (%s): %s", x->cname, ff_sa_fmt(&x->dst, d, sizeof(d)), x->peer, why);
		ffr_reply_status(x->ch, x->req_id, st, "%s", why);
	}
	xconn_free(x);
}

/* Reads the reply frame, never a byte past it: the other app may already
 * be writing on this connection. Returns 1 when complete. */
static int read_reply(struct ffr_xconn *x)
{
	return ffr_xframe_read(x->fd, x->in, sizeof(x->in), &x->inlen, &x->inwant);
}

static void got_reply(struct ffr_xconn *x)
{
	Ff__Status st = FF__STATUS__ST_REFUSED;
	char why[200];
	int err = ffr_xreply_open(x->r, x->tag, x->in + 2, x->inlen - 2, &st, why, sizeof(why));

	if (err == -EBADMSG) {
		finish(x, FF__STATUS__ST_UNREACH, "malformed reply from the other router");
		return;
	}
	if (err) { /* a refusal at most, whatever it says */
		x->r->bad_messages++;
		ffr_xh(x->r)->stats.replies_refused++;
		ff_warn("%s -> %s: the other router's answer failed its check: %s", x->cname,
			x->peer, why);
		finish(x, FF__STATUS__ST_REFUSED, why);
		return;
	}
	/* the other side's "no listener" is a refusal here: there is no
	 * other path to a container on another host */
	finish(x, st == FF__STATUS__ST_OK ? FF__STATUS__ST_OK
		  : st == FF__STATUS__ST_UNREACH || st == FF__STATUS__ST_TIMEDOUT
		      ? st
		      : FF__STATUS__ST_REFUSED,
	       why);
}

static int send_preamble(struct ffr_xconn *x)
{
	while (x->outoff < x->outlen) {
		ssize_t n = send(x->fd, x->out + x->outoff, x->outlen - x->outoff,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		x->outoff += (size_t)n;
	}
	return 1;
}

static void xconn_cb(evutil_socket_t fd, short what, void *arg);

static void rearm(struct ffr_xconn *x, short what)
{
	struct timeval now, left;

	evutil_gettimeofday(&now, NULL);
	evutil_timersub(&x->deadline, &now, &left);
	if (left.tv_sec < 0)
		left.tv_sec = left.tv_usec = 0;
	event_del(x->ev);
	event_assign(x->ev, x->r->base, x->fd, what, xconn_cb, x);
	event_add(x->ev, &left);
}

static int open_socket(struct ffr_xconn *x, const struct ff_sa *to);
static int seal(struct ffr_xconn *x, const struct ffr_container *t, const struct ffr_host *h);

/* A warm connection the other router closed before it read our preamble
 * (its idle time ran out meanwhile, or it restarted): nothing was handed
 * over there, so the connect starts again on a connection of its own.
 * Whether it did. */
static bool retry_cold(struct ffr_xconn *x)
{
	struct ffr_container *t = ffr_container_by_ip(x->r, &x->dst.ip);

	if (!x->warm || x->inlen || !t)
		return false;
	ffr_xh(x->r)->stats.warm_stale++;
	close(x->fd);
	x->fd = -1;
	x->warm = x->sent = false;
	x->outoff = 0;
	x->src.port = x->src_port;
	if (open_socket(x, &x->h->addr) < 0 || seal(x, t, x->h) < 0)
		return false;
	rearm(x, EV_WRITE);
	return true;
}

static void xconn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_xconn *x = arg;
	socklen_t len = sizeof(int);
	int err = 0, r;

	if (what & EV_TIMEOUT) {
		finish(x, FF__STATUS__ST_TIMEDOUT, "the other router did not answer in time");
		return;
	}
	if (!x->sent) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			finish(x, errno_status(err), strerror(err));
			return;
		}
		if (x->direct) {
			finish(x, FF__STATUS__ST_OK, NULL);
			return;
		}
		r = send_preamble(x);
		if (r < 0) {
			finish(x, errno_status(-r), strerror(-r));
			return;
		}
		x->sent = r == 1;
		if (x->sent && x->answer_here)
			hand_over_early(x);
		else
			rearm(x, x->sent ? EV_READ : EV_WRITE);
		return;
	}
	r = read_reply(x);
	if (r < 0 && !retry_cold(x))
		finish(x, errno_status(-r), strerror(-r));
	else if (r == 1)
		got_reply(x);
	else
		rearm(x, EV_READ);
}

/* Starts the host connection: to another router from this router's
 * address (ffr_xsocket), or, direct, a plain one. Across hosts the
 * client's overlay port is the host socket's own ephemeral port: both apps
 * then agree on it. */
static int open_socket(struct ffr_xconn *x, const struct ff_sa *to)
{
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	int len = ff_sa_to_sockaddr(to, to->ip.family, &ss);
	struct ff_sa mine;

	if (x->warm) {
		/* x->fd is taken from the pool, connected */
	} else if (!x->direct) {
		x->fd = ffr_xsocket(x->r, to);
		if (x->fd < 0)
			return x->fd;
	} else {
		x->fd = socket(to->ip.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (x->fd < 0)
			return -errno;
		if (connect(x->fd, (struct sockaddr *)&ss, (socklen_t)len) < 0 &&
		    errno != EINPROGRESS)
			return -errno;
	}
	if (!x->direct && !x->src.port &&
	    getsockname(x->fd, (struct sockaddr *)&ss, &slen) == 0 &&
	    ff_sa_from_sockaddr(&mine, (struct sockaddr *)&ss, slen) == 0)
		x->src.port = mine.port;
	return 0;
}

/* The preamble for target t on host h, bound to x's connection. */
static int seal(struct ffr_xconn *x, const struct ffr_container *t, const struct ffr_host *h)
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT;
	struct ffr_xbind b;
	Ff__Addr s, d;
	uint8_t sb[16], db[16];
	int n = ffr_preamble_bind(&p, &b, t->host, x->fd, &h->addr);

	if (n < 0)
		return n;
	p.src_host = x->r->host_id;
	p.src_container = x->cname;
	ff_sa_to_proto(&x->src, &s, sb);
	ff_sa_to_proto(&x->dst, &d, db);
	p.src = &s;
	p.dst = &d;
	n = ffr_preamble_seal(x->r, &p, x->out, sizeof(x->out));
	if (n < 0)
		return n;
	x->outlen = (size_t)n;
	memcpy(x->tag, x->out + n - FFR_MAC_LEN, FFR_MAC_LEN);
	return 0;
}

/* Starts the TCP path (or, t NULL, a direct host connection to dst). */
static void xconn_begin(struct ffr_xhost *xh, struct ffr_chan *ch, uint64_t id,
			struct ffr_container *t, struct ffr_host *h, const struct ff_sa *src,
			const struct ff_sa *dst)
{
	struct ffr_router *r = ch->r;
	struct ffr_xconn *x;
	struct timeval tv = {.tv_sec = xh->xconnect_ms / 1000,
			     .tv_usec = (xh->xconnect_ms % 1000) * 1000};
	int err;

	x = calloc(1, sizeof(*x));
	if (!x) {
		ffr_reply_status(ch, id, FF__STATUS__ST_INTERNAL, "out of memory");
		return;
	}
	x->r = r;
	x->ch = ch;
	x->req_id = id;
	x->fd = -1;
	x->direct = !t;
	x->answer_here = t && ch->answer_here;
	x->h = h;
	if (src)
		x->src = *src;
	x->src_port = x->src.port;
	x->dst = *dst;
	x->inwant = 2;
	snprintf(x->cname, sizeof(x->cname), "%s", ch->c->name);
	if (t)
		snprintf(x->peer, sizeof(x->peer), "%s@%s", t->name, t->host);
	else
		ff_sa_fmt(dst, x->peer, sizeof(x->peer));
	TAILQ_INSERT_TAIL(&xh->xconns, x, link);
	if (t) {
		x->fd = ffr_warm_take(r, h);
		x->warm = x->fd >= 0;
	}
	err = open_socket(x, t ? &h->addr : dst);
	if (!err && t)
		err = seal(x, t, h);
	/* on a warm connection, the preamble goes out now: it is connected */
	if (!err && x->warm && (err = send_preamble(x)) > 0)
		x->sent = true;
	if (err < 0) {
		finish(x, errno_status(-err), strerror(-err));
		return;
	}
	evutil_gettimeofday(&x->deadline, NULL);
	evutil_timeradd(&x->deadline, &tv, &x->deadline);
	if (x->sent && x->answer_here) {
		hand_over_early(x);
		return;
	}
	x->ev = event_new(r->base, x->fd, x->sent ? EV_READ : EV_WRITE, xconn_cb, x);
	if (!x->ev || event_add(x->ev, &tv) < 0)
		finish(x, FF__STATUS__ST_INTERNAL, "out of memory");
}

/* Whether a connect to t can go to its host at all; if not, answered. */
static struct ffr_host *xconn_host(struct ffr_xhost *xh, struct ffr_chan *ch, uint64_t id,
					 const struct ffr_container *t)
{
	struct ffr_host *h = ffr_host_find(ch->r, t->host);

	if (!h || !xh->keys) {
		ch->r->fallbacks++;
		ffr_reply_status(ch, id, FF__STATUS__ST_UNREACH, "%s",
				 !h ? "unknown host" : "no cluster secret: cross-host is off");
		return NULL;
	}
	return h;
}

void ffr_xconn_tcp(struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
		   const struct ff_sa *src, const struct ff_sa *dst)
{
	struct ffr_xhost *xh = ffr_xh(ch->r);
	struct ffr_host *h = xconn_host(xh, ch, id, t);

	if (h)
		xconn_begin(xh, ch, id, t, h, src, dst);
}

int ffr_xpath_set(struct ffr_router *r, ffr_xpath_fn fn, void *arg)
{
	struct ffr_xhost *xh = ffr_xh(r);

	if (!xh)
		return -ENOENT;
	if (fn && xh->xpath)
		return -EEXIST;
	xh->xpath = fn;
	xh->xpath_arg = arg;
	return 0;
}

bool ffr_xconn_start(void *priv, struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
		     const struct ff_sa *src, const struct ff_sa *dst)
{
	struct ffr_xhost *xh = priv;
	struct ffr_router *r = ch->r;
	struct ffr_host *h = NULL;
	const char *why;
	char a[FF_ADDRSTRLEN];

	if (!t && ffr_outside_check(r, dst, &why) < 0) {
		/* the router would connect as root from the host: not there */
		xh->stats.outside_refused++;
		ff_sa_fmt(dst, a, sizeof(a));
		if (ffr_ratelog(&xh->outside_log))
			ff_info("%s: policy host: connect to %s refused: %s%s", ch->c->name, a, why,
				xh->outside_log.more);
		ffr_reply_status(ch, id, FF__STATUS__ST_REFUSED,
				 "policy host: %s is %s (ffrouter --host-allow)", a, why);
		return true;
	}
	if (t && !(h = xconn_host(xh, ch, id, t)))
		return true;
	if (t && xh->xpath && xh->xpath(xh->xpath_arg, ch, id, t, h, src, dst))
		return true;
	xconn_begin(xh, ch, id, t, h, src, dst);
	return true;
}
