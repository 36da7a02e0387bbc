/* sc-proc.c - descriptors across dup, fork and exec.
 *
 * Children never print while their parent may: a forked child reports through
 * its exit status, and the exec'd image (hidden subcommand "exec-child")
 * prints its own lines while the parent is blocked in waitpid, so the order
 * of the server transcript stays fixed.
 *
 * Descriptors that must be gone after exec are moved to high numbers first,
 * so that an fd opened while the new image starts (by libc or a preloaded
 * library) cannot take one of their numbers and hide the close.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ffconform.h"

#define EXEC_FD_BASE 400

int wait_child(pid_t pid)
{
	int status;
	uint64_t end = now_ms() + FFC_IO_MS + 5000;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -ETIMEDOUT;
		}
		sleep_ms(5);
	}
}

void cl_dup(void)
{
	char buf[8] = {0};
	int r, s = cl_open("dup", NULL, false);

	if (s < 0)
		return;
	r = io_read_full(s, buf, 6);
	if (step("writes", r))
		ck_str("dup.writes-via-all-dups", "123456", buf);
	r = io_send_line(s, "x");
	if (r == 0)
		r = io_read_full(s, buf, 1);
	buf[1] = '\0';
	if (step("last", r))
		ck_str("dup.write-via-last-dup", "7", buf);
	if (io_wait(s, POLLIN, FFC_IO_MS) > 0)
		ck_eq("dup.eof-after-last-close", 0, recv(s, buf, sizeof(buf), 0));
	else
		ck_fail("dup.eof-after-last-close", "expected 0 got timeout");
	close(s);
}

static bool same_peer(int a, int b)
{
	struct sockaddr_in x, y;
	socklen_t lx = sizeof(x), ly = sizeof(y);

	return getpeername(a, (struct sockaddr *)&x, &lx) == 0 &&
	       getpeername(b, (struct sockaddr *)&y, &ly) == 0 && lx == ly &&
	       memcmp(&x, &y, lx) == 0;
}

void sv_dup(int fd, const char *arg FFC_UNUSED)
{
	char line[8];
	int d[5], r, n2 = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int n3 = open("/dev/null", O_RDONLY | O_CLOEXEC);

	d[0] = dup(fd);
	ck_fd("dup.dup", d[0]);
	ck_eq("dup.dup-fd-flags", 0, fd_flags(d[0], F_GETFD));
	d[1] = dup2(fd, n2);
	ck_yes("dup.dup2-returns-target", d[1] == n2);
	ck_eq("dup.dup2-fd-flags", 0, fd_flags(d[1], F_GETFD));
	ck_yes("dup.dup2-same-fd", dup2(fd, fd) == fd);
	d[2] = dup3(fd, n3, O_CLOEXEC);
	ck_yes("dup.dup3-returns-target", d[2] == n3);
	ck_eq("dup.dup3-fd-flags", FD_CLOEXEC, fd_flags(d[2], F_GETFD));
	ck_err_fd("dup.dup3-same-fd", dup3(fd, fd, O_CLOEXEC), EINVAL);
	d[3] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	ck_fd("dup.dupfd-cloexec", d[3]);
	ck_eq("dup.dupfd-cloexec-fd-flags", FD_CLOEXEC, fd_flags(d[3], F_GETFD));
	d[4] = fcntl(fd, F_DUPFD, 0);
	ck_eq("dup.dupfd-fd-flags", 0, fd_flags(d[4], F_GETFD));
	ck_yes("dup.same-peer", same_peer(fd, d[0]) && same_peer(fd, d[1]) && same_peer(fd, d[2]) &&
				    same_peer(fd, d[3]) && same_peer(fd, d[4]));
	set_nonblock(d[0], true);
	ck_yes("dup.status-flags-shared", fd_flags(fd, F_GETFL) & O_NONBLOCK);
	set_nonblock(d[0], false);
	r = 0;
	for (int i = 0; r == 0 && i < 5; i++)
		r = io_write_all(d[i], &"12345"[i], 1);
	ck_zero("dup.close-original", close(fd));
	if (r == 0)
		r = io_write_all(d[3], "6", 1);
	if (r == 0)
		r = io_read_line(d[0], line, sizeof(line));
	if (step("io", r))
		ck_str("dup.read-via-dup", "x", line);
	close(d[0]);
	close(d[1]);
	close(d[2]);
	close(d[4]);
	step("last", io_write_all(d[3], "7", 1));
	close(d[3]); /* the last reference: the client sees EOF now */
}

