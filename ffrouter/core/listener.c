/* Overlay listeners. The app's listening fd is the shim end of a
 * SOCK_SEQPACKET pair; the router holds the other end (qfd) and the app's
 * kernel listening socket (kfd). Each pending connection, accelerated or
 * accepted from kfd, is one Accepted message with the connection fd, so the
 * app's fd is readable exactly when a connection is pending.
 * Invariants: a connection fd is owned by exactly one of: the caller of
 * ffr_listener_push, the pending queue, or the kernel queue of qfd. kfd and
 * qfd are open files the container holds too (the shim keeps a copy of qfd
 * for restarts): the router never sets their flags and uses them only
 * through the ffr_shared_* calls, which never block (guard.c). */
#include "internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACCEPT_BATCH 64
#define STASH_DRAIN  4 /* datagrams read from a stash at its end */
#define QUEUE_SNDBUF (1 << 20)
#define PLUG_BYTES 2048

static int sockopt_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len) < 0)
		return -1;
	return v;
}

/* The fd a shim passed must be what it claims: a listening TCP socket bound
 * to addr, in the container's network namespace when that is known. */
static int check_kfd(struct ffr_container *c, int kfd, const struct ff_sa *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ff_sa bound;
	struct stat st;
	int dom;

	if (fstat(kfd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	dom = sockopt_int(kfd, SOL_SOCKET, SO_DOMAIN);
	if ((dom != AF_INET && dom != AF_INET6) ||
	    sockopt_int(kfd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
	    sockopt_int(kfd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP ||
	    sockopt_int(kfd, SOL_SOCKET, SO_ACCEPTCONN) != 1)
		return -EINVAL;
	if (getsockname(kfd, (struct sockaddr *)&ss, &len) < 0 ||
	    ff_sa_from_sockaddr(&bound, (struct sockaddr *)&ss, len) < 0 ||
	    bound.port != addr->port || !ff_ip_equal(&bound.ip, &addr->ip))
		return -EINVAL;
	if (c->ns_ino) {
		int ns = ioctl(kfd, SIOCGSKNS);
		bool same;

		if (ns < 0)
			return -EPERM;
		same = fstat(ns, &st) == 0 && st.st_dev == c->ns_dev && st.st_ino == c->ns_ino;
		close(ns);
		if (!same)
			return -EPERM;
	}
	return 0;
}

static void pending_free(struct ffr_pending *p)
{
	ff_close_fds(p->fds, p->nfds);
	free(p->msg);
	free(p);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg);

static int flush(struct ffr_listener *l)
{
	struct ffr_pending *p;

	while ((p = STAILQ_FIRST(&l->pending))) {
		int err = ffr_shared_send_fds(l->qfd, p->msg, p->len, p->fds, p->nfds);

		if (err == -EAGAIN)
			return -EAGAIN;
		STAILQ_REMOVE_HEAD(&l->pending, link);
		l->npending--;
		pending_free(p);
		if (err)
			return err;
	}
	return 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_listener *l = arg;

	ffr_doing(l->r, "send on an accept queue", l->c->name, 0);
	if (flush(l) == -EAGAIN)
		event_add(l->wev, NULL);
}

int ffr_listener_push(struct ffr_listener *l, const Ff__Accepted *a, int fd)
{
	return ffr_listener_push_fds(l, a, &fd, 1);
}

int ffr_listener_push_fds(struct ffr_listener *l, const Ff__Accepted *a, int *fds, int nfds)
{
	size_t len = ff_msg_size(&a->base);
	struct ffr_pending *p;
	uint8_t small[512];
	int err;

	if (STAILQ_EMPTY(&l->pending) && len <= sizeof(small)) {
		ff_msg_pack(&a->base, small);
		err = ffr_shared_send_fds(l->qfd, small, len, fds, nfds);
		if (err != -EAGAIN) {
			ff_close_fds(fds, nfds);
			if (!err)
				l->accepted++;
			return err;
		}
	}
	if (l->npending >= l->max_pending) {
		ff_close_fds(fds, nfds);
		return -EAGAIN;
	}
	p = calloc(1, sizeof(*p));
	if (p) {
		p->len = len;
		p->msg = malloc(p->len);
	}
	if (!p || !p->msg || nfds > (int)(sizeof(p->fds) / sizeof(p->fds[0]))) {
		if (p)
			free(p->msg);
		free(p);
		ff_close_fds(fds, nfds);
		return -ENOMEM;
	}
	ff_msg_pack(&a->base, p->msg);
	memcpy(p->fds, fds, (size_t)nfds * sizeof(int));
	p->nfds = nfds;
	STAILQ_INSERT_TAIL(&l->pending, p, link);
	l->npending++;
	l->accepted++;
	event_add(l->wev, NULL);
	return 0;
}

/* Connections that reached the kernel listener (peers without ffnet, or a
 * router that was down when they connected) go through the same queue. */
static void kernel_accept(struct ffr_listener *l, int nfd, struct sockaddr_storage *ss,
			  socklen_t len)
{
	Ff__Accepted a = FF__ACCEPTED__INIT;
	Ff__Addr local = FF__ADDR__INIT, peer = FF__ADDR__INIT;
	uint8_t lip[16], pip[16];
	struct sockaddr_storage ls;
	socklen_t llen = sizeof(ls);
	struct ff_sa lsa, psa;

	if (ff_sa_from_sockaddr(&psa, (struct sockaddr *)ss, len) < 0 ||
	    getsockname(nfd, (struct sockaddr *)&ls, &llen) < 0 ||
	    ff_sa_from_sockaddr(&lsa, (struct sockaddr *)&ls, llen) < 0) {
		close(nfd);
		return;
	}
	ff_sa_to_proto(&lsa, &local, lip);
	ff_sa_to_proto(&psa, &peer, pip);
	a.local = &local;
	a.peer = &peer;
	a.path = FF__PATH__PATH_NONE;
	if (ffr_listener_push(l, &a, nfd) == -EAGAIN)
		ff_warn("%s: accept queue full, dropped a kernel connection", l->c->name);
}

static void kfd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_listener *l = arg;

	ffr_doing(l->r, "accept on a kernel listener", l->c->name, 0);
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int nfd = ffr_shared_accept(l->r, fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);

		if (nfd < 0) {
			if (nfd != -EAGAIN && nfd != -ECONNABORTED)
				ff_warn("%s: accept on kernel listener: %s", l->c->name,
					strerror(-nfd));
			return;
		}
		kernel_accept(l, nfd, &ss, len);
	}
}

bool ffr_listener_orphaned(const struct ffr_listener *l)
{
	struct pollfd p = {.fd = l->qfd, .events = POLLRDHUP};

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Empties and closes the stash: its copy of kfd is gone from every
 * holder of the stash at once. Ours is the first datagram; a keeper that
 * found a way to queue more (binding the stash and writing to it) cannot
 * keep the loop here: a few are read, the rest stay with the keeper. */
static void stash_drop(struct ffr_listener *l)
{
	int fds[FF_MAX_FDS], nfds;
	char b;

	if (l->stash < 0)
		return;
	for (int i = 0; i < STASH_DRAIN; i++) {
		if (ff_recv_fds(l->stash, &b, 1, fds, FF_MAX_FDS, &nfds, MSG_DONTWAIT) <= 0)
			break;
		ff_close_fds(fds, nfds);
	}
	close(l->stash);
	l->stash = -1;
}

/* The app closed every copy of its listening fd: the stash's copy of kfd
 * goes first, so that nothing but this router holds the port. */
void ffr_listener_end(struct ffr_listener *l)
{
	ff_dbg("%s: listener %llu closed by the app", l->c->name, (unsigned long long)l->id);
	stash_drop(l);
	ffr_listener_free(l);
}

/* The stash: a datagram pair whose one datagram holds kfd; the router and
 * the keeper each hold the receiving end, the sending end is closed. */
static int stash_new(struct ffr_listener *l)
{
	int st[2], err = 0;
	char b = 'k';

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, st) < 0)
		return -errno;
	err = ff_send_fds(st[1], &b, 1, &l->kfd, 1);
	close(st[1]);
	if (err) {
		close(st[0]);
		return err;
	}
	l->stash = st[0];
	return 0;
}

int ffr_listener_keep(struct ffr_chan *ch, uint64_t id)
{
	struct ffr_listener *l = ffr_listener_by_id(ch->c, id);
	Ff__Reply rep = FF__REPLY__INIT;
	struct ff_listen_msg lm;
	int fds[2], err;

	if (!l)
		return -ENOENT;
	/* always a fresh one: a keeper handing a listener back to this very
	 * router (its channel was lost, not the router) took the kernel
	 * listener out of the one it had */
	stash_drop(l);
	err = stash_new(l);
	if (err)
		return err;
	ff_listen_to_proto(&lm, &l->addr, l->backlog, l->v6only, l->shim_ino);
	rep.body_case = FF__REPLY__BODY_KEEP;
	rep.keep = &lm.m;
	fds[0] = l->stash;
	fds[1] = l->qfd;
	return ffr_reply(ch, &rep, fds, 2);
}

void ffr_listeners_reap(struct ffr_container *c)
{
	struct ffr_listener *l, *next;

	if (!c->nlisteners)
		return;
	for (l = TAILQ_FIRST(&c->r->listeners); l; l = next) {
		next = TAILQ_NEXT(l, link);
		if (l->c == c && ffr_listener_orphaned(l))
			ffr_listener_end(l);
	}
}

/* Every copy of the app's listening fd is closed. (qfd always holds the
 * plug, see plug(), so it is watched for the peer's close, not for reads.) */
static void qfd_cb(evutil_socket_t fd, short what, void *arg)
{
	ffr_listener_end(arg);
}

/* A TCP listener is never writable. The app's end of a socketpair is,
 * unless its send buffer is full: make it minimal and fill it with one
 * datagram the router never reads. */
static int plug(int shim_end)
{
	static const char junk[PLUG_BYTES];
	int one = 1;

	if (setsockopt(shim_end, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)) < 0 ||
	    send(shim_end, junk, sizeof(junk), MSG_DONTWAIT) != sizeof(junk))
		return -errno;
	return 0;
}

