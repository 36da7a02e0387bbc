/* sc-ready.c - readiness: poll/ppoll, select/pselect, epoll level- and
 * edge-triggered, EPOLLONESHOT, and EPOLLRDHUP/EPOLLHUP on half and full
 * close.
 *
 * The server drives: it sends one-line commands ("w N", "shut", "aux",
 * "aux-close", "end") that the client (cl_puppet) carries out, and checks what
 * readiness it sees after each. Commands travel server->client, so they never
 * change the server's own readability; the data they cause is written by the
 * client in one call, and the server waits for the readiness (or for
 * FIONREAD) before every check.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ffconform.h"

#define EV_ERROR 0x80000000u

static void cl_puppet(void)
{
	char line[64], buf[256];
	int r, aux = -1, s = cl_open(ffc_scen, NULL, false);

	if (s < 0)
		return;
	for (int i = 0; i < (int)sizeof(buf); i++)
		buf[i] = (char)('a' + i % 26);
	for (;;) {
		r = io_read_line(s, line, sizeof(line));
		if (r == -ENODATA || !step("command", r))
			break;
		if (strncmp(line, "w ", 2) == 0) {
			step("write", io_write_all(s, buf, (size_t)atoi(line + 2) % sizeof(buf)));
		} else if (strcmp(line, "shut") == 0) {
			step("shut", shutdown(s, SHUT_WR) < 0 ? -errno : 0);
		} else if (strcmp(line, "aux") == 0) {
			aux = tcp_dial(ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX);
			step("aux", aux);
		} else if (strcmp(line, "aux-close") == 0 && aux >= 0) {
			close(aux);
			aux = -1;
		} else if (strcmp(line, "end") == 0) {
			break;
		} else {
			ck_fail(nm("command"), "expected a command got %s", line);
			break;
		}
	}
	if (aux >= 0)
		close(aux);
	close(s);
}

void cl_poll(void)
{
	cl_puppet();
}

void cl_select(void)
{
	cl_puppet();
}

void cl_epoll(void)
{
	cl_puppet();
}

void cl_rdhup(void)
{
	cl_puppet();
}

static bool cmd(int fd, const char *c)
{
	return step("command", io_send_line(fd, "%s", c));
}

static unsigned pl(int fd, short events, int ms)
{
	int r = io_wait(fd, events, ms);

	return r < 0 ? EV_ERROR : (unsigned)r;
}

/* Union of the events epoll_wait reports (one fd registered per set). */
static unsigned epw(int ep, int ms)
{
	struct epoll_event ev[4];
	unsigned m = 0;
	int n;

	do
		n = epoll_wait(ep, ev, 4, ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return EV_ERROR;
	for (int i = 0; i < n; i++)
		m |= ev[i].events;
	return m;
}

/* Reads exactly n bytes once they are all queued. */
static bool take(int fd, int n)
{
	char buf[256];

	return step("read", io_wait_inq(fd, n)) && step("read", io_read_full(fd, buf, (size_t)n));
}

void sv_poll(int fd, const char *arg FFC_UNUSED)
{
	struct timespec ts = {1, 0};
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
	sigset_t mask;
	char buf[64];
	int d;

	ck_events("poll.idle", POLLOUT, pl(fd, POLLIN | POLLOUT, 0), "POLL");
	ck_events("poll.timeout", 0, pl(fd, POLLIN, 100), "POLL");
	if (!cmd(fd, "w 10"))
		goto out_finish;
	ck_events("poll.readable", POLLIN, pl(fd, POLLIN, FFC_IO_MS), "POLL");
	io_wait_inq(fd, 10);
	ck_events("poll.readable-writable", POLLIN | POLLOUT,
		  pl(fd, POLLIN | POLLOUT | POLLRDHUP | POLLPRI, 0), "POLL");
	ck_eq("poll.read", 10, recv(fd, buf, sizeof(buf), 0));
	ck_events("poll.drained", POLLOUT, pl(fd, POLLIN | POLLOUT, 0), "POLL");
	if (!cmd(fd, "w 3"))
		goto out_finish;
	io_wait_inq(fd, 3);
	sigemptyset(&mask);
	ck_eq("poll.ppoll", 1, ppoll(&p, 1, &ts, &mask));
	ck_events("poll.ppoll-revents", POLLIN | POLLOUT, (unsigned)p.revents, "POLL");
	take(fd, 3);
	d = dup(fd);
	close(d);
	ck_events("poll.closed-fd-nval", POLLNVAL, pl(d, POLLIN, 0), "POLL");
	p.fd = -1;
	p.revents = 0x7;
	ck_eq("poll.negative-fd-ignored", 0, poll(&p, 1, 0));
	ck_events("poll.negative-fd-revents", 0, (unsigned)p.revents, "POLL");
	if (!cmd(fd, "shut"))
		goto out_finish;
	ck_events("poll.peer-shut", POLLIN | POLLRDHUP, pl(fd, POLLIN | POLLRDHUP, FFC_IO_MS),
		  "POLL");
	ck_eq("poll.eof", 0, recv(fd, buf, sizeof(buf), 0));
	cmd(fd, "end");
out_finish:
	sv_finish(fd);
}

static int pselect_str(int fd, char *out, size_t len)
{
	fd_set rs, ws, es;
	struct timespec ts = {0, 0};
	sigset_t mask;
	int n;

	FD_ZERO(&rs);
	FD_ZERO(&ws);
	FD_ZERO(&es);
	FD_SET(fd, &rs);
	FD_SET(fd, &ws);
	FD_SET(fd, &es);
	sigemptyset(&mask);
	n = pselect(fd + 1, &rs, &ws, &es, &ts, &mask);
	snprintf(out, len, "%d %s%s%s", n, FD_ISSET(fd, &rs) ? "r" : "",
		 FD_ISSET(fd, &ws) ? "w" : "", FD_ISSET(fd, &es) ? "e" : "");
	return n;
}

void sv_select(int fd, const char *arg FFC_UNUSED)
{
	char s[32], buf[64];
	int d;

	sel_str(fd, true, true, true, 0, s, sizeof(s));
	ck_str("select.idle", "w", s);
	sel_str(fd, true, false, false, 100, s, sizeof(s));
	ck_str("select.timeout", "none", s);
	if (!cmd(fd, "w 10"))
		goto out_finish;
	sel_str(fd, true, false, false, FFC_IO_MS, s, sizeof(s));
	ck_str("select.readable", "r", s);
	io_wait_inq(fd, 10);
	sel_str(fd, true, true, true, 0, s, sizeof(s));
	ck_str("select.readable-writable", "rw", s);
	ck_eq("select.read", 10, recv(fd, buf, sizeof(buf), 0));
	sel_str(fd, true, true, true, 0, s, sizeof(s));
	ck_str("select.drained", "w", s);
	if (!cmd(fd, "w 3"))
		goto out_finish;
	io_wait_inq(fd, 3);
	pselect_str(fd, s, sizeof(s));
	ck_str("select.pselect", "2 rw", s);
	take(fd, 3);
	d = dup(fd);
	close(d);
	ck_eq("select.closed-fd", -EBADF, sel_str(d, true, false, false, 0, s, sizeof(s)));
	if (!cmd(fd, "shut"))
		goto out_finish;
	sel_str(fd, true, false, false, FFC_IO_MS, s, sizeof(s));
	ck_str("select.peer-shut", "r", s);
	ck_eq("select.eof", 0, recv(fd, buf, sizeof(buf), 0));
	cmd(fd, "end");
out_finish:
	sv_finish(fd);
}

static int ep_new(int fd, unsigned events, uint64_t data)
{
	struct epoll_event ev = {.events = events, .data.u64 = data};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;

		close(ep);
		return -err;
	}
	return ep < 0 ? -errno : ep;
}

