/* libffshim entry points: the names interposed on libc. Each one fills
 * the real call table on first use, then either passes straight through or
 * hands the call to the socket paths. The data-path wrappers only add the
 * byte count of an accelerated connection after the real call returns.
 * errno is what the real call left, unless the shim answers itself. */
#include "real.h"
#include "sock/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define INIT()                                                                                     \
	do {                                                                                       \
		if (__builtin_expect(!ffs_ready(), 0))                                             \
			ffs_init();                                                                \
	} while (0)
/* Re-entered while this thread fills the table (an allocator initialising
 * itself from dlsym): straight to the kernel. */
#define RAW_IF_BUSY(...)                                                                           \
	do {                                                                                       \
		if (__builtin_expect(!ffs_ready() && ffs_busy, 0))                                 \
			return syscall(__VA_ARGS__);                                               \
	} while (0)
#define NEED(name)                                                                                 \
	do {                                                                                       \
		INIT();                                                                            \
		if (!REAL(name)) {                                                                 \
			errno = ENOSYS;                                                            \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

/* The fortified variants (_FORTIFY_SOURCE) have no public prototypes. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *from,
		       socklen_t *fromlen);

static size_t iov_len(const struct iovec *iov, size_t cnt)
{
	size_t n = 0;

	for (size_t i = 0; iov && i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* A ring connection's data calls go through its rings (sock/ring.c):
 * these return from the wrapper when fd is one. */
#define RING_IOV(fd, fn, tx, iov, cnt, flags)                                                      \
	do {                                                                                       \
		struct ffs_sock *rs_ = ffs_ring_conn(fd);                                          \
		if (rs_) {                                                                         \
			ssize_t r_;                                                                \
			if ((cnt) < 0 || (cnt) > IOV_MAX) {                                        \
				errno = EINVAL;                                                    \
				return -1;                                                         \
			}                                                                          \
			r_ = fn(fd, rs_, iov, cnt, flags);                                         \
			if ((tx) || !((flags) & MSG_PEEK))                                         \
				ffs_count(fd, r_, tx);                                             \
			return r_;                                                                 \
		}                                                                                  \
	} while (0)
#define RING_IO(fd, fn, tx, buf, n, flags)                                                         \
	do {                                                                                       \
		struct iovec v1_ = {.iov_base = (void *)(buf), .iov_len = (n)};                    \
		RING_IOV(fd, fn, tx, &v1_, 1, flags);                                              \
	} while (0)
#define RING_MMSG(fd, tx, v, n, flags)                                                             \
	do {                                                                                       \
		struct ffs_sock *rs_ = ffs_ring_conn(fd);                                          \
		if (rs_ && (v)) {                                                                  \
			int r_ = ffs_ring_mmsg(fd, rs_, v, n, flags, tx);                          \
			if (r_ > 0 && !((flags) & MSG_PEEK))                                       \
				ffs_count(fd, mmsg_bytes(v, r_), tx);                              \
			return r_;                                                                 \
		}                                                                                  \
	} while (0)

/* ---- control path ---- */

EXPORT int socket(int domain, int type, int protocol)
{
	int fd, saved;

	NEED(socket);
	fd = REAL(socket)(domain, type, protocol);
	if (fd < 0)
		return fd;
	saved = errno;
	ffs_track_socket(fd, domain, type, protocol);
	errno = saved;
	return fd;
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int r;

	NEED(bind);
	r = REAL(bind)(fd, addr, len);
	if (r == 0)
		ffs_track_bind(fd);
	return r;
}

EXPORT int listen(int fd, int backlog)
{
	NEED(listen);
	return ffs_listen(fd, backlog);
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	NEED(accept4);
	return ffs_accept(fd, addr, len, 0);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	NEED(accept4);
	return ffs_accept(fd, addr, len, flags);
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	NEED(connect);
	return ffs_connect(fd, addr, len);
}

EXPORT int shutdown(int fd, int how)
{
	NEED(shutdown);
	return ffs_shutdown(fd, how);
}

EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	NEED(getsockname);
	return ffs_getsockname(fd, addr, len, false);
}

EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	NEED(getpeername);
	return ffs_getsockname(fd, addr, len, true);
}

EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	NEED(getsockopt);
	return ffs_getsockopt(fd, level, name, val, len);
}

EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	NEED(setsockopt);
	return ffs_setsockopt(fd, level, name, val, len);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	NEED(epoll_ctl);
	return ffs_epoll_ctl(epfd, op, fd, ev);
}

/* ---- waits: FFNET_SPIN_US ---- */

/* With FFNET_SPIN_US, a wait that may sleep first asks again and again
 * without sleeping, for up to that long: a ring's doorbell byte (or any
 * event) that comes meanwhile is seen without a sleep and a wake-up. The
 * wait may last that much longer than its timeout. */
static int64_t spin_end(int timeout)
{
	struct timespec ts;

	if (!ffs_spin_ns || timeout == 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + ffs_spin_ns;
}

static bool spinning(int64_t end)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec < end;
}

/* Around a wait in the kernel: epoll_ctl meanwhile goes to the kernel at
 * once (epoll.c), and the rings' sockets say the truth before it. */
static void wait_begin(bool sleeps)
{
	ffs_ep_sleeping(1);
	ffs_ring_settle(sleeps);
}

/* A wait that may not sleep: a timeout of zero. */
static bool ts_zero(const struct timespec *ts)
{
	return ts && !ts->tv_sec && !ts->tv_nsec;
}

static bool tv_zero(const struct timeval *tv)
{
	return tv && !tv->tv_sec && !tv->tv_usec;
}

static int wait_end(int r)
{
	int saved = errno;

	ffs_ep_sleeping(-1);
	errno = saved;
	return r;
}

static int poll_spin(struct pollfd *fds, nfds_t n, int timeout)
{
	int64_t end;
	int r;

	end = spin_end(timeout);
	while (end) {
		r = REAL(poll)(fds, n, 0);
		if (r != 0 || !spinning(end))
			return r ? r : REAL(poll)(fds, n, timeout);
	}
	return REAL(poll)(fds, n, timeout);
}

/* poll's answer: a same-host peer's close shows as TCP's FIN does. */
static int poll_answer(struct pollfd *fds, nfds_t n, int r)
{
	for (nfds_t i = 0; r > 0 && i < n; i++)
		if (ffs_hup_hidden(fds[i].fd, (uint32_t)fds[i].revents))
			fds[i].revents &= (short)~POLLHUP;
	return r;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	NEED(poll);
	wait_begin(timeout != 0);
	return wait_end(poll_answer(fds, n, poll_spin(fds, n, timeout)));
}

static int select_spin(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
	int64_t end;
	fd_set s[3];
	int r;

	end = spin_end(tv_zero(tv) ? 0 : 1);
	if (end) {
		/* a try that finds nothing clears the sets: they are put back */
		if (rd)
			s[0] = *rd;
		if (wr)
			s[1] = *wr;
		if (ex)
			s[2] = *ex;
	}
	while (end) {
		struct timeval zero = {0, 0};

		r = REAL(select)(nfds, rd, wr, ex, &zero);
		if (r != 0)
			return r;
		if (rd)
			*rd = s[0];
		if (wr)
			*wr = s[1];
		if (ex)
			*ex = s[2];
		if (!spinning(end))
			break;
	}
	return REAL(select)(nfds, rd, wr, ex, tv);
}

EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
	NEED(select);
	wait_begin(!tv_zero(tv));
	return wait_end(select_spin(nfds, rd, wr, ex, tv));
}

/* epoll: answered from the rings while one is ready (epoll.c), else by
 * the kernel, whose answers are translated (a tagged registration's data)
 * and waited on again if that leaves nothing before the timeout. */
static int kw_wait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	(void)mask;
	return REAL(epoll_wait)(epfd, ev, max, timeout);
}

static int kw_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	return REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
}

