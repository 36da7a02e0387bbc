/* libffshim/sock/fdtab.c: the fd table. Entries by fd number, shared by
 * copies of an fd, no fixed ceiling, the shim's own fds, and what a child
 * keeps after fork(). */
#include "cu.h"
#include "shim_fixture.h"

#include "sock/sock-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* fd numbers the tests use without opening them: the table does not look
 * at the kernel's fds. */
#define FD_A 900
#define FD_B 901

static int refs(struct ffs_sock *s)
{
	return atomic_load(&s->refs);
}

static bool is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_insert_lookup_remove(void)
{
	struct ffs_sock *s = ffs_sock_new(FFS_TCP, AF_INET6), *t;

	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A));
	ffs_fd_set(FD_A, s);
	CU_ASSERT_PTR_EQUAL(ffs_fd_get(FD_A), s);
	CU_ASSERT_EQUAL(s->kind, FFS_TCP);
	CU_ASSERT_EQUAL(s->family, AF_INET6);
	CU_ASSERT_EQUAL(s->kfd, -1);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A + 1));
	CU_ASSERT_PTR_NULL(ffs_fd_get(-1));
	CU_ASSERT(ffs_fd_limit() > FD_A);
	t = ffs_fd_take(FD_A);
	CU_ASSERT_PTR_EQUAL(t, s);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A));
	CU_ASSERT_PTR_NULL(ffs_fd_take(FD_A));
	CU_ASSERT_EQUAL(refs(s), 1); /* the table gave its reference to the taker */
	ffs_sock_unref(t);
}

/* Setting an fd drops the entry it had. */
static void test_replace_drops_old(void)
{
	struct ffs_sock *s = ffs_sock_new(FFS_TCP, AF_INET);

	ffs_sock_ref(s);
	ffs_fd_set(FD_A, s);
	CU_ASSERT_EQUAL(refs(s), 2);
	ffs_fd_set(FD_A, ffs_sock_new(FFS_OTHER, AF_INET));
	CU_ASSERT_EQUAL(refs(s), 1);
	CU_ASSERT_EQUAL(ffs_fd_get(FD_A)->kind, FFS_OTHER);
	ffs_fd_set(FD_A, NULL);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A));
	ffs_sock_unref(s);
}

/* dup and friends share the record, except the shim's own fds and the
 * ones the router said are not its. */
static void test_copy(void)
{
	struct ffs_sock *s = ffs_sock_new(FFS_TCP, AF_INET);
	int owner = FD_A;

	ffs_fd_set(FD_A, s);
	ffs_fd_set(FD_B, ffs_sock_new(FFS_TCP, AF_INET)); /* replaced by the copy */
	ffs_fd_copy(FD_A, FD_B);
	CU_ASSERT_PTR_EQUAL(ffs_fd_get(FD_B), s);
	CU_ASSERT_EQUAL(refs(s), 2);
	ffs_fd_set(FD_A, NULL); /* closing one copy leaves the other */
	CU_ASSERT_PTR_EQUAL(ffs_fd_get(FD_B), s);
	CU_ASSERT_EQUAL(refs(s), 1);
	ffs_fd_set(FD_A, ffs_sock_new(FFS_OTHER, 0));
	ffs_fd_copy(FD_A, FD_B);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_B));
	ffs_fd_internal(FD_A, &owner);
	ffs_fd_copy(FD_A, FD_B);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_B));
	ffs_fd_copy(FD_A + 50, FD_B); /* an unknown fd copies as unknown */
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_B));
	ffs_fd_set(FD_A, NULL);
	CU_ASSERT_EQUAL(owner, -1);
}

/* No fixed ceiling: the table grows to any number the kernel can give,
 * and refuses (without leaking) only past what nr_open allows. */