static int ep_mod(int ep, int fd, unsigned events)
{
	struct epoll_event ev = {.events = events};

	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Level-triggered: readiness repeats while data is queued. */
static void epoll_lt(int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ULL};
	char buf[16];
	int n, ep = epoll_create1(EPOLL_CLOEXEC);

	if (!ck_fd("epoll.create", ep))
		return;
	ck_zero("epoll.add", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	ck_err("epoll.add-again", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), EEXIST);
	ck_events("epoll.lt.idle", 0, epw(ep, 0), "EPOLL");
	if (!cmd(fd, "w 10"))
		goto out_close;
	ck_events("epoll.lt.readable", EPOLLIN, epw(ep, FFC_IO_MS), "EPOLL");
	io_wait_inq(fd, 10);
	memset(&ev, 0, sizeof(ev));
	n = epoll_wait(ep, &ev, 1, 0);
	ck_yes("epoll.lt.data-u64", n == 1 && ev.data.u64 == 0x1122334455667788ULL);
	ck_events("epoll.lt.repeat", EPOLLIN, epw(ep, 0), "EPOLL");
	ck_eq("epoll.lt.read-part", 4, recv(fd, buf, 4, 0));
	ck_events("epoll.lt.partial", EPOLLIN, epw(ep, 0), "EPOLL");
	ck_eq("epoll.lt.read-rest", 6, recv(fd, buf, sizeof(buf), 0));
	ck_events("epoll.lt.drained", 0, epw(ep, 0), "EPOLL");
	ck_zero("epoll.lt.mod-out", ep_mod(ep, fd, EPOLLIN | EPOLLOUT));
	ck_events("epoll.lt.writable", EPOLLOUT, epw(ep, 0), "EPOLL");
	ck_zero("epoll.del", epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL));
	ck_err("epoll.del-again", epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL), ENOENT);
	ck_events("epoll.after-del", 0, epw(ep, 0), "EPOLL");
out_close:
	close(ep);
}