static int ep_wait(ffs_ep_kwait kw, int epfd, struct epoll_event *ev, int max, int timeout,
		   const sigset_t *mask)
{
	struct timespec ts;
	int64_t end, deadline = -1;
	int r;

	r = ffs_ep_fast(epfd, ev, max, kw, mask);
	if (r != 0)
		return r;
	wait_begin(timeout != 0);
	end = spin_end(timeout);
	while (end) {
		r = ffs_ep_fast(epfd, ev, max, kw, mask);
		if (r == 0)
			r = ffs_ep_answer(ev, kw(epfd, ev, max, 0, mask));
		if (r != 0)
			return wait_end(r);
		if (!spinning(end))
			break;
	}
	if (timeout > 0) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout;
	}
	for (;;) {
		r = ffs_ep_answer(ev, kw(epfd, ev, max, timeout, mask));
		if (r != 0 || timeout == 0)
			return wait_end(r);
		/* all of it dropped (a disarm still deferred): wait again */
		ffs_ring_settle(false);
		if (deadline >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			timeout = (int)(deadline - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
			if (timeout <= 0)
				return wait_end(0);
		}
	}
}

EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	NEED(epoll_wait);
	return ep_wait(kw_wait, epfd, ev, max, timeout, NULL);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	NEED(epoll_pwait);
	return ep_wait(kw_pwait, epfd, ev, max, timeout, mask);
}

/* The waits the spinning above leaves alone still settle the rings (and
 * epoll_pwait2's answers are translated; it is not answered from them). */
EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	NEED(ppoll);
	wait_begin(!ts_zero(ts));
	return wait_end(poll_answer(fds, n, REAL(ppoll)(fds, n, ts, mask)));
}

EXPORT int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts,
		   const sigset_t *mask)
{
	NEED(pselect);
	wait_begin(!ts_zero(ts));
	return wait_end(REAL(pselect)(nfds, rd, wr, ex, ts, mask));
}

EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts,
			const sigset_t *mask)
{
	NEED(epoll_pwait2);
	wait_begin(!ts_zero(ts));
	return wait_end(ffs_ep_answer(ev, REAL(epoll_pwait2)(epfd, ev, max, ts, mask)));
}

/* ---- fd lifetime ---- */

EXPORT int close(int fd)
{
	RAW_IF_BUSY(SYS_close, fd);
	NEED(close);
	return ffs_close(fd);
}

EXPORT int dup(int old)
{
	int r, saved;

	NEED(dup);
	r = REAL(dup)(old);
	saved = errno;
	if (r >= 0)
		ffs_fd_copy(old, r);
	errno = saved;
	return r;
}

EXPORT int dup2(int old, int nfd)
{
	int r, saved;

	NEED(dup2);
	ffs_fd_replacing(old, nfd);
	r = REAL(dup2)(old, nfd);
	saved = errno;
	if (r >= 0 && old != nfd)
		ffs_fd_copy(old, nfd);
	errno = saved;
	return r;
}

EXPORT int dup3(int old, int nfd, int flags)
{
	int r, saved;

	NEED(dup3);
	ffs_fd_replacing(old, nfd);
	r = REAL(dup3)(old, nfd, flags);
	saved = errno;
	if (r >= 0)
		ffs_fd_copy(old, nfd);
	errno = saved;
	return r;
}

/* The body of fcntl and fcntl64, which differ only in the real entry they
 * reach (*real: its slot, read once the table is filled). ap holds their
 * optional argument, passed on as one pointer-sized word whatever the
 * command. */
static int fcntl_va(int (*const *real)(int, int, ...), int fd, int cmd, va_list ap)
{
	void *arg = va_arg(ap, void *);
	int r, saved;

	RAW_IF_BUSY(SYS_fcntl, fd, cmd, arg);
	INIT();
	if (!*real) {
		errno = ENOSYS;
		return -1;
	}
	r = (*real)(fd, cmd, arg);
	saved = errno;
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		ffs_fd_copy(fd, r);
	if (r >= 0 && cmd == F_SETFL && ffs_rings_any())
		ffs_ring_setfl(fd, ((int)(intptr_t)arg & O_NONBLOCK) != 0);
	errno = saved;
	return r;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	int r;

	va_start(ap, cmd);
	r = fcntl_va(&REAL(fcntl), fd, cmd, ap);
	va_end(ap);
	return r;
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	int r;

	va_start(ap, cmd);
	r = fcntl_va(&REAL(fcntl64), fd, cmd, ap);
	va_end(ap);
	return r;
}

