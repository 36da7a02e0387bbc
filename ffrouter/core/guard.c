/* What keeps the event loop turning when a container turns hostile: I/O on
 * files a container shares with the router, the budget of the router's
 * file descriptors, and the watchdog that notices when the loop stopped
 * turning anyway.
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
 *
 * The fd budget. RLIMIT_NOFILE is one limit for every container of the
 * host; a router that reaches it fails wherever the next fd is made (an
 * accept, a socketpair, an fd received with a request) and every container
 * suffers. New work asks ffr_fd_budget first and is refused cleanly while
 * the router is within a reserve of the limit. The count is the kernel's,
 * not ours: fds are made by the core, by features, by libraries (libevent,
 * libibverbs, the etcd client) and by every SCM_RIGHTS message a shim
 * sends, so a count kept where the core makes fds would drift. Since Linux
 * 6.2 the size of /proc/self/fd is the number of open fds (one stat, a
 * bitmap count, no directory walk; older kernels: a walk). The count is
 * taken at most once a second while far from the limit; in between, each
 * admitted piece of work adds what it may open to the estimate. Near the
 * limit it is taken again before any refusal, so work is refused on a
 * fresh count, not on estimates of fds long closed (with the directory
 * walk of old kernels, at most every 10 ms).
 *
 * A listener only the router holds (the admin socket, a container's
 * socket, the ingress, a published port) has its own trouble at the
 * limit: accept4 fails with EMFILE, the connection stays queued, the
 * listener stays readable and the loop turns at full speed on it, logging
 * each turn. ffr_accept sheds such a connection instead: it gives up a
 * spare fd kept for this, accepts the connection and closes it at once
 * (its peer sees a server that closed on it) and takes the spare back.
 *
 * Watchdog. A thread wakes every quarter period and compares the time with
 * the loop's heartbeat, a persistent timer of the loop; when the loop has
 * not turned for a period it logs what the loop was doing (each step that
 * may touch what a container controls marks itself with ffr_doing) and
 * counts a stall, once per stall; ffctl status shows the count. */
#include "internal.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_NS 2000000 /* a blocked accept on a shared listener: 2 ms at most */
#define WATCHDOG_DEFAULT_MS 5000
#define WATCHDOG_MIN_MS 100
#define DEADLINE_SIGNAL (SIGRTMIN + 7) /* glibc reserves the first two; valgrind the last */
#define FD_RECOUNT_NS 1000000000ull   /* far from the limit */
#define FD_RECOUNT_NEAR_NS 10000000ull /* near it */
#define FD_RESERVE_MIN 16
#define FD_RESERVE_MAX 1024

struct ffr_guard {
	struct ffr_router *r;
	/* the accept deadline: one timer, signalling the thread that made it */
	bool have_timer;
	timer_t timer;
	pid_t timer_tid;
	/* the watchdog */
	unsigned period_ms;
	struct event *beat_ev;
	uint64_t beat_ns; /* atomic: the loop's last heartbeat (CLOCK_MONOTONIC) */
	uint64_t stalls;  /* atomic */
	pthread_t th;
	bool th_started;
	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t cond;
	bool stop;
	const char *what; /* the step the loop is in, or last was in */
	char who[FFR_NAME_MAX + 1];
	pid_t pid;
	uint64_t what_ns;
	char last_stall[192];
	/* the fd budget (loop thread only) */
	uint64_t fd_limit, fd_reserve, fd_est;
	uint64_t fd_at_ns, fd_warned_ns, fd_refusals;
	bool fd_fast; /* the count is one stat */
	int spare;    /* /dev/null, given up to shed a connection at the limit */
	uint64_t shed, shed_warned_ns;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

/* ---- the fd budget ---- */

/* The number of open fds; *fast says whether it took one stat. */
static int fd_count(bool *fast)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	int n = 0;

	*fast = stat("/proc/self/fd", &st) == 0 && st.st_size > 0;
	if (*fast)
		return (int)st.st_size;
	d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the walk's own */
}