/* Edge-triggered: one report per arrival, none for data still queued. */
static void epoll_et(int fd)
{
	char buf[64];
	int n, total = 0, err = 0, et = ep_new(fd, EPOLLIN | EPOLLET, 0);

	if (!ck_fd("epoll.et.create", et))
		return;
	ck_events("epoll.et.idle", 0, epw(et, 0), "EPOLL");
	if (!cmd(fd, "w 10"))
		goto out_close;
	ck_events("epoll.et.readable", EPOLLIN, epw(et, FFC_IO_MS), "EPOLL");
	io_wait_inq(fd, 10);
	ck_events("epoll.et.no-repeat", 0, epw(et, 0), "EPOLL");
	ck_eq("epoll.et.read-part", 4, recv(fd, buf, 4, 0));
	ck_events("epoll.et.partial-read-no-event", 0, epw(et, 0), "EPOLL");
	if (!cmd(fd, "w 5"))
		goto out_close;
	ck_events("epoll.et.new-data", EPOLLIN, epw(et, FFC_IO_MS), "EPOLL");
	io_wait_inq(fd, 11);
	while ((n = (int)recv(fd, buf, 3, MSG_DONTWAIT)) > 0)
		total += n;
	err = errno;
	ck_eq("epoll.et.drained-bytes", 11, total);
	ck_errval("epoll.et.drain-ends", EAGAIN, n < 0 ? err : 0);
	ck_zero("epoll.et.mod-out", ep_mod(et, fd, EPOLLOUT | EPOLLET));
	ck_events("epoll.et.out-first", EPOLLOUT, epw(et, 0), "EPOLL");
	ck_events("epoll.et.out-no-repeat", 0, epw(et, 0), "EPOLL");
out_close:
	close(et);
}

static void epoll_oneshot(int fd)
{
	int os = ep_new(fd, EPOLLIN | EPOLLONESHOT, 0);

	if (!ck_fd("epoll.oneshot.create", os))
		return;
	if (!cmd(fd, "w 1"))
		goto out_close;
	ck_events("epoll.oneshot.first", EPOLLIN, epw(os, FFC_IO_MS), "EPOLL");
	if (!cmd(fd, "w 1"))
		goto out_close;
	io_wait_inq(fd, 2);
	ck_events("epoll.oneshot.disarmed", 0, epw(os, 0), "EPOLL");
	ck_zero("epoll.oneshot.rearm", ep_mod(os, fd, EPOLLIN | EPOLLONESHOT));
	ck_events("epoll.oneshot.rearmed", EPOLLIN, epw(os, 0), "EPOLL");
	take(fd, 2);
out_close:
	close(os);
}

void sv_epoll(int fd, const char *arg FFC_UNUSED)
{
	epoll_lt(fd);
	epoll_et(fd);
	epoll_oneshot(fd);
	cmd(fd, "end");
	sv_finish(fd);
}

/* The aux connection: the peer closes it completely, then we shut ours. */
static void rdhup_close(int fd)
{
	char buf[16];
	int a = -1, ea = -1, l = tcp_listener(ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX, 0, 8);

	if (!step("listen", l) || !cmd(fd, "aux"))
		goto out_close;
	a = sv_accept(l, SOCK_CLOEXEC);
	if (!step("accept", a))
		goto out_close;
	ea = ep_new(a, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 0);
	if (!step("epoll", ea))
		goto out_close;
	ck_events("rdhup.aux-idle", EPOLLOUT, epw(ea, 0), "EPOLL");
	if (!cmd(fd, "aux-close"))
		goto out_close;
	io_wait(a, POLLIN, FFC_IO_MS);
	ck_events("rdhup.peer-close", EPOLLIN | EPOLLOUT | EPOLLRDHUP, epw(ea, 0), "EPOLL");
	ck_eq("rdhup.peer-close-eof", 0, recv(a, buf, sizeof(buf), 0));
	ck_zero("rdhup.shut_wr-after-peer-close", shutdown(a, SHUT_WR));
	ck_events("rdhup.both-shut", EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLHUP, epw(ea, 0),
		  "EPOLL");
	ck_events("rdhup.both-shut-poll", POLLIN | POLLOUT | POLLRDHUP | POLLHUP,
		  pl(a, POLLIN | POLLOUT | POLLRDHUP, 0), "POLL");
out_close:
	if (ea >= 0)
		close(ea);
	if (a >= 0)
		close(a);
	if (l >= 0)
		close(l);
}

void sv_rdhup(int fd, const char *arg FFC_UNUSED)
{
	char buf[16];
	int ep = ep_new(fd, EPOLLIN | EPOLLRDHUP, 0);

	if (!step("epoll", ep))
		goto out_finish;
	ck_events("rdhup.idle", 0, epw(ep, 0), "EPOLL");
	if (!cmd(fd, "shut"))
		goto out_close;
	ck_events("rdhup.peer-shutdown", EPOLLIN | EPOLLRDHUP, epw(ep, FFC_IO_MS), "EPOLL");
	ck_eq("rdhup.eof", 0, recv(fd, buf, sizeof(buf), 0));
	rdhup_close(fd);
	cmd(fd, "end");
out_close:
	close(ep);
out_finish:
	sv_finish(fd);
}
