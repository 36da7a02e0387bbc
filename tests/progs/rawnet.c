/* rawnet.c - a TCP echo server and client for the tests of what LD_PRELOAD
 * cannot reach (ffexec).
 *
 * Built twice from this file:
 *  - rawnet: glibc, linked -static, and every socket call, read, write, poll
 *    and close goes through syscall(SYS_*, ...), never a libc wrapper: only
 *    seccomp user notification can see it.
 *  - muslnet (-DRN_LIBC): musl-gcc -static, every call through musl's own
 *    wrappers, the way an Alpine binary makes them.
 *
 *   rawnet serve [-k K] [-t SEC] IP PORT     accept K connections (default 1)
 *   rawnet connect [-nb] [-t SEC] IP PORT N  send N bytes, read them back
 *
 * Stdout, one fact a line, for a shell test to assert on:
 *   server: "listening IP:PORT", then per connection "peer IP:PORT" (what
 *           getpeername says), "local IP:PORT", "echoed N"
 *   client: with -nb "nb-connect EINPROGRESS" or "nb-connect 0", then
 *           "ok N local IP:PORT peer IP:PORT"
 * Any failure prints "bad WHAT: REASON" and exits 1; usage errors exit 2.
 * IPv6 addresses print as [IP]:PORT. Byte i of a stream is (i * 7 + 3) & 0xff,
 * as in gonet. Everything dies after -t seconds (default 60, 0: never).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Both variants fail with -1 + errno, as libc does. */
#ifdef RN_LIBC
#define rn_socket(d, t, p)	      socket(d, t, p)
#define rn_bind(fd, a, l)	      bind(fd, a, l)
#define rn_listen(fd, b)	      listen(fd, b)
#define rn_accept4(fd, a, l, f)	      accept4(fd, a, l, f)
#define rn_connect(fd, a, l)	      connect(fd, a, l)
#define rn_getsockname(fd, a, l)      getsockname(fd, (struct sockaddr *)(a), l)
#define rn_getpeername(fd, a, l)      getpeername(fd, (struct sockaddr *)(a), l)
#define rn_setsockopt(fd, l, o, v)    setsockopt(fd, l, o, v, sizeof(*(v)))
#define rn_getsockopt(fd, l, o, v, n) getsockopt(fd, l, o, v, n)
#define rn_shutdown(fd, how)	      shutdown(fd, how)
#define rn_read(fd, b, n)	      read(fd, b, n)
#define rn_write(fd, b, n)	      write(fd, b, n)
#define rn_poll(p, n, ms)	      poll(p, n, ms)
#define rn_close(fd)		      close(fd)
#else
#define rn_socket(d, t, p)	      syscall(SYS_socket, d, t, p)
#define rn_bind(fd, a, l)	      syscall(SYS_bind, fd, a, l)
#define rn_listen(fd, b)	      syscall(SYS_listen, fd, b)
#define rn_accept4(fd, a, l, f)	      syscall(SYS_accept4, fd, a, l, f)
#define rn_connect(fd, a, l)	      syscall(SYS_connect, fd, a, l)
#define rn_getsockname(fd, a, l)      syscall(SYS_getsockname, fd, a, l)
#define rn_getpeername(fd, a, l)      syscall(SYS_getpeername, fd, a, l)
#define rn_setsockopt(fd, l, o, v)    syscall(SYS_setsockopt, fd, l, o, v, sizeof(*(v)))
#define rn_getsockopt(fd, l, o, v, n) syscall(SYS_getsockopt, fd, l, o, v, n)
#define rn_shutdown(fd, how)	      syscall(SYS_shutdown, fd, how)
#define rn_read(fd, b, n)	      syscall(SYS_read, fd, b, n)
#define rn_write(fd, b, n)	      syscall(SYS_write, fd, b, n)
#define rn_poll(p, n, ms)	      syscall(SYS_poll, p, n, ms)
#define rn_close(fd)		      syscall(SYS_close, fd)
#endif

#define RN_CHUNK   65536 /* one lockstep round: below any socket buffer */
#define RN_WAIT_MS 10000 /* a non-blocking socket waits this long for progress */

struct rn_opts {
	bool nb;     /* connect: non-blocking socket */
	long conns;  /* serve: connections to accept */
	int timeout; /* seconds before SIGALRM ends the process */
	const char *ip, *port, *count;
};