static int listener_events(struct ffr_listener *l)
{
	struct event_base *b = l->r->base;

	l->qev = event_new(b, l->qfd, EV_CLOSED | EV_PERSIST, qfd_cb, l);
	l->wev = event_new(b, l->qfd, EV_WRITE, flush_cb, l);
	l->kev = event_new(b, l->kfd, EV_READ | EV_PERSIST, kfd_cb, l);
	if (!l->qev || !l->wev || !l->kev || event_add(l->qev, NULL) < 0 ||
	    event_add(l->kev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* A fresh accept queue: q[0] for the router, q[1] (plugged) for the app. */
static int queue_new(int q[2])
{
	int err;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, q) < 0)
		return -errno;
	err = plug(q[1]);
	if (err) {
		close(q[0]);
		close(q[1]);
	}
	return err;
}

/* An accept queue a shim hands back after a router restart must at least be
 * the router's end of one: a connected SOCK_SEQPACKET AF_UNIX socket. */
static int queue_check(int qfd)
{
	struct sockaddr_un peer;
	socklen_t len = sizeof(peer);

	if (sockopt_int(qfd, SOL_SOCKET, SO_DOMAIN) != AF_UNIX ||
	    sockopt_int(qfd, SOL_SOCKET, SO_TYPE) != SOCK_SEQPACKET ||
	    sockopt_int(qfd, SOL_SOCKET, SO_ACCEPTCONN) != 0 ||
	    getpeername(qfd, (struct sockaddr *)&peer, &len) < 0)
		return -EINVAL;
	return 0;
}

static int listener_check(struct ffr_container *c, const struct ffr_listen_args *a, int kfd)
{
	if (!ff_ip_is_any(&a->addr.ip) && !ffr_container_owns_ip(c, &a->addr.ip))
		return -EPERM;
	if (c->nlisteners >= c->r->quota.listeners)
		return -ENOBUFS;
	return check_kfd(c, kfd, &a->addr);
}

int ffr_listener_new(struct ffr_container *c, const struct ffr_listen_args *a, int kfd, int qfd,
		     int *shim_fd, struct ffr_listener **out)
{
	struct ffr_router *r = c->r;
	struct ffr_listener *l = NULL;
	int q[2] = {qfd, -1}, sz = QUEUE_SNDBUF, err;
	struct stat st;

	err = listener_check(c, a, kfd);
	if (!err)
		err = qfd >= 0 ? queue_check(qfd) : queue_new(q);
	if (!err && !(l = calloc(1, sizeof(*l))))
		err = -ENOMEM;
	if (err) {
		close(kfd);
		if (q[0] >= 0)
			close(q[0]);
		if (q[1] >= 0)
			close(q[1]);
		return err;
	}
	l->r = r;
	l->c = c;
	l->id = r->next_id++;
	l->addr = a->addr;
	l->v6only = a->v6only;
	l->qfd = q[0];
	l->kfd = kfd;
	l->stash = -1;
	l->backlog = a->backlog;
	l->shim_ino = a->shim_ino;
	STAILQ_INIT(&l->pending);
	l->max_pending = a->backlog < 16 ? 16 : (uint32_t)a->backlog;
	if (l->max_pending > r->quota.pending)
		l->max_pending = r->quota.pending;
	TAILQ_INSERT_TAIL(&r->listeners, l, link);
	c->nlisteners++;
	setsockopt(q[0], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	if (fstat(q[0], &st) == 0)
		l->q_ino = st.st_ino;
	if (q[1] >= 0 && fstat(q[1], &st) == 0)
		l->shim_ino = st.st_ino;
	err = listener_events(l);
	if (err) {
		if (q[1] >= 0)
			close(q[1]);
		ffr_listener_free(l);
		return err;
	}
	*shim_fd = q[1];
	*out = l;
	return 0;
}

struct ffr_listener *ffr_listener_by_queue(struct ffr_router *r, ino_t q_ino)
{
	struct ffr_listener *l;

	TAILQ_FOREACH (l, &r->listeners, link)
		if (l->q_ino == q_ino)
			return l;
	return NULL;
}

void ffr_listener_free(struct ffr_listener *l)
{
	struct ffr_pending *p;

	if (!l)
		return;
	TAILQ_REMOVE(&l->r->listeners, l, link);
	l->c->nlisteners--;
	while ((p = STAILQ_FIRST(&l->pending))) {
		STAILQ_REMOVE_HEAD(&l->pending, link);
		pending_free(p);
	}
	if (l->qev)
		event_free(l->qev);
	if (l->wev)
		event_free(l->wev);
	if (l->kev)
		event_free(l->kev);
	close(l->qfd);
	close(l->kfd);
	if (l->stash >= 0)
		close(l->stash);
	free(l);
}

static bool wildcard_matches(const struct ffr_listener *l, const struct ff_sa *dst)
{
	if (!ff_ip_is_any(&l->addr.ip))
		return false;
	if (l->addr.ip.family == dst->ip.family)
		return true;
	return l->addr.ip.family == AF_INET6 && dst->ip.family == AF_INET && !l->v6only;
}

struct ffr_listener *ffr_listener_by_id(struct ffr_container *c, uint64_t id)
{
	struct ffr_listener *l;

	TAILQ_FOREACH (l, &c->r->listeners, link)
		if (l->c == c && l->id == id)
			return l;
	return NULL;
}

/* Exact address first, then a wildcard; equal candidates (SO_REUSEPORT) take
 * turns because the chosen one moves to the back of the list. */
struct ffr_listener *ffr_listener_find(struct ffr_container *c, const struct ff_sa *dst)
{
	struct ffr_listener *l, *wild = NULL;
	struct ffr_router *r = c->r;

	TAILQ_FOREACH (l, &r->listeners, link) {
		if (l->c != c || l->addr.port != dst->port)
			continue;
		if (ff_ip_equal(&l->addr.ip, &dst->ip))
			break;
		if (!wild && wildcard_matches(l, dst))
			wild = l;
	}
	if (!l)
		l = wild;
	if (l) {
		TAILQ_REMOVE(&r->listeners, l, link);
		TAILQ_INSERT_TAIL(&r->listeners, l, link);
	}
	return l;
}