static void test_growth(void)
{
	static const int fds[] = {1023, 1025, 65535, 65537, 1 << 20, (1 << 24) - 1};
	struct ffs_sock *s[6], *over = ffs_sock_new(FFS_TCP, AF_INET);

	for (int i = 0; i < 6; i++) {
		s[i] = ffs_sock_new(FFS_TCP, AF_INET);
		ffs_fd_set(fds[i], s[i]);
	}
	for (int i = 0; i < 6; i++) {
		CU_ASSERT_PTR_EQUAL(ffs_fd_get(fds[i]), s[i]);
		CU_ASSERT_PTR_NULL(ffs_fd_get(fds[i] - 1));
	}
	CU_ASSERT_EQUAL(ffs_fd_limit(), 1 << 24);
	ffs_sock_ref(over);
	ffs_fd_set(1 << 24, over); /* beyond: dropped, its reference given back */
	CU_ASSERT_PTR_NULL(ffs_fd_get(1 << 24));
	CU_ASSERT_EQUAL(refs(over), 1);
	ffs_sock_unref(over);
	for (int i = 0; i < 6; i++)
		ffs_sock_unref(ffs_fd_take(fds[i]));
}

/* A real socket at a number far above FD_SETSIZE. */
static void test_growth_real_fd(void)
{
	struct rlimit rl;
	int fd, hi;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max < 4096) {
		printf("(skipped: RLIMIT_NOFILE hard limit too low) ");
		return;
	}
	hi = rl.rlim_max > 70001 ? 70000 : (int)rl.rlim_max - 16;
	if (rl.rlim_cur <= (rlim_t)hi) {
		struct rlimit up = {.rlim_cur = (rlim_t)hi + 1, .rlim_max = rl.rlim_max};

		setrlimit(RLIMIT_NOFILE, &up);
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(fd >= 0);
	if (dup2(fd, hi) != hi) { /* valgrind keeps high fds for itself */
		printf("(skipped: no fd %d here) ", hi);
		close(fd);
		setrlimit(RLIMIT_NOFILE, &rl);
		return;
	}
	close(fd);
	ffs_track_socket(hi, AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ffs_fd_get(hi));
	CU_ASSERT_EQUAL(ffs_fd_get(hi)->kind, FFS_TCP);
	sf_close(hi);
	CU_ASSERT_PTR_NULL(ffs_fd_get(hi));
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* close_range/closefrom: the entries of the range go; a listener's hidden
 * kernel fd in the range was closed by the kernel and must not be closed
 * again (its number may be another file by now), one outside still is. */
static void test_drop_range(void)
{
	int in[2], out[2];
	struct ffs_sock *a = ffs_sock_new(FFS_KLISTEN, AF_INET);
	struct ffs_sock *b = ffs_sock_new(FFS_KLISTEN, AF_INET);
	struct ffs_sock *c = ffs_sock_new(FFS_TCP, AF_INET);

	CU_ASSERT_FATAL(pipe(in) == 0 && pipe(out) == 0);
	/* FD_A + 3 stands for a number in the range the kernel reused */
	CU_ASSERT_FATAL(dup2(in[0], FD_A + 3) == FD_A + 3);
	a->kfd = FD_A + 3;
	b->kfd = out[0];
	ffs_fd_set(FD_A, a);
	ffs_fd_set(FD_A + 1, b);
	ffs_fd_set(FD_A + 10, c);
	ffs_fd_drop_range(FD_A, FD_A + 5);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A));
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A + 1));
	CU_ASSERT_PTR_EQUAL(ffs_fd_get(FD_A + 10), c);
	CU_ASSERT_TRUE(is_open(FD_A + 3)); /* inside the range: left alone */
	CU_ASSERT_FALSE(is_open(out[0]));  /* outside: the shim's to close */
	ffs_fd_set(FD_A + 10, NULL);
	close(FD_A + 3);
	close(in[0]);
	close(in[1]);
	close(out[1]);
}