static void usage(void)
{
	fprintf(stderr, "usage: rawnet serve [-k K] [-t SEC] IP PORT\n"
			"       rawnet connect [-nb] [-t SEC] IP PORT N\n");
	exit(2);
}

/* Prints "bad WHAT: strerror(err)" and exits 1; err is a positive errno or 0. */
static void die(const char *what, int err)
{
	printf("bad %s: %s\n", what, err ? strerror(err) : "unexpected");
	exit(1);
}

static void pattern(unsigned long long off, unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((off + i) * 7 + 3);
}

static int parse_addr(const char *ip, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	char *end;
	unsigned long p = strtoul(port, &end, 10);

	if (*port == '\0' || *end != '\0' || p > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((unsigned short)p);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((unsigned short)p);
		*len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

/* Writes "IP:PORT" or "[IP]:PORT" into buf (at least 64 bytes). */
static const char *fmt_addr(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(in4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, size, "family-%u", ss->ss_family);
	}
	return buf;
}

/* Prints "LABEL IP:PORT" for the socket's own (peer false) or peer address. */
static void print_name(int fd, const char *label, bool peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char buf[80];
	long r = peer ? rn_getpeername(fd, &ss, &len) : rn_getsockname(fd, &ss, &len);

	if (r < 0)
		die(peer ? "getpeername" : "getsockname", errno);
	printf("%s %s\n", label, fmt_addr(&ss, buf, sizeof(buf)));
}

/* Waits for events on fd; 0 once ready, -ETIMEDOUT or -errno otherwise. */
static int wait_fd(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	long r;

	do
		r = rn_poll(&p, 1, RN_WAIT_MS);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Writes all of buf (not consumed) to a blocking or non-blocking socket. */
static int write_all(int fd, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		long n = rn_write(fd, buf, len);
		int err = n < 0 ? errno : 0;

		if (n < 0 && err == EAGAIN)
			err = -wait_fd(fd, POLLOUT);
		if (err && err != EINTR)
			return -err;
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		}
	}
	return 0;
}

/* Reads up to len bytes; returns the count (0 at EOF) or a negative errno. */
static long read_some(int fd, unsigned char *buf, size_t len)
{
	for (;;) {
		long n = rn_read(fd, buf, len);
		int err = n < 0 ? errno : 0;

		if (n >= 0)
			return n;
		if (err == EAGAIN)
			err = -wait_fd(fd, POLLIN);
		if (err && err != EINTR)
			return -err;
	}
}

static void set_nodelay(int fd)
{
	int one = 1, val = 0;
	socklen_t len = sizeof(val);

	if (rn_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one) < 0)
		die("setsockopt TCP_NODELAY", errno);
	if (rn_getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &val, &len) < 0)
		die("getsockopt TCP_NODELAY", errno);
	if (val == 0)
		die("TCP_NODELAY reads back 0", 0);
}

/* Echoes the connection until EOF (fd not consumed); returns the byte count. */
static unsigned long long echo_conn(int fd)
{
	static unsigned char buf[RN_CHUNK];
	unsigned long long total = 0;

	for (;;) {
		long n = read_some(fd, buf, sizeof(buf));
		int r;

		if (n < 0)
			die("read", (int)-n);
		if (n == 0)
			return total;
		r = write_all(fd, buf, (size_t)n);
		if (r < 0)
			die("write", -r);
		total += (unsigned long long)n;
	}
}

static int do_serve(const struct rn_opts *o)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, lfd;

	if (parse_addr(o->ip, o->port, &ss, &len) < 0)
		usage();
	lfd = (int)rn_socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket", errno);
	if (rn_setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one) < 0)
		die("setsockopt SO_REUSEADDR", errno);
	if (rn_bind(lfd, (struct sockaddr *)&ss, len) < 0)
		die("bind", errno);
	if (rn_listen(lfd, 16) < 0)
		die("listen", errno);
	print_name(lfd, "listening", false);
	fflush(stdout);
	for (long i = 0; i < o->conns; i++) {
		int fd = (int)rn_accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			die("accept4", errno);
		print_name(fd, "peer", true);
		print_name(fd, "local", false);
		fflush(stdout);
		set_nodelay(fd);
		printf("echoed %llu\n", echo_conn(fd));
		fflush(stdout);
		rn_close(fd);
	}
	rn_close(lfd);
	return 0;
}

