/* sc-io.c - data transfer semantics: half close, MSG_PEEK / MSG_WAITALL /
 * MSG_DONTWAIT, FIONREAD, scatter-gather calls and sendfile.
 *
 * Where a check needs all bytes to have arrived before a single call (readv,
 * recvmsg, FIONREAD) the reader first waits for FIONREAD to reach the count,
 * so the result does not depend on segmenting or timing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ffconform.h"

/* Deterministic test bytes: len bytes of the stream with this seed. */
static void pattern(void *buf, size_t len, uint64_t seed)
{
	ffc_rand_fill(&seed, buf, len);
}

void cl_shutdown(void)
{
	char buf[64];
	int r, u, s = cl_open("shutdown", NULL, false);

	if (s < 0)
		return;
	u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_err("shutdown.unconnected", shutdown(u, SHUT_WR), ENOTCONN);
	close(u);
	if (!step("data", io_write_all(s, "abc", 3)))
		goto out_close;
	ck_zero("shutdown.shut_wr", shutdown(s, SHUT_WR));
	ck_err("shutdown.send-after-shut_wr", send(s, "x", 1, MSG_NOSIGNAL), EPIPE);
	r = io_read_line(s, buf, sizeof(buf));
	if (step("reply", r))
		ck_str("shutdown.other-direction-works", "reply-after-eof", buf);
	if (io_wait(s, POLLIN, FFC_IO_MS) > 0)
		ck_eq("shutdown.peer-close-eof", 0, recv(s, buf, sizeof(buf), 0));
	else
		ck_fail("shutdown.peer-close-eof", "expected 0 got timeout");
out_close:
	close(s);
}

void sv_shutdown(int fd, const char *arg FFC_UNUSED)
{
	char buf[8] = {0};
	int r = io_read_full(fd, buf, 3);

	if (!step("data", r) || !ck_str("shutdown.data", "abc", buf))
		goto out_close;
	if (io_wait(fd, POLLIN, FFC_IO_MS) > 0)
		ck_eq("shutdown.eof", 0, recv(fd, buf, sizeof(buf), 0));
	else
		ck_fail("shutdown.eof", "expected 0 got timeout");
	ck_events("shutdown.poll-after-eof", POLLIN | POLLOUT | POLLRDHUP,
		  (unsigned)io_wait(fd, POLLIN | POLLOUT | POLLRDHUP, 0), "POLL");
	ck_eq("shutdown.eof-again", 0, recv(fd, buf, sizeof(buf), MSG_DONTWAIT));
	step("reply", io_send_line(fd, "reply-after-eof"));
out_close:
	close(fd);
}