/* socket() and bind() record what connect() and listen() will need. */
static void test_track(void)
{
	struct ffs_sock *s;

	ffs_track_socket(FD_A, AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	s = ffs_fd_get(FD_A);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(s->kind, FFS_TCP);
	CU_ASSERT_EQUAL(s->family, AF_INET);
	CU_ASSERT_FALSE(s->bound);
	ffs_track_bind(FD_A);
	CU_ASSERT_TRUE(s->bound);
	ffs_track_socket(FD_A, AF_INET6, SOCK_STREAM, IPPROTO_TCP);
	CU_ASSERT_EQUAL(ffs_fd_get(FD_A)->family, AF_INET6);
	/* anything else leaves no entry, and clears a stale one */
	ffs_track_socket(FD_A, AF_INET, SOCK_DGRAM, 0);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A));
	ffs_track_socket(FD_A, AF_INET, SOCK_STREAM, IPPROTO_SCTP);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A));
	ffs_track_socket(FD_A, AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A));
	ffs_track_bind(FD_A); /* no entry: nothing to mark */
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A));
	ffs_enabled = false; /* FFNET_DISABLE */
	ffs_track_socket(FD_A, AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_PTR_NULL(ffs_fd_get(FD_A));
	ffs_enabled = true;
}

/* The shim's own fds: out of the app's way, close-on-exec, forgotten when
 * the app closes them behind the shim's back. */
static void test_internal(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), hid, copy;

	CU_ASSERT_FATAL(fd >= 0);
	hid = ffs_hide_fd(fd);
	CU_ASSERT(hid >= 3 && hid != fd);
	CU_ASSERT_FALSE(is_open(fd));
	CU_ASSERT(fcntl(hid, F_GETFD) & FD_CLOEXEC);
	copy = hid;
	ffs_fd_internal(hid, &copy);
	CU_ASSERT_EQUAL(ffs_fd_get(hid)->kind, FFS_INTERNAL);
	ffs_internal_close(&copy);
	CU_ASSERT_EQUAL(copy, -1);
	CU_ASSERT_FALSE(is_open(hid));
	CU_ASSERT_PTR_NULL(ffs_fd_get(hid));
	ffs_internal_close(&copy); /* already closed: nothing */
	/* the app closes one: the owner learns it */
	fd = ffs_hide_fd(socket(AF_UNIX, SOCK_STREAM, 0));
	copy = fd;
	ffs_fd_internal(fd, &copy);
	sf_close(fd);
	CU_ASSERT_EQUAL(copy, -1);
}

/* ---- fork ---- */

#define FORKS 24

static volatile bool hammering;

/* Takes and releases the record pool's lock as fast as it can, as
 * threads making and closing sockets do: a fork() often lands while this
 * thread holds it. (It does not allocate records itself: one in flight in
 * this thread would be lost to the child, which valgrind reports.) */
static void *hammer(void *arg)
{
	while (hammering) {
		ffs_fdtab_fork(0);
		/* hold it most of the time, and sleep rather than spin: under
		 * valgrind's one-thread-at-a-time scheduling a spinning thread
		 * starved the fake router past the shim's reply timeout */
		nanosleep(&(struct timespec){0, 100 * 1000}, NULL);
		ffs_fdtab_fork(1);
	}
	return NULL;
}

/* The hidden router channel of this process (a low number: see ffs_hide_fd). */
static int chan_fd(void)
{
	for (int fd = 0; fd < ffs_fd_limit() && fd < 4096; fd++) {
		struct ffs_sock *s = ffs_fd_get(fd);
		struct sockaddr_un sun;
		socklen_t len = sizeof(sun);

		if (s && s->kind == FFS_INTERNAL &&
		    getpeername(fd, (struct sockaddr *)&sun, &len) == 0 &&
		    sun.sun_family == AF_UNIX && !strcmp(sun.sun_path, sf_router_path()))
			return fd;
	}
	return -1;
}

