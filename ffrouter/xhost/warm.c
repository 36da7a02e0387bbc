/* Warm connections: to each host this router connects containers to, a
 * few host TCP connections to its router's ingress, opened ahead of need.
 * Each has already sent a warm preamble (sealed, bound to it, as any
 * other), so the ingress keeps it without a deadline of preamble_ms. A
 * connect then takes one, seals its own preamble onto it and waits only
 * for the answer: no TCP handshake, no accept, no pending ingress while
 * the app waits (issue 13: connects/s across hosts).
 * Authentication is unchanged: the preamble that hands a connection to a
 * container is still sealed for that one connection and that one app
 * connection, at the moment of the connect; a warm connection carries at
 * most one app connection and is then the app's.
 * A pool exists once a container connected to the host, and is topped up
 * at each take; a connection is replaced after WARM_LIFE_MS (below the
 * ingress's FFR_WARM_IDLE_MS) only if the pool was used meanwhile, so
 * hosts no one talks to any more get no connections. A warm connection
 * with anything to read when taken (a refusal, EOF, a reset) is closed and
 * the next one tried; after a failed open the pool waits RETRY_MS before
 * the next. A ready one costs no epoll registration, only a timer.
 * Invariant: pool->n counts its connections, ready or not; each owns its
 * fd and event until it is taken (fd to the caller) or closed. */
#include "internal.h"

#include "log.h"
#include "msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WARM_LIFE_MS 20000 /* < FFR_WARM_IDLE_MS: replaced before the ingress drops it */
#define RETRY_MS 1000

struct ffr_warm {
	TAILQ_ENTRY(ffr_warm) link;
	struct ffr_warm_pool *pool;
	int fd;
	struct event *ev;
	bool ready; /* connected, its warm preamble sent */
	uint8_t out[FFR_XFRAME_MAX + 2];
	size_t outlen, outoff;
};
TAILQ_HEAD(ffr_warm_list, ffr_warm);

struct ffr_warm_pool {
	struct ffr_router *r;
	struct ffr_host *h;
	struct ffr_warm_list conns;
	unsigned n;
	int64_t used_ms, failed_ms; /* last take; last failed open (0: none) */
};

