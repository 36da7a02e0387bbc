/* sc-err.c - what the application sees when the other end goes away or
 * stops reading: EOF after an orderly close, EPIPE/SIGPIPE, a reset from a
 * close with unread data, and SO_SNDTIMEO on a full connection.
 *
 * TCP reports these with specific timing (a send after the peer's FIN still
 * succeeds and only provokes the reset), so the checks wait for the state
 * change they depend on rather than sleeping.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Sends one byte at a time (MSG_NOSIGNAL) until EPIPE, at most four tries;
 * after a send that succeeds, waits for the reset it provokes. Prints the
 * sequence of results. */
static void send_until_epipe(int s)
{
	char seq[128] = "", one[32];
	size_t used = 0;
	int r = 0, err = 0;

	for (int i = 0; i < 4; i++) {
		r = (int)send(s, "x", 1, MSG_NOSIGNAL);
		err = errno;
		ret_str(one, sizeof(one), r, err);
		used +=
		    (size_t)snprintf(seq + used, sizeof(seq) - used, "%s%s", i ? ", " : "", one);
		if (r == -1 && err == EPIPE)
			break;
		if (r == 1)
			io_wait(s, 0, FFC_IO_MS); /* returns on POLLERR/POLLHUP */
	}
	if (r == -1 && err == EPIPE)
		ck_ok("peerclose.send-until-epipe", "%s", seq);
	else
		ck_fail("peerclose.send-until-epipe", "expected a final -1 EPIPE got %s", seq);
}

void cl_peerclose(void)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP};
	char buf[16];
	int n, r, before, err, ep, s = cl_open("peerclose", NULL, false);

	if (s < 0)
		return;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!step("epoll", ep) || !step("epoll-add", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev)))
		goto out_close;
	if (!step("wait-eof", io_wait(s, POLLIN, FFC_IO_MS) > 0 ? 0 : -ETIMEDOUT))
		goto out_close;
	ck_events("peerclose.poll", POLLIN | POLLOUT | POLLRDHUP,
		  (unsigned)io_wait(s, POLLIN | POLLOUT | POLLRDHUP, 0), "POLL");
	n = epoll_wait(ep, &ev, 1, 0);
	ck_events("peerclose.epoll", EPOLLIN | EPOLLOUT | EPOLLRDHUP, n == 1 ? ev.events : 0,
		  "EPOLL");
	ck_eq("peerclose.recv", 0, recv(s, buf, sizeof(buf), 0));
	ck_eq("peerclose.recv-again", 0, recv(s, buf, sizeof(buf), 0));
	send_until_epipe(s);
	before = ffc_sigpipes;
	r = (int)send(s, "x", 1, 0);
	err = errno;
	ck_yes("peerclose.send-raises-sigpipe", ffc_sigpipes > before);
	errno = err;
	ck_err("peerclose.send-without-nosignal", r, EPIPE);
	before = ffc_sigpipes;
	r = (int)write(s, "x", 1);
	err = errno;
	ck_yes("peerclose.write-raises-sigpipe", ffc_sigpipes > before);
	errno = err;
	ck_err("peerclose.write", r, EPIPE);
out_close:
	if (ep >= 0)
		close(ep);
	close(s);
}

void sv_peerclose(int fd, const char *arg FFC_UNUSED)
{
	ck_zero("peerclose.close", close(fd));
}

void cl_reset(void)
{
	char buf[16];
	int s = cl_open("reset", NULL, false);

	if (s < 0)
		return;
	if (!step("data", io_write_all(s, "0123456789", 10)) ||
	    !step("wait-reset", io_wait(s, POLLIN, FFC_IO_MS) > 0 ? 0 : -ETIMEDOUT))
		goto out_close;
	ck_events("reset.poll", POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP,
		  (unsigned)io_wait(s, POLLIN | POLLOUT | POLLRDHUP, 0), "POLL");
	ck_err("reset.recv", recv(s, buf, sizeof(buf), 0), ECONNRESET);
	ck_eq("reset.recv-after", 0, recv(s, buf, sizeof(buf), 0));
	ck_errval("reset.so_error-after", 0, sockerr(s));
	ck_err("reset.send", send(s, "x", 1, MSG_NOSIGNAL), EPIPE);
out_close:
	close(s);
}

/* Closes with 10 unread bytes: TCP answers with a reset. */
void sv_reset(int fd, const char *arg FFC_UNUSED)
{
	if (!step("data", io_wait_inq(fd, 10)))
		ck_fail("reset.close-with-unread", "expected 10 unread bytes got none");
	else
		ck_zero("reset.close-with-unread", close(fd));
}

#define SNDTIMEO_CHUNK 65536

void cl_sndtimeo(void)
{
	struct timeval tv = {0, 200000};
	socklen_t len = sizeof(tv);
	char *buf = calloc(1, SNDTIMEO_CHUNK);
	size_t total = 0;
	uint64_t t0 = 0;
	int a = -1, r = 0, err = 0, s = cl_open("sndtimeo", NULL, false);

	if (s < 0 || !buf || cl_ready(s) < 0)
		goto out_close;
	a = tcp_dial(ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX);
	if (!step("dial", a))
		goto out_close;
	ck_zero("sndtimeo.set", setsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	memset(&tv, 0, sizeof(tv));
	r = getsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &tv, &len);
	ck_eq("sndtimeo.get-usec", 200000, r == 0 ? tv.tv_sec * 1000000L + tv.tv_usec : -1);
	wd_arm();
	for (int i = 0; i < 100000; i++) {
		t0 = now_ms();
		r = (int)send(a, buf, SNDTIMEO_CHUNK, MSG_NOSIGNAL);
		if (r < 0)
			break;
		total += (size_t)r;
	}
	err = errno;
	wd_disarm();
	errno = err;
	ck_err("sndtimeo.full-send-fails", r, EAGAIN);
	ck_yes("sndtimeo.waited", now_ms() - t0 >= 150);
	ck_yes("sndtimeo.some-sent", total > 0);
	r = io_send_line(s, "sent %zu", total);
	if (r == 0)
		r = shutdown(a, SHUT_WR) < 0 ? -errno : 0;
	if (r == 0)
		r = io_expect_line(s, "done");
	step("done", r);
out_close:
	if (a >= 0)
		close(a);
	if (s >= 0)
		close(s);
	free(buf);
}

/* Accepts the data connection but reads nothing until the client reports
 * (on the scenario connection) that its send timed out. */
void sv_sndtimeo(int fd, const char *arg FFC_UNUSED)
{
	char line[64];
	size_t want = 0, got = 0;
	int a = -1, r, l = sv_aux(fd, 0, 8);

	if (l < 0)
		goto out_finish;
	a = sv_accept(l, SOCK_CLOEXEC);
	if (!step("accept", a))
		goto out_close;
	r = io_read_line(fd, line, sizeof(line));
	if (r >= 0 && sscanf(line, "sent %zu", &want) != 1)
		r = -EPROTO;
	if (r >= 0)
		r = io_read_to_eof(a, &got);
	if (step("drain", r))
		ck_yes("sndtimeo.all-received", got == want);
	step("done", io_send_line(fd, "done"));
out_close:
	if (a >= 0)
		close(a);
	close(l);
out_finish:
	sv_finish(fd);
}