static void fd_recount(struct ffr_guard *g, uint64_t now)
{
	int n = fd_count(&g->fd_fast);

	g->fd_at_ns = now;
	if (n >= 0)
		g->fd_est = (uint64_t)n;
}

static void fd_budget_init(struct ffr_guard *g, const struct ffr_config *cfg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	g->fd_limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX ? INT_MAX : rl.rlim_cur;
	g->fd_reserve = cfg->fd_reserve ? cfg->fd_reserve : g->fd_limit / 16;
	if (!cfg->fd_reserve && g->fd_reserve < FD_RESERVE_MIN)
		g->fd_reserve = FD_RESERVE_MIN;
	if (!cfg->fd_reserve && g->fd_reserve > FD_RESERVE_MAX)
		g->fd_reserve = FD_RESERVE_MAX;
}

int ffr_fd_budget(struct ffr_router *r, unsigned n)
{
	struct ffr_guard *g = r->guard;
	uint64_t now;

	if (!g || !g->fd_limit)
		return 0;
	now = mono_ns();
	if (now - g->fd_at_ns > FD_RECOUNT_NS ||
	    (g->fd_est + n + g->fd_reserve > g->fd_limit &&
	     (g->fd_fast || now - g->fd_at_ns >= FD_RECOUNT_NEAR_NS)))
		fd_recount(g, now);
	if (g->fd_est + n + g->fd_reserve <= g->fd_limit) {
		g->fd_est += n;
		return 0;
	}
	g->fd_refusals++;
	if (now - g->fd_warned_ns > FD_RECOUNT_NS) {
		g->fd_warned_ns = now;
		ff_warn("%llu of %llu file descriptors open (reserve %llu): refusing new work",
			(unsigned long long)g->fd_est, (unsigned long long)g->fd_limit,
			(unsigned long long)g->fd_reserve);
	}
	return -EMFILE;
}

int ffr_accept(struct ffr_router *r, int lfd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct ffr_guard *g = r->guard;
	int fd = accept4(lfd, sa, len, flags), err = fd < 0 ? errno : 0;
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	uint64_t now;

	if (fd >= 0)
		return fd;
	if ((err != EMFILE && err != ENFILE) || !g)
		return -err;
	/* accept4 says EMFILE before it looks at the queue */
	if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
		return -EAGAIN;
	if (g->spare >= 0)
		close(g->spare);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		g->shed++;
	}
	g->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	now = mono_ns();
	if (now - g->shed_warned_ns > FD_RECOUNT_NS) {
		g->shed_warned_ns = now;
		ff_warn("out of file descriptors (%s): closing new connections at accept "
			"(%llu so far)", strerror(err), (unsigned long long)g->shed);
	}
	return -EAGAIN;
}

uint64_t ffr_accepts_shed(const struct ffr_router *r)
{
	return r->guard ? r->guard->shed : 0;
}

void ffr_fd_usage(struct ffr_router *r, unsigned *open, unsigned *limit, uint64_t *refusals)
{
	struct ffr_guard *g = r->guard;
	bool fast;
	int n = fd_count(&fast);

	*open = n > 0 ? (unsigned)n : 0;
	*limit = g ? (unsigned)g->fd_limit : 0;
	if (refusals)
		*refusals = g ? g->fd_refusals : 0;
}

/* ---- the watchdog ---- */

void ffr_doing(struct ffr_router *r, const char *what, const char *who, pid_t pid)
{
	struct ffr_guard *g = r->guard;

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->what = what;
	snprintf(g->who, sizeof(g->who), "%s", who ? who : "");
	g->pid = pid;
	g->what_ns = mono_ns();
	pthread_mutex_unlock(&g->lock);
}

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_guard *g = arg;
	uint64_t now = mono_ns(), prev = __atomic_load_n(&g->beat_ns, __ATOMIC_RELAXED);

	if (prev && now - prev > (uint64_t)g->period_ms * 1000000u)
		ff_warn("watchdog: the event loop turns again, after %.1f s",
			(double)(now - prev) / 1e9);
	__atomic_store_n(&g->beat_ns, now, __ATOMIC_RELAXED);
}

