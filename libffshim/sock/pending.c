/* Non-blocking connects across hosts that return before the other host
 * answers (issue 13). The router hands the socket over as soon as its
 * preamble is out, with the bytes that mean "accepted" (answer_here); if
 * they are not there yet, the app must still get EINPROGRESS at once and
 * the result later, through POLLOUT and SO_ERROR, as from the kernel.
 *
 * Until then the app's fd stays its own socket, connecting to a black hole:
 * a listener on loopback whose one-slot accept queue is full, so its SYN is
 * dropped and the socket sits in SYN_SENT. poll, select and epoll then see
 * what they see for a connect under way (nothing), getpeername ENOTCONN and
 * SO_ERROR 0, all from the kernel. This process's connector thread waits
 * for the answers; when one is complete it swaps, under the fd's number:
 * - OK: the router's socket, with the app's flags, options and epoll
 *   registrations (ffs_swap). A registration re-added to a ready file
 *   reports it at once, even edge-triggered;
 * - anything else (a refusal, EOF, no answer in time): a socket refused on
 *   loopback, so POLLOUT|POLLERR|POLLHUP and SO_ERROR ECONNREFUSED are the
 *   kernel's own;
 * then shuts the placeholder down through its own copy. That wakes the
 * poll and select calls asleep on it; they look at the fd again and find
 * the new file.
 * Limits: a dup of the fd made while connecting keeps the placeholder; a
 * child forked meanwhile sees its copy fail (no thread of its own). Without
 * a loopback address to black-hole on, the connect waits as a blocking one
 * does.
 * Invariants: an entry owns rfd and ph (hidden fds) and a reference to both
 * socket entries; swaps and cancels happen under lock, and close, dup2 and
 * close_range of a connecting fd cancel it (ffs_pending_cancel) before the
 * number can mean another file. Our fds are internal without an owner
 * pointer: a vfork child (Python's subprocess) that closes its copies must
 * not clear them in the memory it shares with us. */
#include "sock-internal.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define ANSWER_MAX 128

struct pend {
	struct pend *next;
	int fd;		   /* the app's number */
	unsigned long ino; /* of the placeholder, the app's own socket */
	int rfd, ph;	   /* the router's socket; our copy of the placeholder */
	struct ffs_sock *s, *c;
	int fl;
	uint8_t want[ANSWER_MAX], got[ANSWER_MAX];
	size_t wlen, glen;
	int64_t deadline_ns;
	bool canceled;
};

/* A listener with its accept queue full (v4, v6); its filler connection. */
struct hole {
	int l, filler;
	struct sockaddr_storage addr;
	socklen_t len;
	bool tried;
};

static struct {
	pthread_mutex_t lock;
	struct pend *list;
	int ep, wake; /* the thread's epoll set; eventfd: the list changed */
	bool running;
	struct hole hole[2];
} pd = {.lock = PTHREAD_MUTEX_INITIALIZER, .ep = -1, .wake = -1};

/* Lock held. The black hole for family (AF_INET or AF_INET6), or NULL. */
static struct hole *hole_get(int family)
{
	struct hole *h = &pd.hole[family == AF_INET6];
	int one = 1;