/* Echoes until EOF; returns bytes echoed or a negative errno. */
static long echo_loop(int fd)
{
	char buf[4096];
	long total = 0;

	for (;;) {
		int r = io_wait(fd, POLLIN, FFC_IO_MS);

		if (r <= 0)
			return r ? r : -ETIMEDOUT;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n == 0)
			return total;
		if (n < 0)
			return -errno;
		if ((r = io_write_all(fd, buf, (size_t)n)) < 0)
			return r;
		total += n;
	}
}

void sv_echo(int fd, const char *arg FFC_UNUSED)
{
	long n = echo_loop(fd);

	if (step("echo", (int)(n < 0 ? n : 0)))
		ck_ok("echo.done", "%ld bytes", n);
	close(fd);
}

/* Three lines, echoed back, then EOF after our shutdown. */
static int echo_exchange(int s)
{
	static const char *msgs[] = {"fork-msg-1", "fork-msg-22", "fork-msg-333"};
	char line[64];
	int r = 0;

	for (int i = 0; r == 0 && i < 3; i++) {
		r = io_send_line(s, "%s", msgs[i]);
		if (r == 0)
			r = io_read_line(s, line, sizeof(line));
		if (r >= 0)
			r = strcmp(line, msgs[i]) ? -EPROTO : 0;
	}
	if (r == 0)
		r = shutdown(s, SHUT_WR) < 0 ? -errno : 0;
	if (r == 0)
		r = io_wait(s, POLLIN, FFC_IO_MS) > 0 && recv(s, line, 1, 0) == 0 ? 0 : -EPROTO;
	return r;
}

void cl_fork(void)
{
	pid_t pid;
	int s = cl_open("fork", NULL, false);

	if (s >= 0) {
		int r = echo_exchange(s);

		ck_errval("fork.echo-by-child", 0, -r);
		close(s);
	}
	/* A forked client child makes its own connection (the "echo" scenario). */
	pid = fork();
	if (pid == 0) {
		int c = cl_open("echo", NULL, true), r = c < 0 ? 2 : echo_exchange(c) ? 1 : 0;

		if (c >= 0)
			close(c);
		_exit(r);
	}
	ck_eq("fork.client-child-exit", 0, pid > 0 ? wait_child(pid) : -1);
}

void sv_fork(int fd, const char *arg FFC_UNUSED)
{
	pid_t pid = fork();

	if (pid == 0) {
		int r = echo_loop(fd) < 0 ? 1 : 0;

		close(ffc_listener);
		close(fd);
		_exit(r);
	}
	ck_yes("fork.fork", pid > 0);
	ck_zero("fork.parent-close", close(fd));
	ck_eq("fork.child-exit", 0, pid > 0 ? wait_child(pid) : -1);
}

void cl_exec(void)
{
	char line[64], buf[8];
	int a, r, s = cl_open("exec", NULL, false);

	if (s < 0)
		return;
	if (cl_ready(s) < 0)
		goto out_close;
	a = tcp_dial(ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX);
	if (!step("dial", a))
		goto out_close;
	r = io_send_line(s, "exec-ping");
	if (r == 0)
		r = io_read_line(s, line, sizeof(line));
	if (step("ping", r))
		ck_str("exec.served-by-new-image", "exec-pong", line);
	if (io_wait(a, POLLIN, FFC_IO_MS) > 0)
		ck_eq("exec.cloexec-conn-eof", 0, recv(a, buf, sizeof(buf), 0));
	else
		ck_fail("exec.cloexec-conn-eof", "expected 0 got timeout");
	close(a);
out_close:
	close(s);
}

/* Moves fd to number >= base with the given FD_CLOEXEC state; consumes fd. */
static int move_high(int fd, int base, bool cloexec)
{
	int r = fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, base);

	close(fd);
	return r;
}

/* Exec's ourselves (/proc/self/exe) with fds: s (FD_CLOEXEC cleared), a dup of s, and three
 * that must close on exec: an accept4(SOCK_CLOEXEC) connection, an
 * F_DUPFD_CLOEXEC dup, and a dup marked with F_SETFD. */
