/* sc-conn.c - establishing connections: blocking and non-blocking connect and
 * accept, refused connections, accept4 flags, readiness of a listener, and
 * bind conflicts.
 *
 * Scenario connections come from cl_open() (blocking connect, CLOEXEC); the
 * second listener of a scenario is on port+1 and closed before it returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ffconform.h"

static int sockerr(int fd)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len) < 0)
		return -errno;
	return v;
}

static int intopt(int fd, int level, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &len) < 0)
		return -errno;
	return v;
}

void cl_hello(void)
{
	uint64_t end = now_ms() + (uint64_t)ffc_opt.timeout_s * 1000;
	char line[64];
	int fd, r;

	while ((fd = cl_open("hello", NULL, true)) < 0 && now_ms() < end)
		sleep_ms(100);
	if (fd < 0) {
		ck_fail("hello.connect", "expected a server got none within %d s",
			ffc_opt.timeout_s);
		return;
	}
	ck_ok("hello.connect", "server reachable");
	r = io_read_line(fd, line, sizeof(line));
	if (step("reply", r))
		ck_str("hello.reply", "ffconform-1", line);
	close(fd);
}

void sv_hello(int fd, const char *arg FFC_UNUSED)
{
	ck_ok("hello.greeting", "client connected");
	step("reply", io_send_line(fd, "ffconform-1"));
	sv_finish(fd);
}

/* Server side of both connect scenarios: one ping-pong. */
void sv_pingpong(int fd, const char *arg FFC_UNUSED)
{
	sv_pong(fd);
	sv_finish(fd);
}

void cl_connect_blocking(void)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (!ck_fd("connect-blocking.socket", fd))
		return;
	addr_make(&sa, ffc_opt.ip, ffc_opt.port);
	if (!ck_zero("connect-blocking.connect", connect_wd(fd, &sa)))
		goto out_close;
	ck_err("connect-blocking.connect-again", connect_wd(fd, &sa), EISCONN);
	if (step("announce", io_send_line(fd, "connect-blocking")))
		cl_ping(fd);
out_close:
	close(fd);
}

