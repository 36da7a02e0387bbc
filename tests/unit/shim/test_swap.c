/* libffshim/sock/swap.c: swapping the file behind an app's fd. The app
 * keeps its fd number, O_NONBLOCK and FD_CLOEXEC as it set them, the
 * socket options it set (replayed) and its epoll registrations, while the
 * file becomes the one the router handed over. */
#include "cu.h"
#include "shim_fixture.h"

#include "sock/sock-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

/* A loopback TCP connection: *cli (made with flags) connected to *srv. */
static void tcp_conn(int flags, int *cli, int *srv)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(in);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	*cli = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(l >= 0 && *cli >= 0);
	CU_ASSERT_FATAL(bind(l, (struct sockaddr *)&in, len) == 0 && listen(l, 1) == 0);
	CU_ASSERT_FATAL(getsockname(l, (struct sockaddr *)&in, &len) == 0);
	CU_ASSERT_FATAL(connect(*cli, (struct sockaddr *)&in, len) == 0);
	*srv = accept(l, NULL, NULL);
	CU_ASSERT_FATAL(*srv >= 0);
	close(l);
	if (flags & SOCK_NONBLOCK)
		fcntl(*cli, F_SETFL, fcntl(*cli, F_GETFL) | O_NONBLOCK);
	if (flags & SOCK_CLOEXEC)
		fcntl(*cli, F_SETFD, FD_CLOEXEC);
}

static ino_t ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static int opt_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, level, name, &v, &len) == 0 ? v : -1;
}

static void set_int(int fd, int level, int name, int v)
{
	CU_ASSERT_EQUAL(ffs_setsockopt(fd, level, name, &v, sizeof(v)), 0);
}

/* The socket options an app sets before connect() (through the shim's
 * setsockopt) are on the socket it gets, with its flags and fd number. */