/* Connects fd to ss; with nb the socket is non-blocking and the connect is
 * finished by poll + SO_ERROR, as an event loop does. */
static void connect_to(int fd, const struct sockaddr_storage *ss, socklen_t len, bool nb)
{
	int err = 0, r;
	socklen_t elen = sizeof(err);

	r = (int)rn_connect(fd, (const struct sockaddr *)ss, len);
	if (!nb) {
		if (r < 0)
			die("connect", errno);
		return;
	}
	if (r < 0 && errno != EINPROGRESS)
		die("connect", errno);
	printf("nb-connect %s\n", r < 0 ? "EINPROGRESS" : "0");
	r = wait_fd(fd, POLLOUT);
	if (r < 0)
		die("poll POLLOUT", -r);
	if (rn_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		die("getsockopt SO_ERROR", errno);
	if (err)
		die("SO_ERROR", err);
}

/* Sends n pattern bytes in lockstep rounds, reads each round back and checks
 * it; then half-closes and expects the server's EOF. fd is not consumed. */
static void exchange(int fd, unsigned long long n)
{
	static unsigned char out[RN_CHUNK], in[RN_CHUNK];
	unsigned long long off = 0;

	while (off < n) {
		size_t len = n - off < RN_CHUNK ? (size_t)(n - off) : RN_CHUNK;
		int r;

		pattern(off, out, len);
		r = write_all(fd, out, len);
		if (r < 0)
			die("write", -r);
		for (size_t got = 0; got < len;) {
			long m = read_some(fd, in + got, len - got);

			if (m <= 0)
				die(m ? "read" : "early EOF", m ? (int)-m : 0);
			got += (size_t)m;
		}
		if (memcmp(in, out, len) != 0)
			die("data differs", 0);
		off += len;
	}
	if (rn_shutdown(fd, SHUT_WR) < 0)
		die("shutdown", errno);
	if (read_some(fd, in, 1) != 0)
		die("no EOF after the echo", 0);
}

static int do_connect(const struct rn_opts *o)
{
	struct sockaddr_storage ss, me, peer;
	socklen_t len, mlen = sizeof(me), plen = sizeof(peer);
	unsigned long long n;
	char *end, b1[80], b2[80];
	int fd;

	n = strtoull(o->count, &end, 10);
	if (*o->count == '\0' || *end != '\0' || parse_addr(o->ip, o->port, &ss, &len) < 0)
		usage();
	fd = (int)rn_socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (o->nb ? SOCK_NONBLOCK : 0),
			    0);
	if (fd < 0)
		die("socket", errno);
	set_nodelay(fd);
	connect_to(fd, &ss, len, o->nb);
	if (rn_getsockname(fd, &me, &mlen) < 0)
		die("getsockname", errno);
	if (rn_getpeername(fd, &peer, &plen) < 0)
		die("getpeername", errno);
	exchange(fd, n);
	rn_close(fd);
	printf("ok %llu local %s peer %s\n", n, fmt_addr(&me, b1, sizeof(b1)),
	       fmt_addr(&peer, b2, sizeof(b2)));
	return 0;
}

/* Fills o from argv[2...]: options first, then the positional arguments. */
static void parse_args(int argc, char **argv, bool client, struct rn_opts *o)
{
	int i = 2;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (client && strcmp(argv[i], "-nb") == 0)
			o->nb = true;
		else if (!client && strcmp(argv[i], "-k") == 0 && i + 1 < argc)
			o->conns = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
			o->timeout = atoi(argv[++i]);
		else
			usage();
	}
	if (argc - i != (client ? 3 : 2) || o->conns < 1 || o->timeout < 0)
		usage();
	o->ip = argv[i];
	o->port = argv[i + 1];
	o->count = client ? argv[i + 2] : NULL;
}

int main(int argc, char **argv)
{
	struct rn_opts o = {.conns = 1, .timeout = 60};
	bool client;

	if (argc < 2)
		usage();
	client = strcmp(argv[1], "connect") == 0;
	if (!client && strcmp(argv[1], "serve") != 0)
		usage();
	parse_args(argc, argv, client, &o);
	signal(SIGPIPE, SIG_IGN); /* a reset peer is a "bad write" line, not a silent death */
	alarm((unsigned)o.timeout);
	return client ? do_connect(&o) : do_serve(&o);
}