static int64_t warm_now(const struct ffr_router *r)
{
	struct timeval tv;

	event_base_gettimeofday_cached(r->base, &tv);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void warm_close(struct ffr_warm *w)
{
	struct ffr_warm_pool *p = w->pool;

	TAILQ_REMOVE(&p->conns, w, link);
	p->n--;
	ffr_xh(p->r)->warm_open--;
	if (w->ev)
		event_free(w->ev);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

static void warm_open(struct ffr_warm_pool *p);

static void warm_failed(struct ffr_warm *w, const char *why)
{
	struct ffr_warm_pool *p = w->pool;

	p->failed_ms = warm_now(p->r);
	ff_dbg("warm connection to %s: %s", p->h->name, why);
	warm_close(w);
}

/* Sends (the rest of) w's warm preamble: 1 when all of it is out, 0 to
 * wait until the socket is writable, -errno. */
static int warm_send(struct ffr_warm *w)
{
	while (w->outoff < w->outlen) {
		ssize_t n = send(w->fd, w->out + w->outoff, w->outlen - w->outoff,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR || errno == ENOTCONN ? 0 : -errno;
		w->outoff += (size_t)n;
	}
	return 1;
}

static void warm_expire(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_warm *w = arg;
	struct ffr_warm_pool *p = w->pool;
	bool used = warm_now(p->r) - p->used_ms < WARM_LIFE_MS;

	(void)fd;
	(void)what;
	warm_close(w);
	if (used)
		warm_open(p);
}

/* w's preamble is out: from now on only its age is watched, with a timer
 * (no epoll registration: whether the other side closed it meanwhile is
 * checked when it is taken). */
static void warm_ready(struct ffr_warm *w)
{
	struct timeval life = {.tv_sec = WARM_LIFE_MS / 1000, .tv_usec = WARM_LIFE_MS % 1000 * 1000};

	if (w->ev)
		event_free(w->ev);
	w->ev = evtimer_new(w->pool->r->base, warm_expire, w);
	if (!w->ev || evtimer_add(w->ev, &life) < 0) {
		warm_failed(w, "out of memory");
		return;
	}
	w->ready = true;
}

/* Connecting: writable (connected, or failed) or out of time. */
static void warm_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_warm *w = arg;
	socklen_t len = sizeof(int);
	int err = 0;

	if (what & EV_TIMEOUT) {
		warm_failed(w, "no connection in time");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		warm_failed(w, strerror(err ? err : errno));
		return;
	}
	err = warm_send(w);
	if (err < 0)
		warm_failed(w, strerror(-err));
	else if (err > 0)
		warm_ready(w);
}

/* The warm preamble for w's connection. */
static int warm_seal(struct ffr_warm *w)
{
	struct ffr_warm_pool *p = w->pool;
	Ff__XPreamble pre = FF__XPREAMBLE__INIT;
	struct ffr_xbind b;
	int n = ffr_preamble_bind(&pre, &b, p->h->name, w->fd, &p->h->addr);

	if (n < 0)
		return n;
	pre.src_host = p->r->host_id;
	pre.src_container = (char *)"";
	pre.warm = true;
	n = ffr_preamble_seal(p->r, &pre, w->out, sizeof(w->out));
	if (n < 0)
		return n;
	w->outlen = (size_t)n;
	return 0;
}

/* Opens one more warm connection to p's host (nothing on failure: the
 * pool waits RETRY_MS). Between two hosts close by, the handshake is often
 * done when connect returns: the preamble then goes out at once. */
static void warm_open(struct ffr_warm_pool *p)
{
	struct ffr_xhost *xh = ffr_xh(p->r);
	struct timeval tv = {.tv_sec = xh->xconnect_ms / 1000,
			     .tv_usec = xh->xconnect_ms % 1000 * 1000};
	struct ffr_warm *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return;
	w->pool = p;
	TAILQ_INSERT_TAIL(&p->conns, w, link);
	p->n++;
	xh->warm_open++;
	w->fd = ffr_xsocket(p->r, &p->h->addr);
	if (w->fd < 0) {
		err = w->fd;
		w->fd = -1;
		warm_failed(w, strerror(-err));
		return;
	}
	err = warm_seal(w);
	if (!err)
		err = warm_send(w);
	if (err < 0) {
		warm_failed(w, strerror(-err));
		return;
	}
	if (err > 0) {
		warm_ready(w);
		return;
	}
	w->ev = event_new(p->r->base, w->fd, EV_WRITE | EV_PERSIST, warm_cb, w);
	if (!w->ev || event_add(w->ev, &tv) < 0)
		warm_failed(w, "out of memory");
}

/* Whether the other router still keeps w: nothing to read (a refusal or
 * its close would be). */
static bool warm_alive(const struct ffr_warm *w)
{
	char c;

	return recv(w->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

static void warm_fill(struct ffr_warm_pool *p)
{
	int64_t now = warm_now(p->r);

	if (p->failed_ms && now - p->failed_ms < RETRY_MS)
		return;
	p->failed_ms = 0;
	while (p->n < (unsigned)ffr_xh(p->r)->warm_max && !p->failed_ms)
		warm_open(p);
}

int ffr_warm_take(struct ffr_router *r, struct ffr_host *h)
{
	struct ffr_xhost *xh = ffr_xh(r);
	struct ffr_warm_pool *p = h->warm;
	struct ffr_warm *w;
	int fd = -1;

	if (xh->warm_max <= 0)
		return -1;
	if (!p) {
		p = h->warm = calloc(1, sizeof(*p));
		if (!p)
			return -1;
		p->r = r;
		p->h = h;
		TAILQ_INIT(&p->conns);
	}
	p->used_ms = warm_now(r);
	for (w = TAILQ_FIRST(&p->conns); w;) {
		struct ffr_warm *next = TAILQ_NEXT(w, link);

		if (w->ready && warm_alive(w))
			break;
		if (w->ready) {
			ff_dbg("warm connection to %s closed by the other router", h->name);
			warm_close(w);
		}
		w = next;
	}
	if (w) {
		fd = w->fd;
		w->fd = -1;
		warm_close(w);
		xh->stats.warm_taken++;
	} else {
		xh->stats.warm_cold++;
	}
	warm_fill(p);
	return fd;
}

void ffr_warm_free(struct ffr_router *r, struct ffr_host *h)
{
	struct ffr_warm_pool *p = h->warm;
	struct ffr_warm *w;

	(void)r;
	if (!p)
		return;
	while ((w = TAILQ_FIRST(&p->conns)))
		warm_close(w);
	free(p);
	h->warm = NULL;
}