/* FIONREAD and SIOCOUTQ of a ring connection are its rings' (the socket
 * holds only doorbell bytes); everything else is the kernel's. */
EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int v;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	RAW_IF_BUSY(SYS_ioctl, fd, req, arg);
	NEED(ioctl);
	if ((req == FIONREAD || req == SIOCOUTQ) && arg && ffs_ring_ioctl(fd, req, &v)) {
		*(int *)arg = v;
		return 0;
	}
	v = REAL(ioctl)(fd, req, arg);
	if (v == 0 && req == FIONBIO && ffs_rings_any()) {
		int saved = errno;

		ffs_ring_setfl(fd, arg ? *(int *)arg != 0 : -1);
		errno = saved;
	}
	return v;
}

/* Entries of [first, last] are dropped after the kernel closed the fds. */
EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	int r, saved;

	NEED(close_range);
	/* a vfork child closes its own fds in our memory: tables untouched */
	if (!(flags & CLOSE_RANGE_CLOEXEC) && !ffs_vfork_child())
		ffs_fd_closing_range(first, last);
	r = REAL(close_range)(first, last, flags);
	saved = errno;
	if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC) && !ffs_vfork_child())
		ffs_fd_drop_range(first, last);
	errno = saved;
	return r;
}

EXPORT void closefrom(int low)
{
	bool mine;

	INIT();
	mine = low >= 0 && !ffs_vfork_child(); /* as in close_range */
	if (mine)
		ffs_fd_closing_range((unsigned)low, ~0u);
	if (REAL(closefrom))
		REAL(closefrom)(low);
	if (mine)
		ffs_fd_drop_range((unsigned)low, ~0u);
}

/* ---- data path ---- */

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	ssize_t r;

	RAW_IF_BUSY(SYS_read, fd, buf, n);
	INIT();
	RING_IO(fd, ffs_ring_recv, false, buf, n, 0);
	r = REAL(read)(fd, buf, n);
	ffs_count(fd, r, false);
	return r;
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	ssize_t r;

	INIT();
	RING_IO(fd, ffs_ring_recv, false, buf, n < buflen ? n : buflen, 0);
	r = REAL(__read_chk)(fd, buf, n, buflen);
	ffs_count(fd, r, false);
	return r;
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct ffs_sock *s;
	ssize_t r;

	RAW_IF_BUSY(SYS_write, fd, buf, n);
	INIT();
	RING_IO(fd, ffs_ring_send, true, buf, n, 0);
	s = ffs_pair_of(fd);
	if (!s) {
		r = REAL(write)(fd, buf, n);
		ffs_count(fd, r, true);
		return r;
	}
	r = ffs_sent(fd, s, REAL(send)(fd, buf, n, MSG_NOSIGNAL), n, 0);
	ffs_count(fd, r, true);
	return r;
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	ssize_t r;

	INIT();
	RING_IOV(fd, ffs_ring_recv, false, iov, cnt, 0);
	r = REAL(readv)(fd, iov, cnt);
	ffs_count(fd, r, false);
	return r;
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = cnt > 0 ? (size_t)cnt : 0};
	struct ffs_sock *s;
	ssize_t r;

	INIT();
	RING_IOV(fd, ffs_ring_send, true, iov, cnt, 0);
	s = ffs_pair_of(fd);
	if (!s || cnt < 0) {
		r = REAL(writev)(fd, iov, cnt);
		ffs_count(fd, r, true);
		return r;
	}
	r = ffs_sent(fd, s, REAL(sendmsg)(fd, &m, MSG_NOSIGNAL), iov_len(iov, m.msg_iovlen), 0);
	ffs_count(fd, r, true);
	return r;
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	struct ffs_sock *s;
	ssize_t r;

	INIT();
	RING_IO(fd, ffs_ring_send, true, buf, n, flags);
	s = ffs_pair_of(fd);
	if (!s) {
		r = REAL(send)(fd, buf, n, flags);
		ffs_count(fd, r, true);
		return r;
	}
	r = ffs_sent(fd, s, REAL(send)(fd, buf, n, flags | MSG_NOSIGNAL), n, flags);
	ffs_count(fd, r, true);
	return r;
}