void cl_connect_nonblock(void)
{
	struct sockaddr_in sa;
	struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = 0xc0ffee};
	int one = 1, r, err, rev;
	char buf[8];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (!ck_fd("connect-nonblock.socket", fd) || !step("epoll", ep))
		goto out_close;
	addr_make(&sa, ffc_opt.ip, ffc_opt.port);
	/* Options and the epoll registration made before connect must survive it. */
	ck_zero("connect-nonblock.nodelay-before",
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)));
	ck_zero("connect-nonblock.keepalive-before",
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)));
	ck_zero("connect-nonblock.epoll-add-before", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	err = errno;
	if (r == 0 || err == EINPROGRESS)
		ck_ok("connect-nonblock.connect", "%s", r == 0 ? "0" : "-1 EINPROGRESS");
	else
		ck_fail("connect-nonblock.connect", "expected -1 EINPROGRESS or 0 got -1 %s",
			err_name(err));
	rev = io_wait(fd, POLLOUT, FFC_IO_MS);
	ck_events("connect-nonblock.pollout", POLLOUT, (unsigned)rev, "POLL");
	ck_errval("connect-nonblock.so_error", 0, sockerr(fd));
	memset(&ev, 0, sizeof(ev));
	r = epoll_wait(ep, &ev, 1, 0);
	ck_events("connect-nonblock.epoll-registered-before", EPOLLOUT,
		  r == 1 && ev.data.u64 == 0xc0ffee ? ev.events : 0, "EPOLL");
	ck_yes("connect-nonblock.still-nonblocking", fd_flags(fd, F_GETFL) & O_NONBLOCK);
	ck_yes("connect-nonblock.still-cloexec", fd_flags(fd, F_GETFD) == FD_CLOEXEC);
	ck_yes("connect-nonblock.nodelay-kept", intopt(fd, IPPROTO_TCP, TCP_NODELAY) > 0);
	ck_yes("connect-nonblock.keepalive-kept", intopt(fd, SOL_SOCKET, SO_KEEPALIVE) > 0);
	/* Linux: the first connect() after completion reports the result (0),
	 * only later ones say EISCONN. */
	ck_zero("connect-nonblock.connect-again", connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	ck_err("connect-nonblock.connect-third", connect(fd, (struct sockaddr *)&sa, sizeof(sa)),
	       EISCONN);
	ck_err("connect-nonblock.recv-empty", recv(fd, buf, sizeof(buf), 0), EAGAIN);
	if (step("announce", io_send_line(fd, "connect-nonblock")))
		cl_ping(fd);
out_close:
	if (fd >= 0)
		close(fd);
	if (ep >= 0)
		close(ep);
}

void cl_refused(void)
{
	struct sockaddr_in sa;
	int r, err, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	addr_make(&sa, ffc_opt.ip, ffc_opt.port + FFC_PORT_REFUSED);
	if (!ck_fd("refused.socket", fd))
		return;
	ck_err("refused.blocking", connect_wd(fd, &sa), ECONNREFUSED);
	ck_errval("refused.blocking.so_error", 0, sockerr(fd));
	close(fd);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (!ck_fd("refused.nonblock.socket", fd))
		return;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	err = errno;
	if (r == -1 && err == EINPROGRESS) {
		ck_ok("refused.nonblock.connect", "-1 EINPROGRESS");
		ck_events("refused.nonblock.poll", POLLOUT | POLLERR | POLLHUP,
			  (unsigned)io_wait(fd, POLLOUT, FFC_IO_MS), "POLL");
	} else {
		char got[48];

		ret_str(got, sizeof(got), r, err);
		ck_fail("refused.nonblock.connect", "expected -1 EINPROGRESS got %s", got);
	}
	ck_errval("refused.nonblock.so_error", ECONNREFUSED, sockerr(fd));
	ck_errval("refused.nonblock.so_error-cleared", 0, sockerr(fd));
	close(fd);
}

/* Client side of the accept scenarios: after "ready" (and delay_ms, so that a
 * blocking accept is really asleep), one connection to port+1 and a ping. */
static void cl_aux_ping(int delay_ms)
{
	int a, s = cl_open(ffc_scen, NULL, false);

	if (s < 0)
		return;
	if (cl_ready(s) < 0)
		goto out_close_s;
	sleep_ms(delay_ms);
	a = tcp_dial(ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX);
	if (step("dial", a)) {
		cl_ping(a);
		close(a);
	}
out_close_s:
	close(s);
}

void cl_accept_blocking(void)
{
	cl_aux_ping(200);
}

void sv_accept_blocking(int fd, const char *arg FFC_UNUSED)
{
	struct sockaddr_in sa, peer;
	socklen_t len = sizeof(sa), plen = sizeof(peer);
	int a, err, l = sv_aux(fd, 0, 8);

	if (l < 0)
		goto out_finish;
	wd_arm();
	a = accept(l, (struct sockaddr *)&sa, &len);
	err = errno;
	wd_disarm();
	errno = err;
	if (!ck_fd("accept-blocking.accept", a))
		goto out_close_l;
	ck_eq("accept-blocking.addrlen", (long)sizeof(sa), len);
	ck_yes("accept-blocking.addr-is-peername",
	       getpeername(a, (struct sockaddr *)&peer, &plen) == 0 && plen == len &&
		   memcmp(&peer, &sa, sizeof(sa)) == 0);
	ck_eq("accept-blocking.fd-flags", 0, fd_flags(a, F_GETFD));
	sv_pong(a);
	sv_finish(a);
out_close_l:
	close(l);
out_finish:
	sv_finish(fd);
}

void cl_accept_nonblock(void)
{
	cl_aux_ping(0);
}

void sv_accept_nonblock(int fd, const char *arg FFC_UNUSED)
{
	struct epoll_event ev = {.events = EPOLLIN};
	char sel[16];
	int a, n, ep = -1;
	int l = tcp_listener(ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX, SOCK_NONBLOCK, 8);

	if (!step("listen", l))
		goto out_finish;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!step("epoll", ep) || !step("epoll-add", epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev)))
		goto out_close;
	ck_err_fd("accept-nonblock.empty", accept(l, NULL, NULL), EAGAIN);
	ck_events("accept-nonblock.poll-idle", 0, (unsigned)io_wait(l, POLLIN, 0), "POLL");
	sel_str(l, true, false, false, 0, sel, sizeof(sel));
	ck_str("accept-nonblock.select-idle", "none", sel);
	ck_eq("accept-nonblock.epoll-idle", 0, epoll_wait(ep, &ev, 1, 0));
	if (!step("ready", io_send_line(fd, "ready")))
		goto out_close;
	ck_events("accept-nonblock.poll-pending", POLLIN, (unsigned)io_wait(l, POLLIN, FFC_IO_MS),
		  "POLL");
	sel_str(l, true, true, true, 0, sel, sizeof(sel));
	ck_str("accept-nonblock.select-pending", "r", sel);
	n = epoll_wait(ep, &ev, 1, 0);
	ck_events("accept-nonblock.epoll-pending", EPOLLIN, n == 1 ? ev.events : 0, "EPOLL");
	a = accept(l, NULL, NULL);
	if (!ck_fd("accept-nonblock.accept", a))
		goto out_close;
	ck_yes("accept-nonblock.nonblock-not-inherited", !(fd_flags(a, F_GETFL) & O_NONBLOCK));
	ck_events("accept-nonblock.poll-drained", 0, (unsigned)io_wait(l, POLLIN, 0), "POLL");
	ck_eq("accept-nonblock.epoll-drained", 0, epoll_wait(ep, &ev, 1, 0));
	ck_err_fd("accept-nonblock.empty-again", accept(l, NULL, NULL), EAGAIN);
	sv_pong(a);
	sv_finish(a);
