/* A hostile container against the router and its neighbours (issue 10),
 * through the router's sockets (router in a thread, fixture.h): files it
 * shares with the router, the pages the router hands it, and the router's
 * file descriptor budget. After each attack another container must still
 * be served. */
#include "cu.h"
#include "fixture.h"

#include "fdpass.h"
#include "map.h"
#include "msg.h"
#include "rdma/internal.h"

#include <ff/shm.h>
#include <ff/wire.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static struct fx_router fx;

static void set_blocking(int fd, bool blocking)
{
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* c2 still gets answers: a fresh shim says Hello, the router reports its
 * status, a connect to c1's listener on port is answered. */
static void assert_neighbour_served(uint16_t port)
{
	Ff__Reply *rep;
	int c2, cfd;

	c2 = fx_shim(&fx, "c2");
	CU_ASSERT(c2 >= 0);
	fx_assert_serving(&fx, 2);
	if (c2 < 0)
		return;
	rep = fx_overlay_connect(c2, "10.99.0.1", port, &cfd);
	CU_ASSERT_PTR_NOT_NULL(rep);
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	if (cfd >= 0)
		close(cfd);
	close(c2);
}

/* A kernel listener of c1's, registered: its fd (the app's copy); *qfd
 * the accept queue, *port its port. */
static int kernel_listener(int c1, uint16_t *port, int *qfd)
{
	int kfd = fx_tcp_listener(port);
	Ff__Reply *rep = fx_listen(c1, kfd, "0.0.0.0", *port, qfd);

	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	return kfd;
}

/* A peer without ffnet connects to port: its fd; *sfd the connection the
 * router forwarded on the queue (accepted on the shared listener), or -1. */
static int forwarded(uint16_t port, int qfd, int *sfd)
{
	int tfd = tcp_connect(port);
	struct pollfd p = {.fd = qfd, .events = POLLIN};

	*sfd = -1;
	CU_ASSERT_FATAL(tfd >= 0);
	CU_ASSERT_EQUAL(poll(&p, 1, 2000), 1);
	if (p.revents & POLLIN) {
		Ff__Accepted *a = fx_take_accepted(qfd, sfd);

		CU_ASSERT_PTR_NOT_NULL(a);
		if (a)
			ff__accepted__free_unpacked(a, NULL);
	}
	return tfd;
}

/* The app's kernel listener is the same open file in the app and in the
 * router: the app clears O_NONBLOCK on it, then a peer without ffnet
 * connects. The router forwards the connection and must then find the
 * listener empty without blocking in accept. */
static void test_kernel_listener_blocking(void)
{
	int c1, kfd, qfd, tfd, sfd, tfd2;
	uint16_t port;

	fx_up(&fx);
	c1 = fx_shim(&fx, "c1");
	kfd = kernel_listener(c1, &port, &qfd);
	set_blocking(kfd, true);
	tfd = forwarded(port, qfd, &sfd);
	assert_neighbour_served(port);
	/* let a router stuck in accept go (the test must end either way) */
	set_blocking(kfd, false);
	tfd2 = tcp_connect(port);
	if (sfd >= 0)
		close(sfd);
	close(tfd2);
	close(tfd);
	close(kfd);
	close(qfd);
	close(c1);
	fx_router_stop(&fx);
}

/* The shim keeps a copy of the router's end of the accept queue (it hands
 * it back after a restart): the app clears O_NONBLOCK on it, shrinks its
 * send buffer and never accepts, while c2 connects until the queue is full. Every connect must be
 * answered (queued or ST_BUSY), none may block the router. */
static void test_accept_queue_blocking(void)
{
	int c1, c2, kfd, qfd, qr, busy = 0, answered = 0;
	Ff__Reply *rep;
	uint16_t port;

	fx_up(&fx);
	c1 = fx_shim(&fx, "c1");
	c2 = fx_shim(&fx, "c2");
	kfd = fx_tcp_listener(&port);
	rep = fx_listen_req(c1, kfd, -1, "0.0.0.0", port, &qfd, &qr);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT_FATAL(qfd >= 0 && qr >= 0);
	set_blocking(qr, true);
	/* and shrinks its send buffer so that it fills after a few */
	CU_ASSERT_EQUAL(setsockopt(qr, SOL_SOCKET, SO_SNDBUF, &(int){1}, sizeof(int)), 0);
	for (int i = 0; i < 64 && !busy; i++) {
		int cfd = -1;

		rep = fx_overlay_connect(c2, "10.99.0.1", port, &cfd);
		if (!rep)
			break;
		answered++;
		busy = rep->status == FF__STATUS__ST_BUSY;
		CU_ASSERT(rep->status == FF__STATUS__ST_OK || busy);
		ff__reply__free_unpacked(rep, NULL);
		if (cfd >= 0)
			close(cfd);
	}
	CU_ASSERT(busy);
	assert_neighbour_served(port);
	/* let a router stuck in sendmsg go */
	close(qfd);
	close(qr);
	close(kfd);
	close(c1);
	close(c2);
	fx_router_stop(&fx);
	CU_ASSERT(answered > 0);
}

/* The ring data path's doorbell is an eventfd the shim holds too (same
 * open file). With O_NONBLOCK cleared and the counter at 0 (the shim read
 * it, or the loop ran the callback again on its own), the doorbell
 * callback must return at once. It runs in a child the test kills if it
 * hangs. */
static void test_doorbell_blocking(void)
{
	struct ffr_rdma rd = {0};
	struct ffr_vctx x = {.rd = &rd, .direct = true};
	int efd = eventfd(0, EFD_CLOEXEC), status = -1;
	pid_t pid;

	CU_ASSERT_FATAL(efd >= 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		alarm(2);
		ffr_ring_doorbell_cb(efd, EV_READ, &x);
		_exit(0);
	}
	for (int i = 0; i < 300 && waitpid(pid, &status, WNOHANG) != pid; i++)
		usleep(10000);
	if (status == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(efd);
}

/* Hello on a fresh shim channel of name: the map fd and the stats fd. */
static int hello_pages(const char *name, int *ch, int *map_fd, int *stats_fd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	int rfds[FF_MAX_FDS], nr = 0;
	char path[160];
	Ff__Reply *rep;

	snprintf(path, sizeof(path), "%s/c/%s/%s", fx.dir, name, FF_SOCK_NAME);
	*ch = fx_connect(path);
	h.version = FF_PROTO_VERSION;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	rep = fx_call(*ch, &req, NULL, 0, rfds, &nr);
	if (!rep || rep->status || nr != 2) {
		ff_close_fds(rfds, nr);
		if (rep)
			ff__reply__free_unpacked(rep, NULL);
		return -1;
	}
	ff__reply__free_unpacked(rep, NULL);
	*map_fd = rfds[0];
	*stats_fd = rfds[1];
	return 0;
}

/* Issue 10, hole 2: the map fd a shim gets at Hello is read-only, but
 * /proc/self/fd/N reopens the file itself. Reopening it for writing must
 * fail, and every other way to write through what a shim holds too (the
 * router runs as root here, as it does in production). */
static void test_map_reopen(void)
{
	int ch, mfd, sfd, rw;
	char path[64];
	void *p;

	fx_up(&fx);
	CU_ASSERT_EQUAL_FATAL(hello_pages("c1", &ch, &mfd, &sfd), 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	rw = open(path, O_RDWR | O_CLOEXEC);
	CU_ASSERT_EQUAL(rw, -1);
	CU_ASSERT(errno == EPERM || errno == EACCES);
	if (rw >= 0) {
		CU_ASSERT_EQUAL(write(rw, "x", 1), -1);
		p = mmap(NULL, FF_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
		CU_ASSERT_EQUAL(p, MAP_FAILED);
		if (p != MAP_FAILED)
			munmap(p, FF_MAP_SIZE);
		close(rw);
	}
	/* O_WRONLY and O_RDWR|O_TRUNC too */
	CU_ASSERT_EQUAL(open(path, O_WRONLY | O_CLOEXEC), -1);
	CU_ASSERT_EQUAL(open(path, O_RDWR | O_TRUNC | O_CLOEXEC), -1);
	/* a read-only mapping cannot be made writable */
	p = mmap(NULL, FF_MAP_SIZE, PROT_READ, MAP_SHARED, mfd, 0);
	CU_ASSERT_NOT_EQUAL_FATAL(p, MAP_FAILED);
	CU_ASSERT_EQUAL(mprotect(p, FF_MAP_SIZE, PROT_READ | PROT_WRITE), -1);
	munmap(p, FF_MAP_SIZE);
	/* the router still publishes: a new container is in every shim's map */
	CU_ASSERT_EQUAL(fx_register(&fx, "c3", "10.99.0.3"), FF__STATUS__ST_OK);
	p = mmap(NULL, FF_MAP_SIZE, PROT_READ, MAP_SHARED, mfd, 0);
	CU_ASSERT_NOT_EQUAL_FATAL(p, MAP_FAILED);
	{
		struct ff_ip ip;
		uint8_t flags;

		ff_ip_parse("10.99.0.3", &ip);
		CU_ASSERT_EQUAL(ff_map_find(p, &ip, &flags), 1);
	}
	munmap(p, FF_MAP_SIZE);
	close(mfd);
	close(sfd);
	close(ch);
	fx_router_stop(&fx);
}

/* The stats page is the container's to write (its shims count bytes in
 * it): one that scribbles over all of it, header included, changes nothing
 * but the numbers ffctl shows for its own connections. */
static void test_stats_scribbled(void)
{
	int ch, mfd, sfd, c2, kfd, qfd, cfd, sfd2, c, l, k;
	Ff__Accepted *a;
	Ff__Reply *rep;
	uint16_t port;
	void *p;

	fx_up(&fx);
	CU_ASSERT_EQUAL_FATAL(hello_pages("c1", &ch, &mfd, &sfd), 0);
	p = mmap(NULL, FF_STAT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	CU_ASSERT_NOT_EQUAL_FATAL(p, MAP_FAILED);
	memset(p, 0xff, FF_STAT_SIZE);
	kfd = fx_tcp_listener(&port);
	rep = fx_listen(ch, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	c2 = fx_shim(&fx, "c2");
	for (int i = 0; i < 3; i++) {
		rep = fx_overlay_connect(c2, "10.99.0.1", port, &cfd);
		CU_ASSERT_EQUAL_FATAL(rep->status, 0);
		ff__reply__free_unpacked(rep, NULL);
		a = fx_take_accepted(qfd, &sfd2);
		CU_ASSERT_PTR_NOT_NULL_FATAL(a);
		CU_ASSERT(a->slot < FF_STAT_SLOTS);
		ff__accepted__free_unpacked(a, NULL);
		memset(p, 0xff, FF_STAT_SIZE);
		close(cfd);
		close(sfd2);
	}
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(c, 2);
	munmap(p, FF_STAT_SIZE);
	close(qfd);
	close(kfd);
	close(c2);
	close(mfd);
	close(sfd);
	close(ch);
	fx_router_stop(&fx);
}

static int fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n - 1; /* the directory's own */
}

/* The router's health in its status (first piece), or NULL. */
static Ff__Reply *status_first(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus m = FF__GET_STATUS__INIT;
	int adm = fx_admin(&fx, true), rfds[FF_MAX_FDS], nr;
	Ff__Reply *rep, *first = NULL;

	if (adm < 0)
		return NULL;
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &m;
	if (ff_msg_send(adm, &req.base, NULL, 0) == 0) {
		while ((rep = fx_recv(adm, rfds, &nr))) {
			bool more = rep->more;

			if (!first)
				first = rep;
			else
				ff__reply__free_unpacked(rep, NULL);
			if (!more)
				break;
		}
	}
	close(adm);
	return first;
}

/* Issue 10, hole 5: the router's file descriptors are one budget for every
 * container of the host. With a low RLIMIT_NOFILE (this process's: the
 * router runs in a thread of it), c2 opens connections to c1 and keeps
 * them: before the router runs out, connects, listens and new shims are
 * refused with ST_QUOTA and a clear reason; ffctl status (admin, within
 * the reserve) still answers and shows it; once the connections are
 * closed, connects work again. */
static void test_fd_budget(void)
{
	struct rlimit old, low;
	int c1, c2, kfd, qfd, kfd2, qfd2, held[512], nheld = 0, st = -1, cfd, sfd;
	char why[256] = "";
	Ff__Accepted *a;
	Ff__Reply *rep;
	uint16_t port, port2;

	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)fds_open() + 120;
	if (low.rlim_cur > old.rlim_max)
		low.rlim_cur = old.rlim_max;
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
	fx_up(&fx);
	c1 = fx_shim(&fx, "c1");
	c2 = fx_shim(&fx, "c2");
	kfd = fx_tcp_listener(&port);
	rep = fx_listen(c1, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	while (nheld + 2 <= (int)(sizeof(held) / sizeof(held[0]))) {
		rep = fx_overlay_connect(c2, "10.99.0.1", port, &cfd);
		if (!rep)
			break;
		st = (int)rep->status;
		snprintf(why, sizeof(why), "%s", rep->error);
		ff__reply__free_unpacked(rep, NULL);
		if (st || cfd < 0)
			break;
		held[nheld++] = cfd;
		a = fx_take_accepted(qfd, &sfd);
		if (a)
			ff__accepted__free_unpacked(a, NULL);
		if (sfd < 0)
			break;
		held[nheld++] = sfd;
	}
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_QUOTA);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "file descriptors"));
	CU_ASSERT(nheld >= 20);
	/* new work is refused with the same reason, the admin socket answers */
	kfd2 = fx_tcp_listener(&port2);
	rep = kfd2 >= 0 ? fx_listen(c1, kfd2, "0.0.0.0", port2, &qfd2) : NULL;
	CU_ASSERT_PTR_NOT_NULL(rep);
	if (rep) {
		CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_QUOTA);
		ff__reply__free_unpacked(rep, NULL);
	}
	if (kfd2 >= 0)
		close(kfd2);
	CU_ASSERT_EQUAL(fx_shim(&fx, "c1"), -EPROTO);
	rep = status_first();
	CU_ASSERT_PTR_NOT_NULL(rep);
	if (rep) {
		Ff__RouterHealth *h = rep->status_reply ? rep->status_reply->health : NULL;

		CU_ASSERT_PTR_NOT_NULL(h);
		CU_ASSERT(h && h->fd_refusals >= 3);
		CU_ASSERT(h && h->fd_limit == low.rlim_cur);
		CU_ASSERT(h && h->fds_open > 0 && h->fds_open <= h->fd_limit);
		ff__reply__free_unpacked(rep, NULL);
	}
	/* once the connections are gone, connects work again */
	ff_close_fds(held, nheld);
	rep = fx_overlay_connect(c2, "10.99.0.1", port, &cfd);
	CU_ASSERT_PTR_NOT_NULL(rep);
	if (rep) {
		CU_ASSERT_EQUAL(rep->status, 0);
		ff__reply__free_unpacked(rep, NULL);
	}
	if (cfd >= 0)
		close(cfd);
	close(qfd);
	close(kfd);
	close(c1);
	close(c2);
	fx_router_stop(&fx);
	setrlimit(RLIMIT_NOFILE, &old);
}

/* fd is still the eventfd the test opened (the router shares our table) */
static bool is_eventfd(int fd)
{
	char proc[64], link[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

/* Out of fds, a connection to a listener only the router holds (here a
 * container's socket) would stay queued with its listener readable: the
 * loop would spin on accept4's EMFILE and never answer. The router closes
 * it at once instead (its peer reads EOF), counts it, and serves again
 * once fds are free. It sheds with its spare fd and nothing else: after
 * an accept on a shared listener (which once closed the spare and kept its
 * number, so that the shed closed whatever file had that number then),
 * every fd of ours is still ours. */
static void test_accept_at_fd_limit(void)
{
	struct rlimit old, low;
	int held[256], nheld = 0, cl, fd, c1, lost = 0, kfd, qfd, tfd, sfd;
	uint16_t port;
	struct pollfd p;
	char path[160], b;
	Ff__Reply *rep;

	fx_up(&fx);
	c1 = fx_shim(&fx, "c1");
	CU_ASSERT_FATAL(c1 >= 0);
	kfd = kernel_listener(c1, &port, &qfd);
	tfd = forwarded(port, qfd, &sfd);
	if (sfd >= 0)
		close(sfd);
	close(tfd);
	close(kfd);
	close(qfd);
	close(c1);
	/* the router closes the registration channels after fx_up returns:
	 * its fds must be settled before ours fill the table */
	rep = status_first();
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	for (int n = -1, i = 0; i < 100 && n != fds_open(); i++) {
		n = fds_open();
		usleep(20000);
	}
	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)fds_open() + 64;
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (nheld < (int)(sizeof(held) / sizeof(held[0])) &&
	       (fd = eventfd(0, EFD_CLOEXEC)) >= 0)
		held[nheld++] = fd;
	CU_ASSERT_EQUAL(errno, EMFILE);
	CU_ASSERT_FATAL(nheld > 0);
	close(held[--nheld]);
	/* the one free fd is the client's: the router has none to accept it */
	snprintf(path, sizeof(path), "%s/c/c1/%s", fx.dir, FF_SOCK_NAME);
	cl = fx_connect(path);
	CU_ASSERT_FATAL(cl >= 0);
	p = (struct pollfd){.fd = cl, .events = POLLIN};
	CU_ASSERT_EQUAL(poll(&p, 1, 5000), 1);
	CU_ASSERT_EQUAL(recv(cl, &b, 1, MSG_DONTWAIT), 0);
	close(cl);
	for (int i = 0; i < nheld; i++)
		lost += !is_eventfd(held[i]);
	CU_ASSERT_EQUAL(lost, 0);
	ff_close_fds(held, nheld);
	setrlimit(RLIMIT_NOFILE, &old);
	/* counted, and served again */
	rep = status_first();
	CU_ASSERT_PTR_NOT_NULL(rep);
	if (rep) {
		Ff__RouterHealth *h = rep->status_reply ? rep->status_reply->health : NULL;

		/* Under valgrind, which keeps its own fd limit, the accept
		 * gets an fd and the channel is closed later, uncounted (the
		 * peer still reads EOF, checked above). */
		CU_ASSERT(h && (RUNNING_ON_VALGRIND || h->accepts_shed >= 1));
		ff__reply__free_unpacked(rep, NULL);
	}
	c1 = fx_shim(&fx, "c1");
	CU_ASSERT(c1 >= 0);
	if (c1 >= 0)
		close(c1);
	fx_router_stop(&fx);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"kernel_listener_blocking", test_kernel_listener_blocking},
		{"accept_queue_blocking", test_accept_queue_blocking},
		{"doorbell_blocking", test_doorbell_blocking},
		{"map_reopen", test_map_reopen},
		{"stats_scribbled", test_stats_scribbled},
		{"fd_budget", test_fd_budget},
		{"accept_at_fd_limit", test_accept_at_fd_limit},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("hostile", tests);
}
