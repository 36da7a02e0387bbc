/* Control channels: receive one request per datagram, check it against the
 * dispatch table (who may send it, how many fds it carries), run its handler.
 * Invariant: a handler owns the fds it is given; the dispatcher closes them
 * for every request that never reaches a handler. A channel that cannot take
 * a reply or keeps sending garbage is closed; nothing else is affected.
 * Death is one path (ffr_chan_kill), wherever it happens: in a handler, in
 * a feature's timer long after the request (a reply that fails), on EOF.
 * The channel's event is deleted before its fd is closed (libevent must
 * never keep a closed fd registered: a new socket with that number would
 * never be read), and the channel is freed by its own read callback, made
 * active, so whoever killed it may still use the pointer until it returns.
 * Connects in flight: a connect a feature answers later is counted from
 * the hand-over to the reply carrying its id. A request reusing an id in
 * flight is refused without being answered under that id's count (else a
 * Lookup with the same id would free a place while the connect goes on);
 * the core's own refusals (bad messages) never count as answers. */
#include "internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHAN_BATCH 32
#define CHAN_MAX_BAD 16
#define CHAN_INFLIGHT_DEFAULT 64

static bool chan_dead(struct ffr_chan *ch)
{
	return ch->fd < 0;
}

static const char *chan_name(const struct ffr_chan *ch)
{
	return ch->c ? ch->c->name : "admin";
}

void ffr_chan_kill(struct ffr_chan *ch, const char *why)
{
	if (chan_dead(ch))
		return;
	if (why)
		ff_warn("channel %s pid %d: %s, closing it", chan_name(ch), (int)ch->pid, why);
	if (ch->ev)
		event_del(ch->ev);
	close(ch->fd);
	ch->fd = -1;
	if (ch->ev)
		event_active(ch->ev, EV_READ, 0);
}

static uint32_t inflight_cap(const struct ffr_chan *ch)
{
	return ch->r->quota.inflight ? ch->r->quota.inflight : CHAN_INFLIGHT_DEFAULT;
}

static int inflight_find(const struct ffr_chan *ch, uint64_t id)
{
	for (uint32_t i = 0; i < ch->ninflight; i++)
		if (ch->inflight[i] == id)
			return (int)i;
	return -1;
}

int ffr_chan_inflight_add(struct ffr_chan *ch, uint64_t id)
{
	if (ch->ninflight >= inflight_cap(ch))
		return -ENOBUFS;
	if (!ch->inflight && !(ch->inflight = calloc(inflight_cap(ch), sizeof(*ch->inflight))))
		return -ENOMEM;
	ch->inflight[ch->ninflight++] = id;
	if (ch->c)
		ch->c->nconnecting++;
	return 0;
}

void ffr_chan_inflight_del(struct ffr_chan *ch, uint64_t id)
{
	int i = ch->ninflight ? inflight_find(ch, id) : -1;

	if (i < 0)
		return;
	ch->inflight[i] = ch->inflight[--ch->ninflight];
	if (ch->c)
		ch->c->nconnecting--;
}

/* answers: rep is the answer to request rep->id (a connect in flight with
 * that id is over); the core's refusals of malformed input are not. */
static int reply_send(struct ffr_chan *ch, Ff__Reply *rep, const int *fds, int nfds, bool answers)
{
	int err;

	if (answers && (rep->body_case == FF__REPLY__BODY_CONNECT ||
			rep->body_case == FF__REPLY__BODY__NOT_SET))
		ffr_chan_inflight_del(ch, rep->id);
	if (chan_dead(ch))
		return -EPIPE;
	if (ch->deliver) {
		ch->deliver(ch->deliver_arg, rep, fds, nfds);
		return 0;
	}
	err = ff_msg_send(ch->fd, &rep->base, fds, nfds);
	if (err) {
		char why[64];

		snprintf(why, sizeof(why), "reply failed (%s)", strerror(-err));
		ffr_chan_kill(ch, why);
	}
	return err;
}