/* A connected TCP socket ignores a destination address; AF_UNIX refuses it. */
EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
		      socklen_t tolen)
{
	struct ffs_sock *s;
	ssize_t r;

	INIT();
	if (ffs_is_conn(fd) && to) { /* a connected TCP socket ignores the address */
		to = NULL;
		tolen = 0;
	}
	RING_IO(fd, ffs_ring_send, true, buf, n, flags);
	s = ffs_pair_of(fd);
	if (!s) {
		r = REAL(sendto)(fd, buf, n, flags, to, tolen);
		ffs_count(fd, r, true);
		return r;
	}
	r = ffs_sent(fd, s, REAL(send)(fd, buf, n, flags | MSG_NOSIGNAL), n, flags);
	ffs_count(fd, r, true);
	return r;
}

/* The fds a message carries with SCM_RIGHTS: passed on (tx), or just
 * come (ffs_lookup_passed): a ring connection's end is held by its
 * receiver, whose shim takes the rings at the router. A peek installs
 * the fds too, but the sender's hold goes to the read that follows. */
enum passing { PASS_TX, PASS_RX, PASS_PEEK };

static void passed_fds(const struct msghdr *m, enum passing how)
{
	struct cmsghdr *c;

	if (!m || !m->msg_control || m->msg_controllen < sizeof(struct cmsghdr))
		return;
	for (c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR((struct msghdr *)m, c)) {
		size_t n;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (how == PASS_TX)
				ffs_ring_passing(fd);
			else
				ffs_lookup_passed(fd, how == PASS_RX);
		}
	}
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct ffs_sock *s;
	struct msghdr m;
	ssize_t r;

	INIT();
	if (msg && msg->msg_iovlen <= INT32_MAX)
		RING_IOV(fd, ffs_ring_send, true, msg->msg_iov, (int)msg->msg_iovlen, flags);
	s = ffs_pair_of(fd);
	if (!s || !msg) {
		r = REAL(sendmsg)(fd, msg, flags);
		if (r >= 0 && msg && msg->msg_controllen)
			passed_fds(msg, PASS_TX);
		ffs_count(fd, r, true);
		return r;
	}
	m = *msg;
	m.msg_name = NULL;
	m.msg_namelen = 0;
	r = ffs_sent(fd, s, REAL(sendmsg)(fd, &m, flags | MSG_NOSIGNAL),
		     iov_len(m.msg_iov, m.msg_iovlen), flags);
	if (r >= 0 && m.msg_controllen)
		passed_fds(&m, PASS_TX);
	ffs_count(fd, r, true);
	return r;
}

static void clear_names(struct mmsghdr *v, unsigned n, void **save)
{
	for (unsigned i = 0; i < n; i++) {
		save[i] = v[i].msg_hdr.msg_name;
		v[i].msg_hdr.msg_name = NULL;
		v[i].msg_hdr.msg_namelen = 0;
	}
}

static void restore_names(struct mmsghdr *v, unsigned n, void **save)
{
	for (unsigned i = 0; i < n; i++)
		v[i].msg_hdr.msg_name = save[i];
}

static ssize_t mmsg_bytes(const struct mmsghdr *v, int r)
{
	ssize_t sum = 0;

	for (int i = 0; i < r; i++)
		sum += v[i].msg_len;
	return sum;
}

#define MMSG_MAX 1024

EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	void *save[MMSG_MAX];
	bool conn;
	int r;

	NEED(sendmmsg);
	RING_MMSG(fd, true, v, n, flags);
	conn = ffs_is_conn(fd) && v;
	if (conn && n > MMSG_MAX)
		n = MMSG_MAX;
	if (conn)
		clear_names(v, n, save);
	r = REAL(sendmmsg)(fd, v, n, flags);
	if (conn)
		restore_names(v, n, save);
	for (int i = 0; i < r; i++)
		if (v[i].msg_hdr.msg_controllen)
			passed_fds(&v[i].msg_hdr, PASS_TX);
	if (r > 0)
		ffs_count(fd, mmsg_bytes(v, r), true);
	return r;
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	ssize_t r;

	INIT();
	RING_IO(fd, ffs_ring_recv, false, buf, n, flags);
	r = REAL(recv)(fd, buf, n, flags);
	if (!(flags & MSG_PEEK))
		ffs_count(fd, r, false);
	return r;
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	ssize_t r;

	INIT();
	RING_IO(fd, ffs_ring_recv, false, buf, n < buflen ? n : buflen, flags);
	r = REAL(__recv_chk)(fd, buf, n, buflen, flags);
	if (!(flags & MSG_PEEK))
		ffs_count(fd, r, false);
	return r;
}

/* TCP reports no source address on a stream; AF_UNIX would fill one in. */
EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
			socklen_t *fromlen)
{
	ssize_t r;

	INIT();
	if (fromlen && from && ffs_ring_conn(fd))
		*fromlen = 0;
	RING_IO(fd, ffs_ring_recv, false, buf, n, flags);
	if (from && ffs_is_conn(fd)) {
		r = REAL(recvfrom)(fd, buf, n, flags, NULL, NULL);
		if (r >= 0 && fromlen)
			*fromlen = 0;
	} else {
		r = REAL(recvfrom)(fd, buf, n, flags, from, fromlen);
	}
	if (!(flags & MSG_PEEK))
		ffs_count(fd, r, false);
	return r;
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
			      struct sockaddr *from, socklen_t *fromlen)
{
	ssize_t r;

	INIT();
	if (fromlen && from && ffs_ring_conn(fd))
		*fromlen = 0;
	RING_IO(fd, ffs_ring_recv, false, buf, n < buflen ? n : buflen, flags);
	if (from && ffs_is_conn(fd)) {
		r = REAL(__recv_chk)(fd, buf, n, buflen, flags);
		if (r >= 0 && fromlen)
			*fromlen = 0;
	} else {
		r = REAL(__recvfrom_chk)(fd, buf, n, buflen, flags, from, fromlen);
	}
	if (!(flags & MSG_PEEK))
		ffs_count(fd, r, false);
	return r;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	void *name = NULL;
	bool conn;
	ssize_t r;

	INIT();
	if (msg && msg->msg_iovlen <= INT32_MAX && ffs_ring_conn(fd)) {
		msg->msg_namelen = 0;
		msg->msg_controllen = 0;
		msg->msg_flags = 0;
		RING_IOV(fd, ffs_ring_recv, false, msg->msg_iov, (int)msg->msg_iovlen, flags);
	}
	conn = msg && msg->msg_name && ffs_is_conn(fd);
	if (conn) {
		name = msg->msg_name;
		msg->msg_name = NULL;
	}
	r = REAL(recvmsg)(fd, msg, flags);
	if (conn) {
		msg->msg_name = name;
		msg->msg_namelen = 0;
	}
	if (r >= 0 && msg && msg->msg_controllen)
		passed_fds(msg, flags & MSG_PEEK ? PASS_PEEK : PASS_RX);
	if (!(flags & MSG_PEEK))
		ffs_count(fd, r, false);
	return r;
}

EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags, struct timespec *tmo)
{
	void *save[MMSG_MAX];
	bool conn;
	int r;

	NEED(recvmmsg);
	RING_MMSG(fd, false, v, n, flags);
	conn = ffs_is_conn(fd) && v;
	if (conn && n > MMSG_MAX)
		n = MMSG_MAX;
	if (conn)
		clear_names(v, n, save);
	r = REAL(recvmmsg)(fd, v, n, flags, tmo);
	if (conn)
		restore_names(v, n, save);
	for (int i = 0; i < r; i++)
		if (v[i].msg_hdr.msg_controllen)
			passed_fds(&v[i].msg_hdr, flags & MSG_PEEK ? PASS_PEEK : PASS_RX);
	if (r > 0 && !(flags & MSG_PEEK))
		ffs_count(fd, mmsg_bytes(v, r), false);
	return r;
}

EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
	struct ffs_sock *s;
	ssize_t r;

	INIT();
	if ((s = ffs_ring_conn(out))) {
		r = ffs_ring_sendfile(out, s, in, off, n);
		ffs_count(out, r, true);
		return r;
	}
	r = REAL(sendfile)(out, in, off, n);
	ffs_count(out, r, true);
	return r;
}

EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n)
{
	struct ffs_sock *s;
	ssize_t r;

	NEED(sendfile64);
	if ((s = ffs_ring_conn(out))) {
		r = ffs_ring_sendfile(out, s, in, off, n);
		ffs_count(out, r, true);
		return r;
	}
	r = REAL(sendfile64)(out, in, off, n);
	ffs_count(out, r, true);
	return r;
}

EXPORT ssize_t splice(int in, off_t *inoff, int out, off_t *outoff, size_t n, unsigned int flags)
{
	ssize_t r;

	NEED(splice);
	if (ffs_ring_conn(in) || ffs_ring_conn(out)) {
		r = ffs_ring_splice(in, inoff, out, outoff, n, flags);
		if (r > 0)
			ffs_count(ffs_ring_conn(in) ? in : out, r, !ffs_ring_conn(in));
		return r;
	}
	r = REAL(splice)(in, inoff, out, outoff, n, flags);
	ffs_count(in, r, false);
	ffs_count(out, r, true);
	return r;
}

/* ---- exec: ring connections an image without the shim inherits go
 * behind a relay first (sock/exec.c). glibc's exec family calls its
 * internal execve, so each name is interposed. ---- */

extern char **environ;

static int do_execve(const char *path, char *const argv[], char *const envp[])
{
	NEED(execve);
	ffs_exec_prepare(AT_FDCWD, path, 0, false, envp);
	return REAL(execve)(path, argv, envp);
}

static int do_execvpe(const char *file, char *const argv[], char *const envp[])
{
	NEED(execvpe);
	ffs_exec_prepare(AT_FDCWD, file, 0, true, envp);
	return REAL(execvpe)(file, argv, envp);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	return do_execve(path, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return do_execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return do_execvpe(file, argv, envp);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return do_execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	NEED(fexecve);
	ffs_exec_prepare(fd, "", AT_EMPTY_PATH, false, envp);
	return REAL(fexecve)(fd, argv, envp);
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
	INIT();
	ffs_exec_prepare(dirfd, path, flags, false, envp);
	if (!REAL(execveat))
		return (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags);
	return REAL(execveat)(dirfd, path, argv, envp, flags);
}

/* The execl family: the arguments up to the NULL as an argv (at most
 * EXECL_MAX), then for execle the environment after them. */
#define EXECL_MAX 4096

static int exec_list(const char *file, const char *arg, va_list ap, bool search, bool env)
{
	char *const *envp = environ;
	va_list cp;
	int n;

	va_copy(cp, ap);
	for (n = 1; n < EXECL_MAX && va_arg(cp, const char *); n++)
		;
	va_end(cp);
	if (n >= EXECL_MAX) {
		errno = E2BIG;
		return -1;
	}
	char *argv[n + 1];

	argv[0] = (char *)arg;
	for (int i = 1; i <= n; i++) /* argv[n] is the NULL */
		argv[i] = va_arg(ap, char *);
	if (env)
		envp = va_arg(ap, char *const *);
	return search ? do_execvpe(file, argv, envp) : do_execve(file, argv, envp);
}

EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	int r;

	va_start(ap, arg);
	r = exec_list(path, arg, ap, false, false);
	va_end(ap);
	return r;
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	int r;

	va_start(ap, arg);
	r = exec_list(file, arg, ap, true, false);
	va_end(ap);
	return r;
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	int r;

	va_start(ap, arg);
	r = exec_list(path, arg, ap, false, true);
	va_end(ap);
	return r;
}
