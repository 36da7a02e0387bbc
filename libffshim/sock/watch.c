/* The listener watcher: one thread per process that has accelerated
 * listeners, so that a listener outlives its router.
 *
 * The shim keeps a copy of the router's end of every accept queue (qr) and
 * of the kernel listener (kfd). A router crash therefore never makes the
 * app's listening fd readable (no EOF, no false readiness). While no router
 * holds a listener ("unrouted": the router died, or dropped the container)
 * this thread does the router's job for it: it accepts from the kernel
 * listener and queues each connection, so connects during the outage take
 * the container network. Every RETRY_NS it tries to reach a router; one that
 * answers is handed each unrouted listener back (Relisten) and forwards
 * again. The app's fd never changes.
 *
 * Invariants: the list holds no references (a listener leaves it when its
 * last fd closes, in ffs_watch_forget); list, routed and in_ep are under
 * w.lock, which is never held across a router call. */
#include "sock-internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <unistd.h>

#define RETRY_NS      (200LL * 1000 * 1000)
#define FORWARD_BATCH 64
#define SETTLE_NS     (20LL * 1000 * 1000)

/* A connection forward() queues reaches the app while the watcher still
 * holds its own fd of it, until the close() that follows the send. An app
 * that accepts, serves and closes it within that window keeps its epoll
 * registration alive (epoll drops one when the last reference to the file
 * goes, not at the app's close) and gets events for a closed fd: with the
 * pointer it freed at close, a crash. So each forwarded connection carries
 * a number (conn_id, FWD_TAG set; the router's ids never reach that bit)
 * and forward() publishes in fwd_closed the last one it closed: accept()
 * hands one on only once that number is closed (ffs_watch_settle). */
#define FWD_TAG (1ULL << 63)
static uint64_t fwd_seq, fwd_closed;

static struct {
	pthread_mutex_t lock;
	struct ffs_sock **v;
	int n, cap;
	bool running; /* a watcher thread exists in this process */
	int wfd;      /* our own channel to the router: EOF = it is gone */
	int ep;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER, .wfd = -1, .ep = -1};

static void *watch_main(void *arg);

/* Lock held. */
static int find(const struct ffs_sock *s)
{
	for (int i = 0; i < w.n; i++)
		if (w.v[i] == s)
			return i;
	return -1;
}