out_close:
	if (ep >= 0)
		close(ep);
	if (l >= 0)
		close(l);
out_finish:
	sv_finish(fd);
}

void cl_accept4(void)
{
	char line[64];
	int a, b, r, s = cl_open("accept4", NULL, false);

	if (s < 0)
		return;
	if (cl_ready(s) < 0)
		goto out_close_s;
	a = tcp_dial(ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX);
	if (!step("dial", a))
		goto out_close_s;
	r = io_expect_line(s, "go");
	if (r == 0)
		r = io_send_line(a, "hi");
	if (r == 0)
		r = io_read_line(a, line, sizeof(line));
	if (step("hi", r))
		ck_str("accept4.reply", "hi-back", line);
	b = tcp_dial(ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX);
	if (step("dial2", b)) {
		cl_ping(b);
		close(b);
	}
	close(a);
out_close_s:
	close(s);
}

void sv_accept4(int fd, const char *arg FFC_UNUSED)
{
	char buf[64];
	int a, b, r, l = sv_aux(fd, 0, 8);

	if (l < 0)
		goto out_finish;
	a = accept4(l, NULL, NULL, O_APPEND);
	ck_err_fd("accept4.bad-flags", a, EINVAL);
	if (a >= 0)
		close(a); /* an accept that should have failed took a connection */
	a = sv_accept(l, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!ck_fd("accept4.nonblock-cloexec", a))
		goto out_close_l;
	ck_yes("accept4.nonblock", fd_flags(a, F_GETFL) & O_NONBLOCK);
	ck_yes("accept4.cloexec", fd_flags(a, F_GETFD) == FD_CLOEXEC);
	ck_err("accept4.recv-empty", recv(a, buf, sizeof(buf), 0), EAGAIN);
	r = io_send_line(fd, "go");
	if (r == 0)
		r = io_read_line(a, buf, sizeof(buf));
	if (step("hi", r) && ck_str("accept4.data", "hi", buf))
		step("hi-back", io_send_line(a, "hi-back"));
	b = sv_accept(l, 0);
	if (ck_fd("accept4.plain", b)) {
		ck_yes("accept4.plain-flags",
		       !(fd_flags(b, F_GETFL) & O_NONBLOCK) && fd_flags(b, F_GETFD) == 0);
		sv_pong(b);
		sv_finish(b);
	}
	sv_finish(a);
out_close_l:
	close(l);
out_finish:
	sv_finish(fd);
}

void cl_addrinuse(void)
{
	cl_wait_done();
}

/* Bind conflicts on port+3, which never carries a connection. */
void sv_addrinuse(int fd, const char *arg FFC_UNUSED)
{
	struct sockaddr_in sa, foreign;
	const struct sockaddr *p = (const struct sockaddr *)&sa;
	int one = 1, s[6];

	for (int i = 0; i < 6; i++)
		s[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr_make(&sa, ffc_opt.ip, ffc_opt.port + FFC_PORT_BIND);
	addr_make(&foreign, "192.0.2.1", ffc_opt.port + FFC_PORT_BIND);
	ck_zero("addrinuse.first-bind", bind(s[0], p, sizeof(sa)));
	ck_err("addrinuse.second-bind", bind(s[1], p, sizeof(sa)), EADDRINUSE);
	ck_zero("addrinuse.listen", listen(s[0], 4));
	ck_err("addrinuse.bind-while-listening", bind(s[2], p, sizeof(sa)), EADDRINUSE);
	setsockopt(s[3], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ck_err("addrinuse.reuseaddr-while-listening", bind(s[3], p, sizeof(sa)), EADDRINUSE);
	close(s[0]);
	s[0] = -1;
	ck_zero("addrinuse.after-close", bind(s[4], p, sizeof(sa)));
	ck_err("addrinuse.rebind", bind(s[4], p, sizeof(sa)), EINVAL);
	ck_err("addrinuse.foreign-ip", bind(s[5], (struct sockaddr *)&foreign, sizeof(foreign)),
	       EADDRNOTAVAIL);
	for (int i = 0; i < 6; i++)
		if (s[i] >= 0)
			close(s[i]);
	step("done", io_send_line(fd, "done"));
	sv_finish(fd);
}