int ffr_reply(struct ffr_chan *ch, Ff__Reply *rep, const int *fds, int nfds)
{
	return reply_send(ch, rep, fds, nfds, true);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ffr_reply_piece(struct ffr_chan *ch, Ff__Reply *rep, int *budget_ms)
{
	struct pollfd p = {.fd = ch->fd, .events = POLLOUT};
	int err;

	if (chan_dead(ch))
		return -EPIPE;
	for (;;) {
		int64_t t0 = mono_ms();

		err = ff_msg_send(ch->fd, &rep->base, NULL, 0);
		if (err != -EAGAIN || *budget_ms <= 0 || poll(&p, 1, *budget_ms) < 0)
			break;
		*budget_ms -= (int)(mono_ms() - t0);
	}
	if (err) {
		char why[64];

		snprintf(why, sizeof(why), "reply failed (%s)", strerror(-err));
		ffr_chan_kill(ch, why);
	}
	return err;
}

static int status_send(struct ffr_chan *ch, uint64_t id, Ff__Status st, bool answers,
		       const char *fmt, va_list ap)
{
	Ff__Reply rep = FF__REPLY__INIT;
	char msg[256] = "";

	if (fmt)
		vsnprintf(msg, sizeof(msg), fmt, ap);
	rep.id = id;
	rep.status = st;
	rep.error = msg;
	return reply_send(ch, &rep, NULL, 0, answers);
}

int ffr_reply_status(struct ffr_chan *ch, uint64_t id, Ff__Status st, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = status_send(ch, id, st, true, fmt, ap);
	va_end(ap);
	return err;
}

/* A status that answers nothing: no connect in flight ends with it. */
static int refuse(struct ffr_chan *ch, uint64_t id, Ff__Status st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(struct ffr_chan *ch, uint64_t id, Ff__Status st, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = status_send(ch, id, st, false, fmt, ap);
	va_end(ap);
	return err;
}

Ff__Status ffr_errno_status(int err)
{
	switch (-err) {
	case 0:
		return FF__STATUS__ST_OK;
	case EINVAL:
	case ENOTSOCK:
		return FF__STATUS__ST_INVALID;
	case ENOENT:
		return FF__STATUS__ST_NOT_FOUND;
	case EEXIST:
		return FF__STATUS__ST_EXISTS;
	case EPERM:
	case EACCES:
		return FF__STATUS__ST_PERM;
	case ENOBUFS:
		return FF__STATUS__ST_QUOTA;
	case EOPNOTSUPP:
		return FF__STATUS__ST_UNSUPPORTED;
	case EBUSY:
	case EAGAIN:
		return FF__STATUS__ST_BUSY;
	default:
		return FF__STATUS__ST_INTERNAL;
	}
}

static void bad_message(struct ffr_chan *ch, int err)
{
	ch->bad++;
	ch->r->bad_messages++;
	ff_warn("channel %s pid %d: bad message (%s)", chan_name(ch), (int)ch->pid,
		err == -EMSGSIZE	 ? "too long"
		: err == -ETOOMANYREFS ? "too many fds"
		: err == -EBADMSG	 ? "does not parse"
				       : strerror(-err));
	refuse(ch, 0, FF__STATUS__ST_INVALID, "bad message: %s",
	       err == -EMSGSIZE ? "too long" : err == -ETOOMANYREFS ? "too many fds" : "malformed");
	if (ch->bad >= CHAN_MAX_BAD)
		ffr_chan_kill(ch, "too many bad messages");
}

static char request_names[FFR_OPS_MAX][40];

static void request_names_init(void)
{
	for (unsigned k = 0; k < FFR_OPS_MAX; k++) {
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field(&ff__request__descriptor, k);

		snprintf(request_names[k], sizeof(request_names[k]), "request %s",
			 f ? f->name : "?");
	}
}

/* "request connect": the watchdog's name of a request (static storage). */
static const char *request_name(unsigned k)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, request_names_init);
	return k < FFR_OPS_MAX ? request_names[k] : "request";
}

static void dispatch(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	unsigned k = (unsigned)req->body_case;
	const struct ffr_op *op = k < FFR_OPS_MAX ? &ch->r->ops[k] : NULL;

	if (ch->ninflight && inflight_find(ch, req->id) >= 0) {
		ch->r->bad_messages++;
		refuse(ch, req->id, FF__STATUS__ST_INVALID, "request id %llu is still in flight",
		       (unsigned long long)req->id);
		goto out_close;
	}
	if (!op || !op->fn) {
		ch->r->bad_messages++;
		ffr_reply_status(ch, req->id, FF__STATUS__ST_UNSUPPORTED, "unknown request %u", k);
		goto out_close;
	}
	if (!ch->hello && k != FF__REQUEST__BODY_HELLO) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_NOT_HELLO, "first message must be Hello");
		ffr_chan_kill(ch, NULL);
		goto out_close;
	}
	if (!(ch->c ? op->shim : op->ctl)) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_PERM, "request not allowed on this socket");
		goto out_close;
	}
	if (nfds != op->nfds) {
		ch->r->bad_messages++;
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID, "expected %d fds, got %d",
				 op->nfds, nfds);
		goto out_close;
	}
	ffr_doing(ch->r, request_name(k), ch->c ? ch->c->name : "admin", ch->pid);
	op->fn(ch, req, fds, nfds);
	return;