/* Under g->lock: says what the loop was doing into g->last_stall. */
static void stall_describe(struct ffr_guard *g, uint64_t beat, uint64_t now)
{
	if (g->what && g->what_ns >= beat)
		snprintf(g->last_stall, sizeof(g->last_stall), "%s (%s pid %d) for %.1f s", g->what,
			 *g->who ? g->who : "-", (int)g->pid, (double)(now - g->what_ns) / 1e9);
	else
		snprintf(g->last_stall, sizeof(g->last_stall),
			 "outside any marked step, %.1f s without a turn",
			 (double)(now - beat) / 1e9);
}

static void *watchdog_main(void *arg)
{
	struct ffr_guard *g = arg;
	uint64_t reported = 0;
	char msg[sizeof(g->last_stall)];

	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		struct timespec ts;
		uint64_t beat, now;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(g->period_ms % 4000) * 250000;
		ts.tv_sec += g->period_ms / 4000 + ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&g->cond, &g->lock, &ts);
		beat = __atomic_load_n(&g->beat_ns, __ATOMIC_RELAXED);
		now = mono_ns();
		if (g->stop || !beat || beat == reported ||
		    now - beat <= (uint64_t)g->period_ms * 1000000u)
			continue;
		reported = beat;
		stall_describe(g, beat, now);
		__atomic_add_fetch(&g->stalls, 1, __ATOMIC_RELAXED);
		snprintf(msg, sizeof(msg), "%s", g->last_stall);
		pthread_mutex_unlock(&g->lock);
		ff_err("watchdog: the event loop has not turned for %u ms: %s; every container "
		       "of this host waits",
		       g->period_ms, msg);
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

static int watchdog_start(struct ffr_guard *g, unsigned period_ms)
{
	struct timeval tv;
	int err;

	g->period_ms = period_ms ? period_ms : WATCHDOG_DEFAULT_MS;
	if (g->period_ms < WATCHDOG_MIN_MS)
		g->period_ms = WATCHDOG_MIN_MS;
	tv.tv_sec = g->period_ms / 4000;
	tv.tv_usec = (g->period_ms % 4000) * 250;
	g->beat_ev = event_new(g->r->base, -1, EV_PERSIST, beat_cb, g);
	if (!g->beat_ev || event_add(g->beat_ev, &tv) < 0)
		return -ENOMEM;
	err = pthread_create(&g->th, NULL, watchdog_main, g);
	if (err)
		return -err;
	g->th_started = true;
	return 0;
}

uint64_t ffr_loop_stalls(const struct ffr_router *r, char *last, size_t len)
{
	struct ffr_guard *g = r->guard;

	if (!g)
		return 0;
	if (last) {
		pthread_mutex_lock(&g->lock);
		snprintf(last, len, "%s", g->last_stall);
		pthread_mutex_unlock(&g->lock);
	}
	return __atomic_load_n(&g->stalls, __ATOMIC_RELAXED);
}

/* ---- life cycle ---- */

int ffr_guard_new(struct ffr_router *r, const struct ffr_config *cfg)
{
	struct ffr_guard *g = calloc(1, sizeof(*g));
	pthread_condattr_t ca;

	if (!g)
		return -ENOMEM;
	g->r = r;
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &ca);
	pthread_condattr_destroy(&ca);
	fd_budget_init(g, cfg);
	g->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	r->guard = g;
	return watchdog_start(g, cfg->watchdog_ms);
}

void ffr_guard_free(struct ffr_guard *g)
{
	if (!g)
		return;
	if (g->th_started) {
		pthread_mutex_lock(&g->lock);
		g->stop = true;
		pthread_cond_signal(&g->cond);
		pthread_mutex_unlock(&g->lock);
		pthread_join(g->th, NULL);
	}
	if (g->beat_ev)
		event_free(g->beat_ev);
	pthread_cond_destroy(&g->cond);
	if (g->have_timer)
		timer_delete(g->timer);
	if (g->spare >= 0)
		close(g->spare);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
