/* What keeps the event loop turning when a container turns hostile: I/O on
 * files a container shares with the router.
 *
 * Shared files. An fd a shim passed (the app's kernel listener) or one the
 * router passed to a shim and still uses (its end of an accept queue, which
 * the shim keeps for restarts; the ring path's doorbell eventfd) is one
 * open file description in both processes: its O_NONBLOCK, and socket
 * options such as SO_SNDBUF or SO_RCVTIMEO, are the container's to change
 * at any moment, between any two system calls of the router. The router
 * therefore never sets file flags on such a file and never relies on them:
 * every call on it is non-blocking by itself.
 *   - send: MSG_DONTWAIT.
 *   - read of an eventfd: preadv2(RWF_NOWAIT), honoured per call.
 *   - accept: Linux has no per-call non-blocking accept (accept4's
 *     SOCK_NONBLOCK is for the new socket). A zero-timeout poll says
 *     whether a connection is queued, but the app can take it between the
 *     poll and the accept4; SO_RCVTIMEO bounds accept, but the app resets it
 *     as easily as it clears O_NONBLOCK. The one bound the container cannot
 *     reach is a signal to this thread: a POSIX timer (SIGEV_THREAD_ID),
 *     armed around the accept4 only and periodic, so that a tick landing
 *     before the call sleeps is followed by another. Its handler does
 *     nothing and has no SA_RESTART: a blocked accept4 returns EINTR within
 *     one period. Cost: a poll and two timer_settime per accept, on the
 *     kernel-listener path only (peers without ffnet). (io_uring has a
 *     per-call non-blocking accept, but it is often disabled or filtered by
 *     seccomp where routers run.)
 */
#include "internal.h"

#include "log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_NS 2000000 /* a blocked accept on a shared listener: 2 ms at most */
#define DEADLINE_SIGNAL (SIGRTMIN + 7) /* glibc reserves the first two; valgrind the last */

struct ffr_guard {
	struct ffr_router *r;
	/* the accept deadline: one timer, signalling the thread that made it */
	bool have_timer;
	timer_t timer;
	pid_t timer_tid;
};

/* ---- I/O on shared files ---- */

static void deadline_handler(int sig)
{
}

static void deadline_install(void)
{
	struct sigaction sa = {.sa_handler = deadline_handler}; /* no SA_RESTART */

	sigemptyset(&sa.sa_mask);
	sigaction(DEADLINE_SIGNAL, &sa, NULL);
}

/* The timer of this thread; created on first use in the loop's thread. */
static int deadline_timer(struct ffr_guard *g)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID};
	sigset_t set;

	if (g->have_timer && g->timer_tid == tid)
		return 0;
	if (g->have_timer)
		timer_delete(g->timer);
	g->have_timer = false;
	pthread_once(&once, deadline_install);
	sigemptyset(&set);
	sigaddset(&set, DEADLINE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	sev.sigev_signo = DEADLINE_SIGNAL;
	sev._sigev_un._tid = tid;
	if (timer_create(CLOCK_MONOTONIC, &sev, &g->timer) < 0)
		return -errno;
	g->have_timer = true;
	g->timer_tid = tid;
	return 0;
}

static void deadline_set(struct ffr_guard *g, long ns)
{
	struct itimerspec it = {.it_value.tv_nsec = ns, .it_interval.tv_nsec = ns};

	timer_settime(g->timer, 0, &it, NULL);
}

int ffr_shared_accept(struct ffr_router *r, int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int nfd, err;

	if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
		return -EAGAIN;
	err = deadline_timer(r->guard);
	if (err) {
		/* no bound on the call: take no chance */
		ff_warn("accept on a shared listener: no deadline timer (%s)", strerror(-err));
		return -EAGAIN;
	}
	deadline_set(r->guard, DEADLINE_NS);
	nfd = accept4(fd, sa, len, flags);
	err = nfd < 0 ? -errno : 0;
	deadline_set(r->guard, 0);
	if (err == -EINTR)
		ff_dbg("accept on a shared listener: the connection went elsewhere");
	return err == -EINTR ? -EAGAIN : err ? err : nfd;
}

int ffr_shared_send_fds(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FF_MAX_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (nfds < 0 || nfds > FF_MAX_FDS)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	do
		n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

ssize_t ffr_shared_read(int fd, void *buf, size_t len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	ssize_t n;

	do
		n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* ---- life cycle ---- */

int ffr_guard_new(struct ffr_router *r, const struct ffr_config *cfg)
{
	struct ffr_guard *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->r = r;
	r->guard = g;
	return 0;
}

void ffr_guard_free(struct ffr_guard *g)
{
	if (!g)
		return;
	if (g->have_timer)
		timer_delete(g->timer);
	free(g);
}
