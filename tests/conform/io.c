/* io.c - fd helpers for the scenarios: every wait is bounded by FFC_IO_MS,
 * results are 0 (or a count) or a negative errno, nothing is printed.
 *
 * The helpers work on blocking and non-blocking sockets alike (they poll
 * before each read or write and retry on EAGAIN), so they never block forever.
 * Blocking calls that are the subject of a check run under wd_arm(): SIGALRM
 * is installed without SA_RESTART, so a hung call fails with EINTR instead.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ffconform.h"

volatile sig_atomic_t ffc_sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	ffc_sigpipes++;
}

static void on_alarm(int sig)
{
	(void)sig;
}

void sig_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_sigpipe;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_alarm;
	sa.sa_flags = 0; /* no SA_RESTART: a hung blocking call returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
}

void wd_arm(void)
{
	alarm(FFC_WD_S);
}

void wd_disarm(void)
{
	alarm(0);
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Returns the revents (> 0), 0 on timeout, or a negative errno. */
int io_wait(int fd, short events, int ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	uint64_t end = now_ms() + (uint64_t)(ms > 0 ? ms : 0);

	for (;;) {
		int left = (int)(end > now_ms() ? end - now_ms() : 0);
		int n = poll(&p, 1, left);

		if (n > 0)
			return p.revents;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int io_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		int r = io_wait(fd, POLLOUT, FFC_IO_MS);

		if (r <= 0)
			return r ? r : -ETIMEDOUT;
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes; -ENODATA if EOF comes first. */
int io_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		int r = io_wait(fd, POLLIN, FFC_IO_MS);

		if (r <= 0)
			return r ? r : -ETIMEDOUT;
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);

		if (n == 0)
			return -ENODATA;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one '\n'-terminated line byte by byte (never past it), strips the
 * newline, returns its length. */
int io_read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	for (;;) {
		char c;
		int r = io_read_full(fd, &c, 1);

		if (r < 0)
			return r;
		if (c == '\n')
			break;
		if (n + 1 >= cap)
			return -EMSGSIZE;
		buf[n++] = c;
	}
	buf[n] = '\0';
	return (int)n;
}

int io_send_line(int fd, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);

	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) - 1)
		return -EMSGSIZE;
	buf[n++] = '\n';
	return io_write_all(fd, buf, (size_t)n);
}

int io_expect_line(int fd, const char *want)
{
	char buf[256];
	int r = io_read_line(fd, buf, sizeof(buf));

	if (r < 0)
		return r;
	return strcmp(buf, want) ? -EPROTO : 0;
}

/* Waits until at least want bytes are queued for reading (FIONREAD). Returns
 * the queued count or a negative errno. */
int io_wait_inq(int fd, int want)
{
	uint64_t end = now_ms() + FFC_IO_MS;
	int n = 0;

	for (;;) {
		if (ioctl(fd, FIONREAD, &n) < 0)
			return -errno;
		if (n >= want)
			return n;
		if (now_ms() > end)
			return -ETIMEDOUT;
		io_wait(fd, POLLIN, 5);
		sleep_ms(1);
	}
}

int io_read_to_eof(int fd, size_t *total)
{
	char buf[65536];
	size_t sum = 0;

	for (;;) {
		int r = io_wait(fd, POLLIN, FFC_IO_MS);

		if (r <= 0)
			return r ? r : -ETIMEDOUT;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		sum += (size_t)n;
	}
	if (total)
		*total = sum;
	return 0;
}

/* fcntl F_GETFD / F_GETFL as a value or a negative errno. */
int fd_flags(int fd, int cmd)
{
	int r = fcntl(fd, cmd);

	return r < 0 ? -errno : r;
}

int set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int addr_make(struct sockaddr_in *sa, const char *ip, int port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, ip, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

void addr_ip(const struct sockaddr_in *sa, char *buf, size_t len)
{
	if (!inet_ntop(AF_INET, &sa->sin_addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

/* A listening socket with SO_REUSEADDR (so reruns and TIME_WAIT connections
 * do not block it). type_flags may add SOCK_NONBLOCK. Returns fd or -errno. */
int tcp_listener(const char *ip, int port, int type_flags, int backlog)
{
	struct sockaddr_in sa;
	int one = 1, r;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);

	if (fd < 0)
		return -errno;
	r = addr_make(&sa, ip, port);
	if (r == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		r = -errno;
	if (r == 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	if (r == 0 && listen(fd, backlog) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* A connected blocking CLOEXEC socket, connected without ever blocking for
 * longer than FFC_IO_MS. Returns fd or -errno. */
int tcp_dial(const char *ip, int port)
{
	struct sockaddr_in sa;
	int err = 0, r;
	socklen_t len = sizeof(err);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	r = addr_make(&sa, ip, port);
	if (r == 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		r = -errno;
	if (r == 0) {
		r = io_wait(fd, POLLOUT, FFC_IO_MS);
		r = r < 0 ? r : r == 0 ? -ETIMEDOUT : 0;
	}
	if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		r = -errno;
	if (r == 0 && err)
		r = -err;
	if (r == 0)
		r = set_nonblock(fd, false);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* Raises the soft RLIMIT_NOFILE to at least want (up to the hard limit). */
int raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)want)
			return -EMFILE;
		rl.rlim_cur = (rlim_t)want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
	}
	return 0;
}

/* A blocking connect under the watchdog; errno survives for the caller. */
int connect_wd(int fd, const struct sockaddr_in *sa)
{
	int r, err;

	wd_arm();
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	err = errno;
	wd_disarm();
	errno = err;
	return r;
}

/* select() on one fd for the asked sets; writes the ready sets as letters
 * ("r", "rw", ... or "none") to out and returns select's result. */
int sel_str(int fd, bool r, bool w, bool e, int ms, char *out, size_t len)
{
	fd_set rs, ws, es;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	int n;

	FD_ZERO(&rs);
	FD_ZERO(&ws);
	FD_ZERO(&es);
	if (r)
		FD_SET(fd, &rs);
	if (w)
		FD_SET(fd, &ws);
	if (e)
		FD_SET(fd, &es);
	do
		n = select(fd + 1, &rs, &ws, &es, &tv);
	while (n < 0 && errno == EINTR);
	snprintf(out, len, "%s%s%s%s", n > 0 && FD_ISSET(fd, &rs) ? "r" : "",
		 n > 0 && FD_ISSET(fd, &ws) ? "w" : "", n > 0 && FD_ISSET(fd, &es) ? "e" : "",
		 n > 0	  ? ""
		 : n == 0 ? "none"
			  : "error");
	return n < 0 ? -errno : n;
}