/* In the child: 0 if it kept the app's entries, dropped the parent's
 * channel, can still use the table's pool and opens its own channel. */
static int child(int app, const struct ffs_sock *rec, int chan)
{
	struct ffs_sock *s;

	if (ffs_fd_get(app) != rec)
		return 1;
	if (is_open(chan) || ffs_fd_get(chan))
		return 2;
	s = ffs_sock_new(FFS_TCP, AF_INET);
	if (!s)
		return 3;
	ffs_fd_set(FD_B + 200, s);
	ffs_fd_set(FD_B + 200, NULL);
	return ffs_chan_up() ? 0 : 4;
}

/* The child's exit status, or -1 if it hung (a lock it inherited held).
 * A child does a few milliseconds of work; the 60 s before it counts as
 * hung are for valgrind on a loaded machine, not a measure of speed. */
static int reap(pid_t pid)
{
	int st;

	for (int i = 0; i < 6000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void test_fork(void)
{
	int app = sf_socket(AF_INET, SOCK_STREAM), chan, hellos, bad = 0;
	struct ffs_sock *rec = ffs_fd_get(app);
	pthread_t thr;

	CU_ASSERT_FATAL(ffs_chan_up() == 1);
	chan = chan_fd();
	CU_ASSERT_FATAL(chan >= 0);
	hellos = sf_hellos();
	hammering = true;
	CU_ASSERT_FATAL(pthread_create(&thr, NULL, hammer, NULL) == 0);
	for (int i = 0; i < FORKS && !bad; i++) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(child(app, rec, chan));
		bad = reap(pid);
		if (bad)
			fprintf(stderr, "fork %d: child status %d\n", i, bad);
		CU_ASSERT_EQUAL(bad, 0);
	}
	hammering = false;
	pthread_join(thr, NULL);
	CU_ASSERT_EQUAL(sf_hellos(), hellos + FORKS);
	/* the parent's own channel and entries are untouched */
	CU_ASSERT_EQUAL(chan_fd(), chan);
	CU_ASSERT_PTR_EQUAL(ffs_fd_get(app), rec);
	sf_close(app);
}

/* The vfork child: puts app on a new number and closes the original, as
 * Python's subprocess does before its exec. */
static pid_t __attribute__((noinline)) vfork_dup_close(int app, int to)
{
	pid_t pid = vfork();

	if (pid == 0) {
		ffs_fd_replacing(app, to);
		if (dup2(app, to) == to)
			ffs_fd_copy(app, to);
		_exit(ffs_close(app) == 0 ? 0 : 1);
	}
	return pid;
}

/* A vfork child shares our memory but not our fds: what it dups and
 * closes must leave our table as it was. */
static void test_vfork(void)
{
	int app = sf_socket(AF_INET, SOCK_STREAM), to = FD_B + 300;
	struct ffs_sock *rec = ffs_fd_get(app);
	pid_t pid;

	CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
	CU_ASSERT_FALSE(is_open(to));
	pid = vfork_dup_close(app, to);
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_EQUAL(reap(pid), 0);
	CU_ASSERT_PTR_EQUAL(ffs_fd_get(app), rec);
	CU_ASSERT_EQUAL(refs(rec), 1);
	CU_ASSERT_PTR_NULL(ffs_fd_get(to));
	CU_ASSERT_TRUE(is_open(app));
	sf_close(app);
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"insert_lookup_remove", test_insert_lookup_remove},
	    {"replace_drops_old", test_replace_drops_old},
	    {"copy", test_copy},
	    {"growth", test_growth},
	    {"growth_real_fd", test_growth_real_fd},
	    {"drop_range", test_drop_range},
	    {"track", test_track},
	    {"internal", test_internal},
	    {"fork", test_fork},
	    {"vfork", test_vfork},
	    {0},
	};
	int r;

	sf_start();
	r = cu_run("shim-fdtab", tests);
	sf_stop();
	return r;
}
