/* ffrouter/core/chan.c: a container registered with its network namespace
 * (ffctl register NAME --ip IP --pid PID|--netns PATH; both send the path
 * of the namespace) has its socket served only to processes inside that
 * namespace, by SO_PEERCRED's pid. A process outside that reaches the
 * socket anyway (a bind mount too many, a leaked fd of the directory) is
 * refused: logged, its channel closed, never counted; any process inside,
 * not only the one whose pid was given, is served.
 * Needs CAP_SYS_ADMIN for unshare(CLONE_NEWNET): exits 77 otherwise. The
 * router runs in a thread (fixture.h); the namespace is a child's, and
 * that child's own child plays the process inside. */
#include "cu.h"
#include "fixture.h"

#include "fdpass.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define REFUSAL "is not in the container's network namespace"

static struct fx_router fx;
/* A child in a network namespace of its own, forked before the router's
 * thread (so that its children inherit nothing of the router: valgrind
 * checks them too). On cmd it gets a socket path: a child of its own, in
 * the same namespace, says Hello there and writes the status to st, then
 * keeps its channel until cmd is closed. */
static pid_t holder = -1;
static int holder_cmd = -1, holder_st = -1;

static int hello_path(const char *path, int *out);

static void wait_eof(int fd)
{
	char c;

	while (read(fd, &c, 1) > 0 || errno == EINTR)
		;
}

static void holder_main(int ready, int cmd, int st)
{
	char path[160];
	int err = unshare(CLONE_NEWNET) < 0 ? -errno : 0, status = 1, fd = -1, r;
	ssize_t n;
	pid_t pid;

	if (write(ready, &err, sizeof(err)) != sizeof(err) || err)
		_exit(1);
	close(ready);
	n = read(cmd, path, sizeof(path) - 1);
	if (n <= 0)
		_exit(0);
	path[n] = 0;
	pid = fork();
	if (pid == 0) {
		r = hello_path(path, &fd);
		if (write(st, &r, sizeof(r)) != sizeof(r))
			_exit(1);
		wait_eof(cmd);
		_exit(0);
	}
	wait_eof(cmd);
	if (pid > 0)
		waitpid(pid, &status, 0);
	_exit(pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* Forks the holder; 0, or -errno of its unshare (the holder is gone then). */
static int holder_start(void)
{
	int ready[2], cmd[2], st[2], err = -EIO;

	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(cmd, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0)
		return -errno;
	holder = fork();
	if (holder == 0) {
		close(ready[0]);
		close(cmd[1]);
		close(st[0]);
		holder_main(ready[1], cmd[0], st[1]);
	}
	close(ready[1]);
	close(cmd[0]);
	close(st[1]);
	holder_cmd = cmd[1];
	holder_st = st[0];
	if (holder < 0 || read(ready[0], &err, sizeof(err)) != sizeof(err))
		err = holder < 0 ? -errno : -EIO;
	close(ready[0]);
	return err;
}

/* Ends the holder; its exit status (0: its child was fine). */
static int holder_end(void)
{
	int status = 0;

	ff_close_fds(&holder_cmd, 1);
	ff_close_fds(&holder_st, 1);
	if (holder > 0 && waitpid(holder, &status, 0) != holder)
		status = -1;
	holder = -1;
	return status;
}

static int reg(const char *name, const char *ip, const char *netns)
{
	return fx_register_netns(&fx, name, ip, netns);
}

/* The container's live shim channels, as ffctl list says (-1: unknown). */
static int channels(const char *name)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__ListContainers m = FF__LIST_CONTAINERS__INIT;
	int fd = fx_admin(&fx, true), rfds[FF_MAX_FDS], n, ch = -1;
	Ff__Reply *rep;

	CU_ASSERT_FATAL(fd >= 0);
	req.id = 3;
	req.body_case = FF__REQUEST__BODY_LIST;
	req.list = &m;
	rep = fx_call(fd, &req, NULL, 0, rfds, &n);
	for (size_t i = 0; rep && rep->list && i < rep->list->n_containers; i++)
		if (!strcmp(rep->list->containers[i]->name, name))
			ch = (int)rep->list->containers[i]->channels;
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	close(fd);
	return ch;
}

/* Connects to path and says Hello: the reply's status, or -1 if the
 * router closed the channel instead; *out: the channel. */
static int hello_path(const char *path, int *out)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	int fd = fx_connect(path), rfds[FF_MAX_FDS], n, st = -1;
	Ff__Reply *rep;

	if (fd < 0)
		return -1;
	h.version = FF_PROTO_VERSION;
	h.role = (char *)"shim";
	req.id = 1;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	rep = fx_call(fd, &req, NULL, 0, rfds, &n);
	if (rep) {
		st = (int)rep->status;
		ff_close_fds(rfds, n);
		ff__reply__free_unpacked(rep, NULL);
	}
	*out = fd;
	return st;
}