static void test_swap_keeps_number_flags_options(void)
{
	int app = sf_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC), cli, srv, rcvbuf;
	struct linger lg = {.l_onoff = 1, .l_linger = 7}, lg2;
	struct timeval tv = {.tv_sec = 1, .tv_usec = 500000}, tv2;
	socklen_t len;
	ino_t new_ino;
	char c;

	set_int(app, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int(app, SOL_SOCKET, SO_PRIORITY, 3);
	set_int(app, SOL_SOCKET, SO_RCVBUF, 65536);
	CU_ASSERT_EQUAL(ffs_setsockopt(app, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	CU_ASSERT_EQUAL(ffs_setsockopt(app, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	rcvbuf = opt_int(app, SOL_SOCKET, SO_RCVBUF); /* what the kernel made of it */
	tcp_conn(0, &cli, &srv);
	new_ino = ino(cli);
	CU_ASSERT_EQUAL(ffs_swap(app, cli, fcntl(app, F_GETFL), ffs_fd_get(app)), 0);
	CU_ASSERT_EQUAL(ino(app), new_ino);	  /* the same number, the new file */
	CU_ASSERT_EQUAL(fcntl(cli, F_GETFD), -1); /* newfd consumed */
	CU_ASSERT_EQUAL(errno, EBADF);
	CU_ASSERT(fcntl(app, F_GETFL) & O_NONBLOCK);
	CU_ASSERT(fcntl(app, F_GETFD) & FD_CLOEXEC);
	CU_ASSERT_EQUAL(opt_int(app, SOL_SOCKET, SO_KEEPALIVE), 1);
	CU_ASSERT_EQUAL(opt_int(app, SOL_SOCKET, SO_PRIORITY), 3);
	CU_ASSERT_EQUAL(opt_int(app, SOL_SOCKET, SO_RCVBUF), rcvbuf);
	len = sizeof(lg2);
	CU_ASSERT_EQUAL(getsockopt(app, SOL_SOCKET, SO_LINGER, &lg2, &len), 0);
	CU_ASSERT_EQUAL(lg2.l_onoff, 1);
	CU_ASSERT_EQUAL(lg2.l_linger, 7);
	len = sizeof(tv2);
	CU_ASSERT_EQUAL(getsockopt(app, SOL_SOCKET, SO_RCVTIMEO, &tv2, &len), 0);
	CU_ASSERT_EQUAL(tv2.tv_sec, 1);
	CU_ASSERT_EQUAL(tv2.tv_usec, 500000);
	/* and it is the connection: bytes from the other end arrive */
	CU_ASSERT_EQUAL(write(srv, "x", 1), 1);
	CU_ASSERT_EQUAL(poll(&(struct pollfd){.fd = app, .events = POLLIN}, 1, 2000), 1);
	CU_ASSERT_EQUAL(read(app, &c, 1), 1);
	sf_close(app);
	close(srv);
}

/* Flags the app did not set are not set, whatever the new file had. */
static void test_swap_clears_flags(void)
{
	int app = sf_socket(AF_INET, SOCK_STREAM), cli, srv;

	tcp_conn(SOCK_NONBLOCK | SOCK_CLOEXEC, &cli, &srv);
	CU_ASSERT_EQUAL(ffs_swap(app, cli, fcntl(app, F_GETFL), ffs_fd_get(app)), 0);
	CU_ASSERT_FALSE(fcntl(app, F_GETFL) & O_NONBLOCK);
	CU_ASSERT_FALSE(fcntl(app, F_GETFD) & FD_CLOEXEC);
	sf_close(app);
	close(srv);
}

/* An epoll registration follows the fd number to the new file, and the
 * old file's goes, even while another copy keeps the old file open. */
static void test_swap_moves_epoll(void)
{
	int app = sf_socket(AF_INET, SOCK_STREAM), cli, srv, ep = epoll_create1(EPOLL_CLOEXEC);
	int old_copy = dup(app);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42}, got[4];

	CU_ASSERT_FATAL(ep >= 0 && old_copy >= 0);
	CU_ASSERT_EQUAL(ffs_epoll_ctl(ep, EPOLL_CTL_ADD, app, &ev), 0);
	/* an unconnected TCP socket reports EPOLLHUP: a stale registration
	 * of the old file would show up below */
	CU_ASSERT_EQUAL(epoll_wait(ep, got, 4, 0), 1);
	tcp_conn(0, &cli, &srv);
	CU_ASSERT_EQUAL(ffs_swap(app, cli, fcntl(app, F_GETFL), ffs_fd_get(app)), 0);
	CU_ASSERT_EQUAL(epoll_wait(ep, got, 4, 0), 0);
	CU_ASSERT_EQUAL(write(srv, "x", 1), 1);
	CU_ASSERT_EQUAL(epoll_wait(ep, got, 4, 2000), 1);
	CU_ASSERT_EQUAL(got[0].data.u64, 42);
	CU_ASSERT(got[0].events & EPOLLIN);
	sf_close(app);
	close(old_copy);
	close(srv);
	close(ep);
}

/* A failed swap leaves the app's fd as it was and still consumes newfd. */
static void test_swap_failure(void)
{
	int app = sf_socket(AF_INET, SOCK_STREAM), cli, srv;
	ino_t before = ino(app);

	tcp_conn(0, &cli, &srv);
	CU_ASSERT(ffs_swap(app, cli, -1, ffs_fd_get(app)) < 0); /* flags unknown */
	CU_ASSERT_EQUAL(ino(app), before);
	CU_ASSERT_EQUAL(fcntl(cli, F_GETFD), -1);
	CU_ASSERT_EQUAL(ffs_swap(app, -1, fcntl(app, F_GETFL), ffs_fd_get(app)), -EBADF);
	CU_ASSERT_EQUAL(ino(app), before);
	sf_close(app);
	close(srv);
}

/* Only socket-level options a swap can carry are kept, the last value of
 * each once. */
static void test_opts_record(void)
{
	int app = sf_socket(AF_INET, SOCK_STREAM);
	struct ffs_sock *s = ffs_fd_get(app);
	char big[32] = {0};

	set_int(app, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int(app, SOL_SOCKET, SO_KEEPALIVE, 0);
	CU_ASSERT_EQUAL(s->nopts, 1);
	CU_ASSERT_EQUAL(*(int *)s->opts[0].val, 0);
	set_int(app, IPPROTO_TCP, TCP_NODELAY, 1); /* the TCP level is not the swap's */
	set_int(app, SOL_SOCKET, SO_REUSEADDR, 1); /* meaningless once connected */
	CU_ASSERT_EQUAL(s->nopts, 1);
	ffs_opts_record(s, SOL_SOCKET, SO_SNDBUF, big, sizeof(big)); /* too long to keep */
	CU_ASSERT_EQUAL(s->nopts, 1);
	/* a failed setsockopt is not recorded */
	CU_ASSERT_EQUAL(ffs_setsockopt(app, SOL_SOCKET, SO_SNDBUF, big, 1), -1);
	CU_ASSERT_EQUAL(s->nopts, 1);
	sf_close(app);
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"swap_keeps_number_flags_options", test_swap_keeps_number_flags_options},
	    {"swap_clears_flags", test_swap_clears_flags},
	    {"swap_moves_epoll", test_swap_moves_epoll},
	    {"swap_failure", test_swap_failure},
	    {"opts_record", test_opts_record},
	    {0},
	};

	ffs_init();
	return cu_run("shim-swap", tests);
}
