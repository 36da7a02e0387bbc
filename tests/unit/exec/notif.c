/* The filtered child and its recording supervisor (notif.h). The child
 * sends the listener over a socketpair right after installing the filter;
 * the parent polls the listener and the child's output pipe until the
 * output ends, then reaps the child. */
#include "notif.h"

#include "ffexec.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_MS 10000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void nt_say(int out, const char *name, long ret)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "%s %ld %d\n", name, ret, ret < 0 ? errno : 0);

	if (write(out, line, (size_t)n) != n)
		_exit(99);
}

static void child(int sp, int out, int (*body)(int))
{
	int lfd = ffe_filter_install();
	char e;

	if (lfd < 0) {
		e = (char)-lfd;
		_exit(ff_send_fds(sp, &e, 1, NULL, 0) ? 98 : 97);
	}
	if (ff_send_fds(sp, "L", 1, &lfd, 1))
		_exit(98);
	close(lfd);
	close(sp);
	_exit(body(out));
}

/* The listener from the child, or -errno. */
static int take_listener(int sp)
{
	char c;
	int fds[2], nfds = 0;
	ssize_t n = ff_recv_fds(sp, &c, 1, fds, 2, &nfds, 0);

	if (n == 1 && nfds == 1)
		return fds[0];
	ff_close_fds(fds, nfds);
	return n == 1 ? -(int)(unsigned char)c : -EIO;
}

static void record(int lfd, struct nt_run *r)
{
	struct seccomp_notif n;
	struct seccomp_notif_resp resp;

	memset(&n, 0, sizeof(n));
	if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0)
		return;
	if (r->ncalls < NT_MAX_CALLS) {
		struct nt_call *c = &r->calls[r->ncalls++];

		c->nr = n.data.nr;
		c->pid = n.pid;
		memcpy(c->args, n.data.args, sizeof(c->args));
	}
	memset(&resp, 0, sizeof(resp));
	resp.id = n.id;
	resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

/* Serves lfd until out ends; 0 or -ETIMEDOUT. */
static int serve(int lfd, int out, struct nt_run *r)
{
	int64_t end = now_ms() + RUN_MS;
	size_t len = 0;

	for (;;) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = out, .events = POLLIN}};
		int64_t left = end - now_ms();
		ssize_t n;

		if (left <= 0 || poll(p, 2, (int)left) == 0)
			return -ETIMEDOUT;
		if (p[0].revents & POLLIN)
			record(lfd, r);
		if (!(p[1].revents & (POLLIN | POLLHUP)))
			continue;
		n = read(out, r->out + len, sizeof(r->out) - 1 - len);
		if (n <= 0)
			return 0;
		len += (size_t)n;
		r->out[len] = '\0';
	}
}

int nt_run(int (*body)(int out), struct nt_run *r)
{
	int sp[2], pp[2], lfd, err;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	if (pipe2(pp, O_CLOEXEC) < 0) {
		err = -errno;
		goto out_close_sp;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(sp[0]);
		close(pp[0]);
		child(sp[1], pp[1], body);
	}
	r->pid = pid;
	close(pp[1]);
	close(sp[1]);
	sp[1] = -1;
	err = pid < 0 ? -errno : 0;
	if (err)
		goto out_close_pipe;
	lfd = take_listener(sp[0]);
	err = lfd < 0 ? lfd : serve(lfd, pp[0], r);
	if (err == -ETIMEDOUT)
		kill(pid, SIGKILL);
	waitpid(pid, &r->status, 0);
	if (lfd >= 0)
		close(lfd);
out_close_pipe:
	close(pp[0]);
out_close_sp:
	close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	return err;
}

int nt_find(const struct nt_run *r, int nr, int *from)
{
	for (int i = *from; i < r->ncalls; i++)
		if (r->calls[i].nr == nr) {
			*from = i + 1;
			return i;
		}
	return -1;
}

static int nothing(int out)
{
	return 0;
}

int nt_available(void)
{
	struct nt_run r;
	int err = nt_run(nothing, &r);

	if (!err && !(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0))
		err = -EIO;
	return err;
}