void cl_peek(void)
{
	char buf[1024], want[1000];
	int r, n = -1, err, s = cl_open("peek", NULL, false);

	if (s < 0)
		return;
	ck_eq("peek.fionread", 11, io_wait_inq(s, 11));
	r = (int)recv(s, buf, 5, MSG_PEEK);
	ck_str("peek.peek-5", "hello", r == 5 ? (buf[5] = '\0', buf) : "short");
	r = (int)recv(s, buf, sizeof(buf), MSG_PEEK);
	ck_str("peek.peek-all", "hello world", r == 11 ? (buf[11] = '\0', buf) : "short");
	ioctl(s, FIONREAD, &n);
	ck_eq("peek.fionread-after-peek", 11, n);
	r = (int)recv(s, buf, sizeof(buf), 0);
	ck_str("peek.read-after-peek", "hello world", r == 11 ? (buf[11] = '\0', buf) : "short");
	ck_err("peek.dontwait-empty", recv(s, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
	ck_err("peek.peek-dontwait-empty", recv(s, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT),
	       EAGAIN);
	n = -1;
	ioctl(s, FIONREAD, &n);
	ck_eq("peek.fionread-empty", 0, n);

	if (!step("waitall", io_send_line(s, "waitall")))
		goto out_close;
	wd_arm();
	r = (int)recv(s, buf, 1000, MSG_WAITALL);
	err = errno;
	wd_disarm();
	errno = err;
	ck_eq("peek.waitall-pieces", 1000, r);
	pattern(want, sizeof(want), 3);
	ck_yes("peek.waitall-data", r == 1000 && memcmp(buf, want, 1000) == 0);

	if (!step("eof", io_send_line(s, "eof")))
		goto out_close;
	wd_arm();
	r = (int)recv(s, buf, 200, MSG_WAITALL);
	err = errno;
	wd_disarm();
	errno = err;
	ck_eq("peek.waitall-cut-by-eof", 100, r);
	ck_eq("peek.recv-at-eof", 0, recv(s, buf, sizeof(buf), MSG_DONTWAIT));
out_close:
	close(s);
}

void sv_peek(int fd, const char *arg FFC_UNUSED)
{
	char data[1000];
	int r = io_write_all(fd, "hello world", 11);

	pattern(data, sizeof(data), 3);
	if (r == 0)
		r = io_expect_line(fd, "waitall");
	for (int i = 0; r == 0 && i < 4; i++) {
		sleep_ms(50);
		r = io_write_all(fd, data + 250 * i, 250);
	}
	if (r == 0)
		r = io_expect_line(fd, "eof");
	if (r == 0)
		r = io_write_all(fd, data, 100);
	if (step("writes", r)) {
		ck_ok("peek.sent", "11 + 4x250 + 100 bytes");
		shutdown(fd, SHUT_WR);
	}
	sv_finish(fd);
}

/* Scatter-gather: C writev -> S readv, S sendmsg -> C recvmsg, S writev ->
 * C readv, C sendmsg -> S recvmsg. Each reader waits for the whole message. */
#define IOV_A 5103 /* 3 + 100 + 5000 */
#define IOV_B 2307 /* 7 + 300 + 2000 */
#define IOV_C 500  /* 200 + 300 */
#define IOV_D 128  /* 64 + 64 */

static void fill_iov(struct iovec *iov, char *buf, const size_t *lens, int n)
{
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = buf;
		iov[i].iov_len = lens[i];
		buf += lens[i];
	}
}

/* Receives want (>= 120) bytes with one readv (recvmsg when msg) into four
 * uneven iovecs totalling want, and checks count, flags and content. */
static void recv_iov(int fd, bool msg, size_t want, uint64_t seed, const char *what)
{
	const size_t lens[] = {10, 10, want - 120, 100};
	char *buf = calloc(1, want), *exp = malloc(want);
	struct iovec iov[4];
	struct sockaddr_in sa;
	struct msghdr mh = {
	    .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = iov, .msg_iovlen = 4};
	char n[96];
	ssize_t r;

	if (!buf || !exp || !step(what, io_wait_inq(fd, (int)want)))
		goto out_free;
	fill_iov(iov, buf, lens, 4);
	r = msg ? recvmsg(fd, &mh, 0) : readv(fd, iov, 4);
	snprintf(n, sizeof(n), "%s.%s", ffc_scen, what);
	ck_eq(n, (long)want, r);
	pattern(exp, want, seed);
	snprintf(n, sizeof(n), "%s.%s-data", ffc_scen, what);
	ck_yes(n, r == (ssize_t)want && memcmp(buf, exp, want) == 0);
	if (msg) {
		snprintf(n, sizeof(n), "%s.%s-flags", ffc_scen, what);
		ck_eq(n, 0, mh.msg_flags);
		snprintf(n, sizeof(n), "%s.%s-namelen", ffc_scen, what);
		ck_eq(n, 0, mh.msg_namelen);
	}
out_free:
	free(buf);
	free(exp);
}

static void send_iov(int fd, bool msg, const size_t *lens, int niov, uint64_t seed,
		     const char *what)
{
	char buf[IOV_A], n[96];
	struct iovec iov[3];
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
	size_t total = 0;
	ssize_t r;

	for (int i = 0; i < niov; i++)
		total += lens[i];
	pattern(buf, total, seed);
	fill_iov(iov, buf, lens, niov);
	r = msg ? sendmsg(fd, &mh, MSG_NOSIGNAL) : writev(fd, iov, niov);
	snprintf(n, sizeof(n), "%s.%s", ffc_scen, what);
	ck_eq(n, (long)total, r);
}

void cl_iovec(void)
{
	static const size_t a[] = {3, 100, 5000}, d[] = {64, 64};
	int s = cl_open("iovec", NULL, false);

	if (s < 0)
		return;
	send_iov(s, false, a, 3, 10, "writev");
	recv_iov(s, true, IOV_B, 11, "recvmsg");
	recv_iov(s, false, IOV_C, 12, "readv");
	send_iov(s, true, d, 2, 13, "sendmsg");
	close(s);
}

void sv_iovec(int fd, const char *arg FFC_UNUSED)
{
	static const size_t b[] = {7, 300, 2000}, c[] = {200, 300};

	recv_iov(fd, false, IOV_A, 10, "readv");
	send_iov(fd, true, b, 3, 11, "sendmsg");
	send_iov(fd, false, c, 2, 12, "writev");
	recv_iov(fd, true, IOV_D, 13, "recvmsg");
	sv_finish(fd);
}

#define SF_LEN	(1048576 + 123)
#define SF_OFF	1000
#define SF_TAIL 500

void cl_sendfile(void)
{
	char *buf = malloc(SF_LEN), *exp = malloc(SF_LEN);
	int r, s = cl_open("sendfile", NULL, false);

	if (s < 0 || !buf || !exp)
		goto out_free;
	pattern(exp, SF_LEN, 5);
	r = io_read_full(s, buf, SF_LEN);
	if (step("recv", r))
		ck_ok("sendfile.recv", "%d bytes hash 0x%016llx", SF_LEN,
		      (unsigned long long)ffc_hash_buf(buf, SF_LEN));
	ck_yes("sendfile.data-matches-file", r == 0 && memcmp(buf, exp, SF_LEN) == 0);
	r = io_read_full(s, buf, SF_TAIL);
	ck_yes("sendfile.file-position-data", r == 0 && memcmp(buf, exp + SF_OFF, SF_TAIL) == 0);
	step("done", io_send_line(s, "done"));
out_free:
	if (s >= 0)
		close(s);
	free(buf);
	free(exp);
}

/* Writes the sendfile source: an unlinked temp file of SF_LEN pattern bytes. */
static int sf_file(void)
{
	const char *dir = getenv("TMPDIR");
	char path[512], *data = malloc(SF_LEN);
	int fd;

	snprintf(path, sizeof(path), "%s/ffconform.XXXXXX", dir && *dir ? dir : "/tmp");
	fd = data ? mkostemp(path, O_CLOEXEC) : -1;
	if (fd >= 0) {
		unlink(path);
		pattern(data, SF_LEN, 5);
		if (write(fd, data, SF_LEN) != SF_LEN) {
			close(fd);
			fd = -1;
		}
	}
	free(data);
	return fd;
}

void sv_sendfile(int fd, const char *arg FFC_UNUSED)
{
	off_t off = 0;
	ssize_t n = 0;
	char line[16];
	int tf = sf_file();

	if (!ck_fd("sendfile.tempfile", tf))
		goto out_finish;
	while (off < SF_LEN && io_wait(fd, POLLOUT, FFC_IO_MS) > 0) {
		n = sendfile(fd, tf, &off, (size_t)(SF_LEN - off));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			break;
	}
	ck_eq("sendfile.sent", SF_LEN, (long)off);
	lseek(tf, SF_OFF, SEEK_SET);
	n = io_wait(fd, POLLOUT, FFC_IO_MS) > 0 ? sendfile(fd, tf, NULL, SF_TAIL) : -1;
	ck_eq("sendfile.from-file-position", SF_TAIL, (long)n);
	ck_eq("sendfile.file-position-advanced", SF_OFF + SF_TAIL, (long)lseek(tf, 0, SEEK_CUR));
	if (step("done", io_read_line(fd, line, sizeof(line))))
		ck_str("sendfile.peer-done", "done", line);
	close(tf);
out_finish:
	sv_finish(fd);
}

/* splice(2) both ways between the connection and a pipe: what the client
 * sends comes back through the server's pipe, byte for byte. */
#define SP_LEN (300000 + 17)
#define SP_PIECE 20000

void cl_splice(void)
{
	char *buf = malloc(SP_LEN), *exp = malloc(SP_LEN);
	int r, s = cl_open("splice", NULL, false);

	if (s < 0 || !buf || !exp)
		goto out_free;
	r = io_expect_line(s, "go");
	if (!step("go", r))
		goto out_free;
	pattern(exp, SP_LEN, 9);
	/* a piece at a time, each back before the next: no buffer sizes
	 * (TCP's, the rings') come into it */
	for (size_t off = 0; r == 0 && off < SP_LEN; off += SP_PIECE) {
		size_t n = SP_LEN - off < SP_PIECE ? SP_LEN - off : SP_PIECE;

		r = io_write_all(s, exp + off, n);
		if (r == 0)
			r = io_read_full(s, buf + off, n);
	}
	if (step("echo", r))
		ck_yes("splice.echo-matches", memcmp(buf, exp, SP_LEN) == 0);
	shutdown(s, SHUT_WR);
	if (io_wait(s, POLLIN, FFC_IO_MS) > 0)
		ck_eq("splice.eof", 0, recv(s, buf, 1, 0));
	else
		ck_fail("splice.eof", "expected 0 got timeout");
out_free:
	if (s >= 0)
		close(s);
	free(buf);
	free(exp);
}

void sv_splice(int fd, const char *arg FFC_UNUSED)
{
	int p[2];
	off_t off = 0;
	long moved = 0;

	if (!ck_zero("splice.pipe", pipe2(p, O_CLOEXEC))) {
		sv_finish(fd);
		return;
	}
	/* the socket's O_NONBLOCK decides (SPLICE_F_NONBLOCK is the pipe's) */
	set_nonblock(fd, true);
	ck_err("splice.nonblock-empty", splice(fd, NULL, p[1], NULL, 100, SPLICE_F_NONBLOCK),
	       EAGAIN);
	set_nonblock(fd, false);
	ck_err("splice.pipe-offset", splice(fd, NULL, p[1], &off, 100, 0), ESPIPE);
	ck_err("splice.socket-offset", splice(fd, &off, p[1], NULL, 100, 0), EINVAL);
	step("go", io_send_line(fd, "go"));
	while (moved < SP_LEN && io_wait(fd, POLLIN, FFC_IO_MS) > 0) {
		ssize_t n = splice(fd, NULL, p[1], NULL, 65536, 0), w = 0;

		if (n <= 0)
			break;
		while (w < n) {
			ssize_t k = splice(p[0], NULL, fd, NULL, (size_t)(n - w), 0);

			if (k <= 0)
				break;
			w += k;
		}
		moved += w;
		if (w < n)
			break;
	}
	ck_eq("splice.moved", SP_LEN, moved);
	close(p[0]);
	close(p[1]);
	sv_finish(fd);
}