static void start(void)
{
	sigset_t all, old;
	pthread_attr_t a;
	pthread_t th;

	if (w.ep < 0) {
		w.ep = epoll_create1(EPOLL_CLOEXEC);
		if (w.ep < 0)
			return;
		w.ep = ffs_hide_fd(w.ep);
		ffs_fd_internal(w.ep, &w.ep);
	}
	/* the thread takes no signal: they are the app's */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 256 * 1024);
	if (pthread_create(&th, &a, watch_main, NULL) == 0)
		w.running = true;
	else
		ff_warn("ffnet: cannot start the listener watcher: listeners will not survive a "
			"router restart");
	pthread_attr_destroy(&a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void ffs_watch_add(struct ffs_sock *s)
{
	pthread_mutex_lock(&w.lock);
	if (find(s) < 0) {
		if (w.n == w.cap) {
			int cap = w.cap ? w.cap * 2 : 16;
			struct ffs_sock **v = realloc(w.v, sizeof(*v) * (size_t)cap);

			if (!v)
				goto out_unlock;
			w.v = v;
			w.cap = cap;
		}
		w.v[w.n++] = s;
	}
	if (!w.running)
		start();
out_unlock:
	pthread_mutex_unlock(&w.lock);
}

void ffs_watch_ensure(struct ffs_sock *s)
{
	if (!__atomic_load_n(&w.running, __ATOMIC_RELAXED))
		ffs_watch_add(s);
}

void ffs_watch_forget(struct ffs_sock *s)
{
	int i;

	pthread_mutex_lock(&w.lock);
	i = find(s);
	if (i >= 0) {
		if (s->in_ep && w.ep >= 0)
			epoll_ctl(w.ep, EPOLL_CTL_DEL, s->kfd, NULL);
		s->in_ep = false;
		w.v[i] = w.v[--w.n];
	}
	pthread_mutex_unlock(&w.lock);
}

/* The thread is gone in the child; the listeners it inherited are watched
 * again by a thread of its own, started from its first accept(). */
void ffs_watch_fork_child(void)
{
	w.running = false;
	ffs_internal_close(&w.wfd);
	ffs_internal_close(&w.ep);
	for (int i = 0; i < w.n; i++)
		w.v[i]->in_ep = false;
	pthread_mutex_unlock(&w.lock);
}

void ffs_watch_fork_prepare(void)
{
	pthread_mutex_lock(&w.lock);
}

void ffs_watch_fork_parent(void)
{
	pthread_mutex_unlock(&w.lock);
}

/* ---- the thread ---- */

/* Opens our own channel and says Hello; the reply's pages are not needed. */
static int watch_connect(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	const char *p = getenv(FF_ENV_SOCK);
	struct pollfd pf;
	uint8_t buf[1024];
	int fd, fds[FF_MAX_FDS], nfds = 0;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p && *p ? p : FF_DEFAULT_SOCK);
	fd = REAL(socket)(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	h.version = FF_PROTO_VERSION;
	h.role = (char *)"watch";
	req.id = 1;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	pf.fd = fd;
	pf.events = POLLIN;
	if (REAL(connect)(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    ff_msg_send(fd, &req.base, NULL, 0) < 0 || REAL(poll)(&pf, 1, 5000) != 1 ||
	    ff_recv_fds(fd, buf, sizeof(buf), fds, FF_MAX_FDS, &nfds, 0) <= 0) {
		REAL(close)(fd);
		return -1;
	}
	ff_close_fds(fds, nfds);
	return ffs_hide_fd(fd);
}

/* Lock held. */
static void set_wfd(int fd)
{
	struct epoll_event ev = {.events = EPOLLRDHUP, .data.fd = fd};

	w.wfd = fd;
	ffs_fd_internal(fd, &w.wfd);
	epoll_ctl(w.ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Queues one kernel connection on the listener's accept queue, as the
 * router does (path NONE). Lock held (all calls are non-blocking). */
static void forward(struct ffs_sock *s)
{
	for (int i = 0; i < FORWARD_BATCH; i++) {
		Ff__Accepted a = FF__ACCEPTED__INIT;
		Ff__Addr lm, pm;
		uint8_t lb[16], pb[16];
		struct sockaddr_storage ps, ls;
		socklen_t plen = sizeof(ps), llen = sizeof(ls);
		struct ff_sa peer, local;
		int nfd = REAL(accept4)(s->kfd, (struct sockaddr *)&ps, &plen, SOCK_CLOEXEC);

		if (nfd < 0)
			return;
		if (ff_sa_from_sockaddr(&peer, (struct sockaddr *)&ps, plen) == 0 &&
		    REAL(getsockname)(nfd, (struct sockaddr *)&ls, &llen) == 0 &&
		    ff_sa_from_sockaddr(&local, (struct sockaddr *)&ls, llen) == 0) {
			ff_sa_to_proto(&local, &lm, lb);
			ff_sa_to_proto(&peer, &pm, pb);
			a.local = &lm;
			a.peer = &pm;
			a.path = FF__PATH__PATH_NONE;
			a.conn_id = FWD_TAG | ++fwd_seq;
			ff_msg_send(s->qr, &a.base, &nfd, 1);
		}
		REAL(close)(nfd);
		__atomic_store_n(&fwd_closed, fwd_seq, __ATOMIC_RELEASE);
	}
}

/* Called by accept() for every connection without a path: returns once the
 * watcher has closed its own fd of it. Bounded (SETTLE_NS): a connection
 * another process's watcher forwarded (a queue shared across fork) has a
 * number that means nothing here. */
void ffs_watch_settle(uint64_t conn_id)
{
	uint64_t k = conn_id & ~FWD_TAG;
	int64_t until;

	if (!(conn_id & FWD_TAG) || __atomic_load_n(&fwd_closed, __ATOMIC_ACQUIRE) >= k)
		return;
	until = ffs_now_ns() + SETTLE_NS;
	while (__atomic_load_n(&fwd_closed, __ATOMIC_ACQUIRE) < k && ffs_now_ns() < until)
		sched_yield();
}

/* Lock held: the kernel listeners of unrouted listeners are in the epoll
 * set, the others are not. Returns the number unrouted. */
static int sync_epoll(void)
{
	int unrouted = 0;

	for (int i = 0; i < w.n; i++) {
		struct ffs_sock *s = w.v[i];
		bool want = !s->routed && s->kfd >= 0 && s->qr >= 0;

		unrouted += !s->routed;
		if (want == s->in_ep)
			continue;
		if (want) {
			struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->kfd};

			REAL(fcntl)(s->kfd, F_SETFL, REAL(fcntl)(s->kfd, F_GETFL) | O_NONBLOCK);
			s->in_ep = epoll_ctl(w.ep, EPOLL_CTL_ADD, s->kfd, &ev) == 0;
		} else {
			epoll_ctl(w.ep, EPOLL_CTL_DEL, s->kfd, NULL);
			s->in_ep = false;
		}
	}
	return unrouted;
}

static int relisten(struct ffs_sock *s)
{
	Ff__Request req = FF__REQUEST__INIT;
	struct ff_listen_msg lm;
	Ff__Reply *rep = NULL;
	int fds[2] = {s->kfd, s->qr}, rfds[FF_MAX_FDS], nrfds = 0, err;

	ff_listen_to_proto(&lm, &s->local, s->backlog, s->tcp.v6only, s->q_ino);
	req.body_case = FF__REQUEST__BODY_RELISTEN;
	req.relisten = &lm.m;
	err = ffs_call(&req, fds, 2, &rep, rfds, &nrfds);
	if (err)
		return err;
	ff_close_fds(rfds, nrfds);
	err = rep->status ? -ff_status_errno(rep->status) : 0;
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return err;
}

/* A router answers: hand it every unrouted listener. */
static void hand_back(void)
{
	struct ffs_sock **v;
	int n = 0;

	pthread_mutex_lock(&w.lock);
	v = malloc(sizeof(*v) * (size_t)(w.n ? w.n : 1));
	for (int i = 0; v && i < w.n; i++)
		if (!w.v[i]->routed && w.v[i]->kfd >= 0 && w.v[i]->qr >= 0)
			v[n++] = ffs_sock_ref(w.v[i]);
	pthread_mutex_unlock(&w.lock);
	for (int i = 0; i < n; i++) {
		bool ok = relisten(v[i]) == 0;

		pthread_mutex_lock(&w.lock);
		if (ok && find(v[i]) >= 0)
			v[i]->routed = true;
		pthread_mutex_unlock(&w.lock);
		ffs_sock_unref(v[i]);
	}
	free(v);
}

/* Closes our channel. It leaves the epoll set first: a registration belongs
 * to the open file, and a child forked while the channel was being opened
 * may hold a copy, which would keep a closed fd's HUP in the set forever. */
static void drop_wfd(void)
{
	if (w.wfd >= 0)
		epoll_ctl(w.ep, EPOLL_CTL_DEL, w.wfd, NULL);
	ffs_internal_close(&w.wfd);
}

static void router_gone(void)
{
	pthread_mutex_lock(&w.lock);
	drop_wfd();
	for (int i = 0; i < w.n; i++)
		w.v[i]->routed = false;
	pthread_mutex_unlock(&w.lock);
}

static void try_router(void)
{
	int fd = watch_connect();

	if (fd < 0)
		return;
	pthread_mutex_lock(&w.lock);
	set_wfd(fd);
	pthread_mutex_unlock(&w.lock);
	hand_back();
}

/* Lock held. A registration whose fd is already closed cannot be deleted:
 * start a fresh set with what should be in it. */
static void rebuild_epoll(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		return;
	ffs_internal_close(&w.ep);
	w.ep = ffs_hide_fd(ep);
	ffs_fd_internal(w.ep, &w.ep);
	if (w.wfd >= 0) {
		struct epoll_event ev = {.events = EPOLLRDHUP, .data.fd = w.wfd};

		epoll_ctl(w.ep, EPOLL_CTL_ADD, w.wfd, &ev);
	}
	for (int i = 0; i < w.n; i++)
		w.v[i]->in_ep = false; /* sync_epoll adds them back */
}

static void events(struct epoll_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		bool known = false;

		if (ev[i].data.fd == w.wfd) {
			router_gone();
			continue;
		}
		pthread_mutex_lock(&w.lock);
		for (int k = 0; k < w.n; k++) {
			if (w.v[k]->in_ep && w.v[k]->kfd == ev[i].data.fd) {
				forward(w.v[k]);
				known = true;
			}
		}
		if (!known) {
			ff_warn("ffnet: listener watcher: stale registration of fd %d, rebuilt",
				ev[i].data.fd);
			rebuild_epoll();
		}
		pthread_mutex_unlock(&w.lock);
	}
}

static void *watch_main(void *arg)
{
	int64_t next_try = 0;

	if (w.wfd < 0) { /* the listener was just registered: a router is there */
		int fd = watch_connect();

		pthread_mutex_lock(&w.lock);
		if (fd >= 0) {
			set_wfd(fd);
		} else {
			for (int i = 0; i < w.n; i++)
				w.v[i]->routed = false;
		}
		pthread_mutex_unlock(&w.lock);
	}
	for (;;) {
		struct epoll_event ev[16];
		int unrouted, n;
		bool down;

		pthread_mutex_lock(&w.lock);
		unrouted = sync_epoll();
		down = w.wfd < 0;
		pthread_mutex_unlock(&w.lock);
		n = REAL(epoll_wait)(w.ep, ev, 16, down || unrouted ? (int)(RETRY_NS / 1000000) : -1);
		if (n > 0)
			events(ev, n);
		if ((down || unrouted) && ffs_now_ns() >= next_try) {
			next_try = ffs_now_ns() + RETRY_NS;
			if (down)
				try_router();
			else
				hand_back();
		}
	}
	return NULL;
}