	if (h->tried)
		return h->l >= 0 ? h : NULL;
	h->tried = true;
	h->l = h->filler = -1;
	memset(&h->addr, 0, sizeof(h->addr));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&h->addr;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		h->len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&h->addr;

		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		h->len = sizeof(*in6);
	}
	h->l = REAL(socket)(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->l < 0)
		return NULL;
	if (family == AF_INET6)
		REAL(setsockopt)(h->l, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* backlog 0: one connection fills the accept queue, later SYNs are
	 * dropped (even with SYN cookies) */
	if (REAL(bind)(h->l, (struct sockaddr *)&h->addr, h->len) < 0 ||
	    REAL(listen)(h->l, 0) < 0 ||
	    REAL(getsockname)(h->l, (struct sockaddr *)&h->addr, &h->len) < 0)
		goto fail;
	h->filler = REAL(socket)(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (h->filler < 0 ||
	    (REAL(connect)(h->filler, (struct sockaddr *)&h->addr, h->len) < 0 && errno != EINPROGRESS))
		goto fail;
	h->l = ffs_hide_fd(h->l);
	h->filler = ffs_hide_fd(h->filler);
	ffs_fd_internal(h->l, NULL);
	ffs_fd_internal(h->filler, NULL);
	return h;
fail:
	if (h->filler >= 0)
		REAL(close)(h->filler);
	REAL(close)(h->l);
	h->l = h->filler = -1;
	return NULL;
}

static void pend_free(struct pend *p)
{
	ffs_internal_close(&p->rfd);
	ffs_internal_close(&p->ph);
	ffs_sock_unref(p->s);
	ffs_sock_unref(p->c);
	free(p);
}

/* A socket refused on loopback, or -1: bound to a port nothing listens on,
 * closed, then connected to. */
static int refused_socket(int family)
{
	struct sockaddr_storage ss;
	socklen_t len = pd.hole[family == AF_INET6].len;
	int t = REAL(socket)(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int fd = REAL(socket)(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	memcpy(&ss, &pd.hole[family == AF_INET6].addr, sizeof(ss));
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	if (t < 0 || fd < 0 || REAL(bind)(t, (struct sockaddr *)&ss, len) < 0 ||
	    REAL(getsockname)(t, (struct sockaddr *)&ss, &len) < 0) {
		if (t >= 0)
			REAL(close)(t);
		if (fd >= 0)
			REAL(close)(fd);
		return -1;
	}
	REAL(close)(t);
	if (REAL(connect)(fd, (struct sockaddr *)&ss, len) == 0) { /* someone took the port */
		REAL(close)(fd);
		return -1;
	}
	return fd;
}

/* Lock held: p's answer is in (ok) or will not come. Installs the result
 * under p's fd if that number still holds the placeholder. */
static void settle(struct pend *p, bool ok)
{
	struct stat st;
	int nfd;

	if (p->canceled || fstat(p->fd, &st) < 0 || st.st_ino != p->ino) {
		ff_dbg("connect on fd %d: the app closed it meanwhile", p->fd);
		return;
	}
	if (pd.ep >= 0)
		epoll_ctl(pd.ep, EPOLL_CTL_DEL, p->rfd, NULL);
	if (ok) {
		struct ffs_sock *k = ffs_fd_take(p->rfd); /* no longer ours: swapped in */

		if (k) {
			k->owner = NULL;
			ffs_sock_unref(k);
		}
		nfd = p->rfd;
		p->rfd = -1;
	} else {
		nfd = refused_socket(p->s->family);
	}
	if (nfd >= 0 && ffs_swap(p->fd, nfd, p->fl, p->s) == 0) {
		if (ok) {
			ffs_epoll_inherit(p->c, p->s, p->fd);
			p->c->connecting = true;
			ffs_fd_set(p->fd, p->c);
			p->c = NULL;
		}
	} else {
		ff_warn("connect on fd %d: cannot install its result", p->fd);
	}
	p->s->pending = false;
	/* wakes poll and select asleep on the placeholder: they look again */
	REAL(shutdown)(p->ph, SHUT_RDWR);
}

/* Lock held: reads what there is of p's answer; 1 complete and right, 0
 * more to come, -1 wrong or closed. */
static int read_answer(struct pend *p)
{
	while (p->glen < p->wlen) {
		ssize_t n = recv(p->rfd, p->got + p->glen, p->wlen - p->glen, MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0)
			return -1;
		p->glen += (size_t)n;
	}
	return memcmp(p->got, p->want, p->wlen) == 0 ? 1 : -1;
}

static void *connector(void *arg)
{
	int ep = pd.ep, wake = pd.wake; /* set before the thread starts */
	bool broken = false;

	(void)arg;
	while (!broken) {
		struct epoll_event ev[16];
		int64_t now = ffs_now_ns(), next = -1;
		struct pend **pp, *p, *done = NULL;
		int n, ms;

		pthread_mutex_lock(&pd.lock);
		for (p = pd.list; p; p = p->next)
			if (next < 0 || p->deadline_ns < next)
				next = p->deadline_ns;
		pthread_mutex_unlock(&pd.lock);
		ms = next < 0 ? -1 : next <= now ? 0 : (int)((next - now) / 1000000 + 1);
		n = REAL(epoll_wait)(ep, ev, 16, ms);
		if (n < 0 && errno != EINTR) {
			/* the app closed our epoll set: every connect under way
			 * fails, and the next one starts a new thread */
			ff_warn("connector: %s: connects under way fail", strerror(errno));
			broken = true;
		}
		if (n > 0) {
			uint64_t v;

			if (read(wake, &v, sizeof(v)) < 0 && errno != EAGAIN)
				ff_dbg("connector: %s", strerror(errno));
		}
		now = ffs_now_ns();
		pthread_mutex_lock(&pd.lock);
		if (broken) {
			pd.running = false;
			pd.ep = pd.wake = -1;
		}
		for (pp = &pd.list; (p = *pp);) {
			int r = p->canceled || broken ? -1 : read_answer(p);

			if (r == 0 && now < p->deadline_ns) {
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			if (!p->canceled)
				settle(p, r == 1);
			p->next = done;
			done = p;
		}
		pthread_mutex_unlock(&pd.lock);
		while ((p = done)) {
			done = p->next;
			pend_free(p);
		}
	}
	return NULL;
}

/* Lock held: the thread and its epoll set, once. */
static int start(void)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	pthread_attr_t a;
	pthread_t t;
	sigset_t all, old;
	int err;

	if (pd.running)
		return 0;
	if (pd.ep < 0) {
		pd.ep = epoll_create1(EPOLL_CLOEXEC);
		if (pd.ep < 0)
			return -1;
		pd.ep = ffs_hide_fd(pd.ep);
		ffs_fd_internal(pd.ep, NULL);
	}
	if (pd.wake < 0) {
		pd.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (pd.wake < 0)
			return -1;
		pd.wake = ffs_hide_fd(pd.wake);
		ffs_fd_internal(pd.wake, NULL);
		if (epoll_ctl(pd.ep, EPOLL_CTL_ADD, pd.wake, &ev) < 0)
			return -1;
	}
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 * 1024);
	/* the app's signals are for its own threads */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&t, &a, connector, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (err)
		return -1;
	pd.running = true;
	return 0;
}

int ffs_pending_add(int fd, struct ffs_sock *s, struct ffs_sock *c, int rfd, int fl,
		    const uint8_t *want, size_t wlen, const uint8_t *got, size_t glen, int ms)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
	struct pend *p;
	struct hole *h;
	struct stat st;
	uint64_t one = 1;

	if (wlen > ANSWER_MAX || glen > wlen)
		return -1;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	pthread_mutex_lock(&pd.lock);
	h = start() == 0 ? hole_get(s->family) : NULL;
	if (!h || fstat(fd, &st) < 0)
		goto fail;
	p->ph = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
	if (p->ph < 0)
		goto fail;
	/* the app's own socket goes to the black hole: SYN_SENT, for real */
	if (REAL(connect)(fd, (struct sockaddr *)&h->addr, h->len) == 0 || errno != EINPROGRESS) {
		REAL(close)(p->ph);
		goto fail;
	}
	p->ph = ffs_hide_fd(p->ph);
	p->rfd = ffs_hide_fd(rfd);
	ffs_fd_internal(p->ph, NULL);
	ffs_fd_internal(p->rfd, NULL);
	p->fd = fd;
	p->ino = st.st_ino;
	p->s = ffs_sock_ref(s);
	p->c = c;
	p->fl = fl;
	memcpy(p->want, want, wlen);
	memcpy(p->got, got, glen);
	p->wlen = wlen;
	p->glen = glen;
	p->deadline_ns = ffs_now_ns() + (int64_t)ms * 1000000;
	ev.data.ptr = p;
	epoll_ctl(pd.ep, EPOLL_CTL_ADD, p->rfd, &ev);
	s->pending = true;
	p->next = pd.list;
	pd.list = p;
	if (write(pd.wake, &one, sizeof(one)) < 0)
		ff_dbg("connector: %s", strerror(errno));
	pthread_mutex_unlock(&pd.lock);
	return 0;
fail:
	pthread_mutex_unlock(&pd.lock);
	free(p);
	return -1;
}

void ffs_pending_cancel(int fd)
{
	struct pend *p;

	pthread_mutex_lock(&pd.lock);
	for (p = pd.list; p; p = p->next)
		if (p->fd == fd && !p->canceled) {
			p->canceled = true;
			p->s->pending = false;
		}
	pthread_mutex_unlock(&pd.lock);
}

void ffs_pending_fork(int phase)
{
	if (phase == 0) {
		pthread_mutex_lock(&pd.lock);
		return;
	}
	if (phase == 2) { /* the child: no thread; its copies of connects under way fail */
		struct pend *p;

		pd.running = false;
		while ((p = pd.list)) {
			pd.list = p->next;
			p->s->pending = false;
			pend_free(p);
		}
		/* the parent's epoll set (shared with it): a thread of our own gets
		 * a new one */
		ffs_internal_close(&pd.ep);
		ffs_internal_close(&pd.wake);
	}
	pthread_mutex_unlock(&pd.lock);
}