out_close:
	ff_close_fds(fds, nfds);
}

static void chan_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_chan *ch = arg;
	uint8_t *buf = malloc(FF_MSG_MAX);

	for (int i = 0; buf && i < CHAN_BATCH && !chan_dead(ch); i++) {
		ProtobufCMessage *m = NULL;
		int fds[FF_MAX_FDS], nfds = 0;
		int r = ff_msg_recv(ch->fd, &ff__request__descriptor, buf, FF_MSG_MAX, &m, fds,
				    FF_MAX_FDS, &nfds, MSG_DONTWAIT);

		if (r == -EAGAIN)
			break;
		if (r == 0 || r == -ECONNRESET || r == -ENOTCONN) {
			ffr_chan_kill(ch, NULL);
			break;
		}
		if (r < 0) {
			bad_message(ch, r);
			continue;
		}
		dispatch(ch, (Ff__Request *)m, fds, nfds);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	free(buf);
	if (chan_dead(ch))
		ffr_chan_free(ch);
}

struct ffr_chan *ffr_chan_of_fd(struct ffr_container *c, int fd)
{
	struct ffr_chan *ch;

	TAILQ_FOREACH_REVERSE(ch, &c->chans, ffr_chan_list, link)
	if (ch->fd == fd)
		return ch;
	return NULL;
}

void ffr_chan_local(struct ffr_chan *ch,
		    void (*deliver)(void *arg, const Ff__Reply *rep, const int *fds, int nfds),
		    void *arg)
{
	ch->deliver = deliver;
	ch->deliver_arg = arg;
}

int ffr_chan_request(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	if (chan_dead(ch) || !ch->hello) {
		ff_close_fds(fds, nfds);
		return -EPIPE;
	}
	dispatch(ch, req, fds, nfds);
	return 0;
}

int ffr_chan_new(struct ffr_router *r, struct ffr_container *c, int fd)
{
	struct ffr_chan *ch = calloc(1, sizeof(*ch));
	struct ucred cred = {0};
	socklen_t len = sizeof(cred);

	if (!ch) {
		close(fd);
		return -ENOMEM;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		ch->pid = cred.pid;
		ch->uid = cred.uid;
	}
	ch->r = r;
	ch->c = c;
	ch->fd = fd;
	if (c) {
		TAILQ_INSERT_TAIL(&c->chans, ch, link);
		c->nchans++;
	} else {
		TAILQ_INSERT_TAIL(&r->admin, ch, link);
	}
	ch->ev = event_new(r->base, fd, EV_READ | EV_PERSIST, chan_read_cb, ch);
	if (!ch->ev || event_add(ch->ev, NULL) < 0) {
		ffr_chan_free(ch);
		return -ENOMEM;
	}
	ff_dbg("channel %s: pid %d uid %d connected", chan_name(ch), (int)ch->pid,
	       (int)ch->uid);
	return 0;
}

void ffr_chan_free(struct ffr_chan *ch)
{
	if (!ch)
		return;
	ffr_features_chan_free(ch);
	if (ch->c) {
		TAILQ_REMOVE(&ch->c->chans, ch, link);
		ch->c->nchans--;
		ch->c->nconnecting -= ch->ninflight;
	} else {
		TAILQ_REMOVE(&ch->r->admin, ch, link);
	}
	if (ch->ev)
		event_free(ch->ev);
	if (ch->fd >= 0)
		close(ch->fd);
	free(ch->inflight);
	free(ch);
}

bool ffr_container_has_pid(const struct ffr_container *c, pid_t pid)
{
	char path[64];
	struct stat st;

	if (!c->ns_ino)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (stat(path, &st) < 0)
		return false;
	return st.st_dev == c->ns_dev && st.st_ino == c->ns_ino;
}

void ffr_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_container *c = arg;

	for (;;) {
		struct ucred cred = {0};
		socklen_t len = sizeof(cred);
		int cfd = ffr_accept(c->r, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (cfd != -EAGAIN && cfd != -EINTR)
				ff_warn("%s: accept: %s", c->name, strerror(-cfd));
			return;
		}
		getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
		if (c->nchans >= c->r->quota.channels) {
			ff_warn("%s: channel quota (%u) reached, refusing pid %d", c->name,
				c->r->quota.channels, (int)cred.pid);
			close(cfd);
			continue;
		}
		if (!ffr_container_has_pid(c, cred.pid)) {
			ff_warn("%s: pid %d is not in the container's network namespace, refused",
				c->name, (int)cred.pid);
			close(cfd);
			continue;
		}
		ffr_chan_new(c->r, c, cfd);
	}
}