void sv_exec(int fd, const char *arg FFC_UNUSED)
{
	char num[5][16], exe[4096];
	int fds[5] = {-1, -1, -1, -1, -1}, a, l = sv_aux(fd, 0, 8);
	ssize_t n;
	pid_t pid;

	if (l < 0)
		goto out_close;
	raise_nofile(EXEC_FD_BASE + 64);
	a = sv_accept(l, SOCK_CLOEXEC);
	close(l);
	if (!step("accept", a))
		goto out_close;
	ck_zero("exec.clear-cloexec", fcntl(fd, F_SETFD, 0));
	fds[0] = move_high(fd, EXEC_FD_BASE, false);
	fd = -1;
	fds[1] = fcntl(fds[0], F_DUPFD, EXEC_FD_BASE + 10);
	fds[2] = move_high(a, EXEC_FD_BASE + 20, true);
	fds[3] = fcntl(fds[0], F_DUPFD_CLOEXEC, EXEC_FD_BASE + 30);
	fds[4] = fcntl(fds[0], F_DUPFD, EXEC_FD_BASE + 40);
	ck_zero("exec.setfd-cloexec", fcntl(fds[4], F_SETFD, FD_CLOEXEC));
	for (int i = 0; i < 5; i++)
		snprintf(num[i], sizeof(num[i]), "%d", fds[i]);
	/* The path behind /proc/self/exe: under valgrind exec'ing the link itself
	 * would start valgrind's launcher, while readlink reports our binary. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	pid = fork();
	if (pid == 0) {
		execl(n > 0 ? exe : "/proc/self/exe", "ffconform", "exec-child", ffc_opt.ip, num[0],
		      num[1], num[2], num[3], num[4], (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 5; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	ck_eq("exec.child-exit", 0, pid > 0 ? wait_child(pid) : -1);
out_close:
	if (fd >= 0)
		close(fd);
}

/* The exec'd image: argv = SERVER_IP S DUP ACCEPT4_CLOEXEC DUPFD_CLOEXEC SETFD.
 * Prints server lines; exits 0 only if every check passed. */
int exec_child_main(int argc, char **argv)
{
	int fd[5], dom = -1;
	socklen_t len = sizeof(dom);
	char line[64];
	long n;

	ffc_role = 'S';
	ffc_scen = "exec";
	if (argc != 6)
		return 2;
	for (int i = 0; i < 5; i++)
		fd[i] = atoi(argv[i + 1]);
	ck_eq("exec.inherited-fd-flags", 0, fd_flags(fd[0], F_GETFD));
	ck_eq("exec.inherited-dup-fd-flags", 0, fd_flags(fd[1], F_GETFD));
	ck_err("exec.accept4-cloexec-closed", fcntl(fd[2], F_GETFD), EBADF);
	ck_err("exec.dupfd-cloexec-closed", fcntl(fd[3], F_GETFD), EBADF);
	ck_err("exec.setfd-cloexec-closed", fcntl(fd[4], F_GETFD), EBADF);
	getsockopt(fd[0], SOL_SOCKET, SO_DOMAIN, &dom, &len);
	ck_yes("exec.so_domain-af_inet", dom == AF_INET);
	{
		struct sockaddr_in sa;
		char ip[INET_ADDRSTRLEN];

		len = sizeof(sa);
		if (ck_zero("exec.sockname", getsockname(fd[0], (struct sockaddr *)&sa, &len))) {
			addr_ip(&sa, ip, sizeof(ip));
			if (strcmp(argv[0], "0.0.0.0") == 0)
				ck_ok("exec.sockname-ip", "%s", ip);
			else
				ck_str("exec.sockname-ip", argv[0], ip);
		}
	}
	close(fd[1]);
	n = io_read_line(fd[0], line, sizeof(line));
	if (step("ping", (int)n) && ck_str("exec.ping", "exec-ping", line))
		step("pong", io_send_line(fd[0], "exec-pong"));
	n = echo_loop(fd[0]);
	ck_eq("exec.eof", 0, n);
	close(fd[0]);
	return ck_failures() ? 1 : 0;
}