static void sock_path(const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/c/%s/%s", fx.dir, name, FF_SOCK_NAME);
}

static int hello(const char *name, int *out)
{
	char path[160];

	sock_path(name, path, sizeof(path));
	return hello_path(path, out);
}

/* Runs fn with the router's log (stderr) in a file; the log's text is
 * appended to out[len] and echoed. */
static void logged(void (*fn)(void), char *out, size_t len)
{
	char path[] = "/tmp/ffnetns-log.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	ssize_t n;

	CU_ASSERT_FATAL(fd >= 0 && saved >= 0);
	unlink(path);
	CU_ASSERT_FATAL(dup2(fd, STDERR_FILENO) >= 0);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = 0;
	close(fd);
	fputs(out, stderr);
}

static int outside_fd = -1, outside_st;

/* This process, outside the namespace, on c's socket. */
static void hello_outside(void)
{
	char c;

	outside_st = hello("c", &outside_fd);
	/* the router closed it: EOF, not just silence */
	CU_ASSERT_EQUAL(recv(outside_fd, &c, 1, MSG_DONTWAIT), 0);
}

static void test_outside_refused_inside_served(void)
{
	char ns[64], log[4096], path[160];
	int st = -3, fd;

	CU_ASSERT_EQUAL_FATAL(fx_router_start(&fx), 0);
	snprintf(ns, sizeof(ns), "/proc/%d/ns/net", (int)holder); /* what --pid PID sends */
	CU_ASSERT_EQUAL_FATAL(reg("c", "10.77.0.1", ns), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(reg("free", "10.77.0.2", ""), FF__STATUS__ST_OK);
	/* outside: refused, logged, closed, not counted */
	logged(hello_outside, log, sizeof(log));
	CU_ASSERT_EQUAL(outside_st, -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, REFUSAL));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "c: pid"));
	CU_ASSERT_EQUAL(channels("c"), 0);
	close(outside_fd);
	/* inside, from another process than the one named: served, counted */
	sock_path("c", path, sizeof(path));
	CU_ASSERT_EQUAL_FATAL(write(holder_cmd, path, strlen(path)), (ssize_t)strlen(path));
	CU_ASSERT_EQUAL(read(holder_st, &st, sizeof(st)), (ssize_t)sizeof(st));
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(channels("c"), 1);
	/* a container registered without one serves anyone here */
	CU_ASSERT_EQUAL(hello("free", &fd), FF__STATUS__ST_OK);
	close(fd);
	/* and a namespace that is not a file: refused at registration */
	CU_ASSERT_EQUAL(reg("bad", "10.77.0.3", "/proc/0/ns/net"), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(holder_end(), 0);
	fx_router_stop(&fx);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"outside_refused_inside_served", test_outside_refused_inside_served},
		{0},
	};
	int err, rc;

	signal(SIGPIPE, SIG_IGN);
	err = holder_start();
	if (err) {
		printf("SKIP: no network namespace of our own (unshare(CLONE_NEWNET): %s); "
		       "needs CAP_SYS_ADMIN\n",
		       strerror(-err));
		return 77;
	}
	rc = cu_run("netns", tests);
	holder_end(); /* if the test did not get that far */
	return rc;
}
