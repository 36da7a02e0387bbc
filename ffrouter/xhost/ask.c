/* One question to another router, one answer: for a part of this router
 * (rdma/: the remote QP check) that needs the other router's word before
 * it goes on. A TCP connection to that router's ingress, a preamble sealed
 * and bound to it as every preamble is (auth.c), then the ingress's XReply,
 * which counts only if its MAC, bound to the preamble's, holds; then the
 * connection is closed. Whoever sits between the hosts can make the answer
 * fail, never turn it into another.
 * Everything runs on the event loop: the caller hears the answer, or why
 * there is none, through its callback, within the connect timeout
 * (--xconnect-ms) from the start, whatever the other router does.
 * Invariant: an ask owns its fd and its event until it calls back or is
 * cancelled, and it does exactly one of the two. */
#include "internal.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct ffr_xask {
	struct ffr_router *r;
	ffr_xask_fn cb;
	void *arg;
	int fd;
	struct event *ev;
	bool sent;
	char host[FFR_HOST_MAX + 1];
	uint8_t tag[FFR_MAC_LEN]; /* the preamble's MAC, which the answer's is bound to */
	uint8_t out[FFR_XFRAME_MAX + 2];
	size_t outlen, outoff;
	uint8_t in[FFR_XFRAME_MAX + 2];
	size_t inlen, inwant;
	struct timeval deadline;
};

void ffr_xask_cancel(struct ffr_xask *a)
{
	if (!a)
		return;
	if (a->ev)
		event_free(a->ev);
	if (a->fd >= 0)
		close(a->fd);
	free(a);
}

/* Frees a, then calls its caller back. */
static void finish(struct ffr_xask *a, int err, Ff__Status st, const char *why)
{
	ffr_xask_fn cb = a->cb;
	void *arg = a->arg;

	ffr_xask_cancel(a);
	cb(arg, err, st, why ? why : strerror(-err));
}

static void got_reply(struct ffr_xask *a)
{
	Ff__Status st = FF__STATUS__ST_REFUSED;
	char why[200];
	int err = ffr_xreply_open(a->r, a->tag, a->in + 2, a->inlen - 2, &st, why, sizeof(why));

	if (err == -EACCES) { /* a forgery, or for another preamble */
		a->r->bad_messages++;
		ffr_xh(a->r)->stats.replies_refused++;
		ff_warn("router of %s: an answer failed its check: %s", a->host, why);
	}
	finish(a, err, st, why);
}

static void ask_cb(evutil_socket_t fd, short what, void *arg);

static void rearm(struct ffr_xask *a, short what)
{
	struct timeval now, left;

	evutil_gettimeofday(&now, NULL);
	evutil_timersub(&a->deadline, &now, &left);
	if (left.tv_sec < 0)
		left.tv_sec = left.tv_usec = 0;
	event_del(a->ev);
	event_assign(a->ev, a->r->base, a->fd, what, ask_cb, a);
	event_add(a->ev, &left);
}

/* Sends what is left of the preamble: 1 when all is sent, 0 for later. */
static int send_preamble(struct ffr_xask *a)
{
	while (a->outoff < a->outlen) {
		ssize_t n = send(a->fd, a->out + a->outoff, a->outlen - a->outoff,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		a->outoff += (size_t)n;
	}
	return 1;
}

static void ask_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_xask *a = arg;
	socklen_t len = sizeof(int);
	int err = 0, r;

	if (what & EV_TIMEOUT) {
		finish(a, -ETIMEDOUT, 0, "the other router did not answer in time");
		return;
	}
	if (!a->sent) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			finish(a, err ? -err : -errno, 0, NULL);
			return;
		}
		r = send_preamble(a);
		if (r < 0) {
			finish(a, r, 0, NULL);
			return;
		}
		a->sent = r == 1;
		rearm(a, a->sent ? EV_READ : EV_WRITE);
		return;
	}
	r = ffr_xframe_read(fd, a->in, sizeof(a->in), &a->inlen, &a->inwant);
	if (r < 0)
		finish(a, r, 0, r == -ECONNRESET ? "the other router closed the connection" : NULL);
	else if (r == 1)
		got_reply(a);
	else
		rearm(a, EV_READ);
}

/* p, bound to a's connection and sealed, into a->out. */
static int seal(struct ffr_xask *a, Ff__XPreamble *p, const struct ffr_host *h)
{
	struct ffr_xbind b;
	int n = ffr_preamble_bind(p, &b, h->name, a->fd, &h->addr);

	if (n < 0)
		return n;
	p->src_host = a->r->host_id;
	n = ffr_preamble_seal(a->r, p, a->out, sizeof(a->out));
	p->dst_host = NULL; /* p pointed into b */
	p->via_src = p->via_dst = NULL;
	if (n < 0)
		return n;
	a->outlen = (size_t)n;
	memcpy(a->tag, a->out + n - FFR_MAC_LEN, FFR_MAC_LEN);
	return 0;
}

int ffr_xask_start(struct ffr_router *r, const char *host, Ff__XPreamble *p, ffr_xask_fn cb,
		   void *arg, struct ffr_xask **out)
{
	struct ffr_xhost *xh = ffr_xh(r);
	struct ffr_host *h = xh ? ffr_host_find(r, host) : NULL;
	struct timeval tv;
	struct ffr_xask *a;
	int err;

	if (!xh || !xh->keys)
		return -ENOKEY;
	if (!h)
		return -EHOSTUNREACH;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->r = r;
	a->cb = cb;
	a->arg = arg;
	a->inwant = 2;
	snprintf(a->host, sizeof(a->host), "%s", host);
	a->fd = ffr_xsocket(r, &h->addr);
	err = a->fd < 0 ? a->fd : seal(a, p, h);
	if (!err) {
		tv.tv_sec = xh->xconnect_ms / 1000;
		tv.tv_usec = (xh->xconnect_ms % 1000) * 1000;
		evutil_gettimeofday(&a->deadline, NULL);
		evutil_timeradd(&a->deadline, &tv, &a->deadline);
		a->ev = event_new(r->base, a->fd, EV_WRITE, ask_cb, a);
		err = !a->ev || event_add(a->ev, &tv) < 0 ? -ENOMEM : 0;
	}
	if (err) {
		ffr_xask_cancel(a);
		return err;
	}
	*out = a;
	return 0;
}
