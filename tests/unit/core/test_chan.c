/* ffrouter through its sockets: registration rules, the listen/connect hand
 * over, connection tracking, persistence, and every kind of bad input a
 * container or a confused client can send. After each bad input the router
 * must still serve (checked with a fresh request). */
#include "cu.h"
#include "fixture.h"

#include "fdpass.h"
#include "map.h"
#include "msg.h"

#include <ff/shm.h>
#include <ff/wire.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct fx_router fx;

static void up(void)
{
	CU_ASSERT_EQUAL_FATAL(fx_router_start(&fx), 0);
	CU_ASSERT_EQUAL_FATAL(fx_register(&fx, "c1", "10.99.0.1"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(fx_register(&fx, "c2", "10.99.0.2"), FF__STATUS__ST_OK);
}

static void down(void)
{
	fx_router_stop(&fx);
}

/* The router still answers a status request with the expected counts. */
static void assert_serving(int containers)
{
	int c, l, k;

	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(c, containers);
}

static bool pipe_orphaned(int wfd)
{
	return write(wfd, "x", 1) < 0 && errno == EPIPE;
}

/* ---- registration ---- */

static int register_ips(const char *name, char **ips, size_t n, char *err, size_t errlen)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Register m = FF__REGISTER__INIT;
	Ff__Reply *rep;
	int fd = fx_admin(&fx, true), rfds[FF_MAX_FDS], nr, st;

	m.name = (char *)name;
	m.n_ips = n;
	m.ips = ips;
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &m;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	close(fd);
	if (!rep)
		return -1;
	st = (int)rep->status;
	if (err)
		snprintf(err, errlen, "%s", rep->error);
	ff__reply__free_unpacked(rep, NULL);
	return st;
}

static void test_register_rules(void)
{
	char *two[] = {"10.99.0.7", "10.99.0.7"}, *v6[] = {"fd00::5", "10.99.0.5"};
	char err[256];
	struct stat st;
	char path[160];

	up();
	CU_ASSERT_EQUAL(fx_register(&fx, "c1", "10.99.0.9"), FF__STATUS__ST_EXISTS);
	CU_ASSERT_EQUAL(register_ips("c3", (char *[]){"10.99.0.1"}, 1, err, sizeof(err)),
			FF__STATUS__ST_ADDR_IN_USE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "c1"));
	CU_ASSERT_EQUAL(fx_register(&fx, "c3", "10.99"), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(fx_register(&fx, "c3", "127.0.0.1"), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(fx_register(&fx, "c3", "0.0.0.0"), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(fx_register(&fx, "../x", "10.99.0.3"), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(fx_register(&fx, "", "10.99.0.3"), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(fx_register(&fx, "-x", "10.99.0.3"), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(register_ips("c3", two, 2, NULL, 0), FF__STATUS__ST_ADDR_IN_USE);
	CU_ASSERT_EQUAL(register_ips("c3", NULL, 0, NULL, 0), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(register_ips("c3", v6, 2, NULL, 0), FF__STATUS__ST_OK);
	/* the container's socket exists and anyone inside may use it */
	snprintf(path, sizeof(path), "%s/c/c3/%s", fx.dir, FF_SOCK_NAME);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0666);
	snprintf(path, sizeof(path), "%s/c", fx.dir);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);
	assert_serving(3);
	down();
}

static int unregister(const char *name)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unregister m = FF__UNREGISTER__INIT;
	Ff__Reply *rep;
	int fd = fx_admin(&fx, true), rfds[FF_MAX_FDS], nr, st;

	m.name = (char *)name;
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &m;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	close(fd);
	st = rep ? (int)rep->status : -1;
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	return st;
}

static void test_unregister_and_restart(void)
{
	char path[160];
	int fd;

	up();
	CU_ASSERT_EQUAL(unregister("nope"), FF__STATUS__ST_NOT_FOUND);
	CU_ASSERT_EQUAL(unregister("c2"), FF__STATUS__ST_OK);
	snprintf(path, sizeof(path), "%s/c/c2", fx.dir);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	/* its address is free again */
	CU_ASSERT_EQUAL(fx_register(&fx, "c4", "10.99.0.2"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(fx_router_restart(&fx), 0);
	assert_serving(2);
	fd = fx_shim(&fx, "c4");
	CU_ASSERT(fd >= 0);
	close(fd);
	CU_ASSERT_EQUAL(fx_register(&fx, "c5", "10.99.0.1"), FF__STATUS__ST_ADDR_IN_USE);
	down();
}

static void test_state_file_bad_line(void)
{
	char path[160];
	FILE *f;

	CU_ASSERT_EQUAL_FATAL(fx_router_start(&fx), 0);
	snprintf(path, sizeof(path), "%s/state", fx.dir);
	f = fopen(path, "w");
	fprintf(f, "container good ips=10.99.1.1 host=local\n"
		   "container bad ips=nonsense host=local\n"
		   "garbage line\n"
		   "container good ips=10.99.1.2 host=local\n");
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(fx_router_restart(&fx), 0);
	assert_serving(1);
	/* the unreadable original is kept, nothing lost */
	snprintf(path, sizeof(path), "%s/state.bad", fx.dir);
	CU_ASSERT_EQUAL(access(path, R_OK), 0);
	down();
}

/* ---- shim protocol ---- */

static void test_hello_pages(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	Ff__Reply *rep;
	int fd, rfds[FF_MAX_FDS], nr = 0;
	struct ff_map_hdr *map;
	struct ff_ip ip;
	uint8_t flags;
	char path[160];

	up();
	snprintf(path, sizeof(path), "%s/c/c1/%s", fx.dir, FF_SOCK_NAME);
	fd = fx_connect(path);
	h.version = FF_PROTO_VERSION;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, 0);
	CU_ASSERT_STRING_EQUAL(rep->hello->container, "c1");
	CU_ASSERT_EQUAL(rep->hello->n_ips, 1);
	CU_ASSERT_EQUAL_FATAL(nr, 2);
	/* the map is read-only for a container */
	CU_ASSERT_EQUAL(mmap(NULL, FF_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rfds[0], 0),
			MAP_FAILED);
	CU_ASSERT_EQUAL(ftruncate(rfds[0], 0), -1);
	map = mmap(NULL, FF_MAP_SIZE, PROT_READ, MAP_SHARED, rfds[0], 0);
	CU_ASSERT_NOT_EQUAL_FATAL(map, MAP_FAILED);
	ff_ip_parse("10.99.0.2", &ip);
	CU_ASSERT_EQUAL(ff_map_find(map, &ip, &flags), 1);
	ff_ip_parse("10.99.0.3", &ip);
	CU_ASSERT_EQUAL(ff_map_find(map, &ip, &flags), 0);
	munmap(map, FF_MAP_SIZE);
	/* the stats page cannot be shrunk under the router */
	CU_ASSERT_EQUAL(ftruncate(rfds[1], 0), -1);
	ff__reply__free_unpacked(rep, NULL);
	/* a second Hello is refused */
	rep = fx_call(fd, &req, NULL, 0, rfds + 0, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	ff_close_fds(rfds, 2);
	close(fd);
	/* wrong version */
	fd = fx_connect(path);
	h.version = 99;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_VERSION);
	ff__reply__free_unpacked(rep, NULL);
	close(fd);
	down();
}

/* Listen (qr_in < 0) or Relisten (qr_in: the router end kept by a shim).
 * A Listen reply carries the app's end (*qfd) and a copy of the router's
 * end (*qr, or closed when qr is NULL). */
static Ff__Reply *listen_req(int ch, int kfd, int qr_in, const char *ip, uint16_t port, int *qfd,
			     int *qr)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Listen m = FF__LISTEN__INIT;
	Ff__Addr a;
	uint8_t ab[16];
	int fds[2] = {kfd, qr_in}, rfds[FF_MAX_FDS], nr = 0;
	Ff__Reply *rep;

	fx_addr(&a, ab, ip, port);
	m.addr = &a;
	m.backlog = 16;
	if (qr_in >= 0) {
		req.body_case = FF__REQUEST__BODY_RELISTEN;
		req.relisten = &m;
	} else {
		req.body_case = FF__REQUEST__BODY_LISTEN;
		req.listen = &m;
	}
	rep = fx_call(ch, &req, fds, qr_in >= 0 ? 2 : kfd >= 0 ? 1 : 0, rfds, &nr);
	if (nr != 2)
		ff_close_fds(rfds, nr);
	if (qfd)
		*qfd = nr == 2 ? rfds[0] : -1;
	else if (nr == 2)
		close(rfds[0]);
	if (qr)
		*qr = nr == 2 ? rfds[1] : -1;
	else if (nr == 2)
		close(rfds[1]);
	return rep;
}

static Ff__Reply *do_listen(int ch, int kfd, const char *ip, uint16_t port, int *qfd)
{
	return listen_req(ch, kfd, -1, ip, port, qfd, NULL);
}

static Ff__Reply *do_listen2(int ch, int kfd, uint16_t port, int *qfd, int *qr)
{
	return listen_req(ch, kfd, -1, "0.0.0.0", port, qfd, qr);
}

static Ff__Reply *do_relisten(int ch, int kfd, int qr, uint16_t port)
{
	return listen_req(ch, kfd, qr, "0.0.0.0", port, NULL, NULL);
}

static Ff__Reply *do_connect(int ch, const char *ip, uint16_t port, int *cfd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Connect m = FF__CONNECT__INIT;
	Ff__Addr a;
	uint8_t ab[16];
	int rfds[FF_MAX_FDS], nr = 0;
	Ff__Reply *rep;

	fx_addr(&a, ab, ip, port);
	m.dst = &a;
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &m;
	rep = fx_call(ch, &req, NULL, 0, rfds, &nr);
	*cfd = nr == 1 ? rfds[0] : -1;
	if (nr != 1)
		ff_close_fds(rfds, nr);
	return rep;
}

/* Reads one Accepted from an accept queue; *fd gets its connection. */
static Ff__Accepted *take_accepted(int qfd, int *fd)
{
	uint8_t buf[512];
	int fds[FF_MAX_FDS], n = 0;
	ssize_t len = ff_recv_fds(qfd, buf, sizeof(buf), fds, 1, &n, 0);

	*fd = n == 1 ? fds[0] : -1;
	return len > 0 ? (Ff__Accepted *)ff_msg_unpack(&ff__accepted__descriptor, buf, (size_t)len)
		       : NULL;
}

static void test_listen_connect(void)
{
	int c1 = -1, c2 = -1, kfd, qfd, cfd, sfd, c, l, k;
	Ff__Reply *rep;
	Ff__Accepted *a;
	uint16_t port;
	char buf[8];

	up();
	c1 = fx_shim(&fx, "c1");
	c2 = fx_shim(&fx, "c2");
	kfd = fx_tcp_listener(&port);
	CU_ASSERT_FATAL(c1 >= 0 && c2 >= 0 && kfd >= 0);
	rep = do_listen(c1, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, 0);
	CU_ASSERT_FATAL(qfd >= 0);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	/* like a TCP listener: neither readable (nothing pending) nor writable */
	{
		struct pollfd p = {.fd = qfd, .events = POLLIN | POLLOUT};

		CU_ASSERT_EQUAL(poll(&p, 1, 0), 0);
	}

	rep = do_connect(c2, "10.99.0.1", port, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	CU_ASSERT_EQUAL(rep->connect->path, FF__PATH__PATH_SAME_HOST);
	CU_ASSERT_EQUAL(rep->connect->local->port >= 32768, 1);
	CU_ASSERT_EQUAL(rep->connect->peer->port, port);
	a = take_accepted(qfd, &sfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(a->conn_id, rep->connect->conn_id);
	CU_ASSERT_EQUAL(a->peer->port, rep->connect->local->port);
	CU_ASSERT_EQUAL(a->local->port, port);
	ff__accepted__free_unpacked(a, NULL);
	ff__reply__free_unpacked(rep, NULL);
	/* bytes flow both ways */
	CU_ASSERT_EQUAL(write(cfd, "ping", 4), 4);
	CU_ASSERT_EQUAL(read(sfd, buf, 4), 4);
	CU_ASSERT_EQUAL(memcmp(buf, "ping", 4), 0);
	CU_ASSERT_EQUAL(write(sfd, "pong", 4), 4);
	CU_ASSERT_EQUAL(read(cfd, buf, 4), 4);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(l, 1);
	CU_ASSERT_EQUAL(k, 1);
	/* the router holds no connection fd: closing one end is EOF at once */
	close(cfd);
	CU_ASSERT_EQUAL(read(sfd, buf, 4), 0);
	close(sfd);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(k, 0);
	/* closing the accept queue removes the listener */
	close(qfd);
	usleep(50000);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(l, 0);
	rep = do_connect(c2, "10.99.0.1", port, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NO_LISTENER);
	CU_ASSERT_EQUAL(cfd, -1);
	ff__reply__free_unpacked(rep, NULL);
	close(c1);
	close(c2);
	down();
}

static void test_connect_misses(void)
{
	int c2, cfd;
	Ff__Reply *rep;

	up();
	c2 = fx_shim(&fx, "c2");
	rep = do_connect(c2, "10.99.0.1", 9, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NO_LISTENER);
	ff__reply__free_unpacked(rep, NULL);
	rep = do_connect(c2, "10.98.0.1", 9, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NOT_FOUND);
	ff__reply__free_unpacked(rep, NULL);
	rep = do_connect(c2, "10.99.0.1", 0, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	close(c2);
	down();
}

/* Connections that reach the container's kernel listener come through the
 * same accept queue, marked as plain kernel connections. */
static void test_kernel_forwarding(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int c1, kfd, qfd, tfd, sfd;
	Ff__Reply *rep;
	Ff__Accepted *a;
	uint16_t port;
	char buf[4];

	up();
	c1 = fx_shim(&fx, "c1");
	kfd = fx_tcp_listener(&port);
	rep = do_listen(c1, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	sin.sin_port = htons(port);
	tfd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(connect(tfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	a = take_accepted(qfd, &sfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(a->path, FF__PATH__PATH_NONE);
	CU_ASSERT_EQUAL(a->local->port, port);
	CU_ASSERT_EQUAL(a->conn_id, 0);
	ff__accepted__free_unpacked(a, NULL);
	CU_ASSERT_EQUAL(write(tfd, "abc", 3), 3);
	CU_ASSERT_EQUAL(read(sfd, buf, 3), 3);
	close(tfd);
	close(sfd);
	close(qfd);
	close(c1);
	down();
}

/* A listener outlives its router: the shim keeps the kernel listener and a
 * copy of the router's end of the queue and hands them to the next router. */
static void test_relisten_after_restart(void)
{
	int c1, c2, kfd, qfd, qr, cfd, sfd, c, l, k;
	Ff__Reply *rep;
	Ff__Accepted *a;
	uint16_t port;

	up();
	c1 = fx_shim(&fx, "c1");
	kfd = fx_tcp_listener(&port);
	rep = do_listen2(c1, kfd, port, &qfd, &qr);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	CU_ASSERT_FATAL(qfd >= 0 && qr >= 0);
	ff__reply__free_unpacked(rep, NULL);
	close(c1);
	CU_ASSERT_EQUAL_FATAL(fx_router_restart(&fx), 0);
	/* the router is gone, the queue is not: no EOF, no false readiness */
	{
		struct pollfd p = {.fd = qfd, .events = POLLIN | POLLOUT};

		CU_ASSERT_EQUAL(poll(&p, 1, 0), 0);
	}
	c1 = fx_shim(&fx, "c1");
	c2 = fx_shim(&fx, "c2");
	rep = do_relisten(c1, kfd, qr, port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	/* a second process handing back the same queue: accepted, no double */
	rep = do_relisten(c1, kfd, qr, port);
	CU_ASSERT_EQUAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(l, 1);
	/* another container cannot take it over */
	rep = do_relisten(c2, kfd, qr, port);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_PERM);
	ff__reply__free_unpacked(rep, NULL);
	/* a pipe is not a queue */
	{
		int p[2];

		CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
		rep = do_relisten(c1, kfd, p[0], port);
		CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
		ff__reply__free_unpacked(rep, NULL);
		close(p[0]);
		close(p[1]);
	}
	/* connections reach the app through the old queue */
	rep = do_connect(c2, "10.99.0.1", port, &cfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	a = take_accepted(qfd, &sfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(a->path, FF__PATH__PATH_SAME_HOST);
	ff__accepted__free_unpacked(a, NULL);
	CU_ASSERT_EQUAL(write(cfd, "x", 1), 1);
	CU_ASSERT_EQUAL(read(sfd, &k, 1), 1);
	close(cfd);
	close(sfd);
	close(qfd);
	close(qr);
	close(kfd);
	close(c1);
	close(c2);
	down();
}

/* Unlisten drops a listener whose queue the app closed, before the router
 * would have noticed on its own, so the port is free again at once. */
static void test_unlisten(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unlisten m = FF__UNLISTEN__INIT;
	int c1, kfd, qfd, qr, rfds[FF_MAX_FDS], nr, c, l, k;
	Ff__Reply *rep;
	uint16_t port;

	up();
	c1 = fx_shim(&fx, "c1");
	kfd = fx_tcp_listener(&port);
	rep = do_listen2(c1, kfd, port, &qfd, &qr);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	m.listener_id = rep->listen->listener_id;
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	req.body_case = FF__REQUEST__BODY_UNLISTEN;
	req.unlisten = &m;
	/* still open: kept */
	rep = fx_call(c1, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_EQUAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(l, 1);
	close(qfd);
	close(qr);
	rep = fx_call(c1, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_EQUAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(l, 0);
	close(c1);
	down();
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* What a container and its connections hold in the router goes when they
 * go: after listen, 50 connections, closing them all, the sweep and an
 * unregister, this process (test and router) holds what it held before. */
static void test_release(void)
{
	int c1, c2, kfd, qfd, before, c, l, k;
	int cfd[50], sfd[50];
	Ff__Reply *rep;
	uint16_t port;

	up();
	usleep(50000); /* the router closes its end of up()'s channels */
	before = open_fds();
	CU_ASSERT_EQUAL(fx_register(&fx, "c3", "10.99.0.3"), FF__STATUS__ST_OK);
	c1 = fx_shim(&fx, "c3");
	c2 = fx_shim(&fx, "c2");
	kfd = fx_tcp_listener(&port);
	rep = do_listen(c1, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	for (int i = 0; i < 50; i++) {
		Ff__Accepted *a;

		rep = do_connect(c2, "10.99.0.3", port, &cfd[i]);
		CU_ASSERT_EQUAL_FATAL(rep->status, 0);
		ff__reply__free_unpacked(rep, NULL);
		a = take_accepted(qfd, &sfd[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(a);
		ff__accepted__free_unpacked(a, NULL);
	}
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0);
	CU_ASSERT_EQUAL(k, 50);
	for (int i = 0; i < 50; i++) {
		close(cfd[i]);
		close(sfd[i]);
	}
	close(qfd);
	close(c1);
	close(c2);
	CU_ASSERT_EQUAL(unregister("c3"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0); /* sweeps */
	CU_ASSERT_EQUAL(k, 0);
	CU_ASSERT_EQUAL(l, 0);
	usleep(50000);
	CU_ASSERT_EQUAL(open_fds(), before);
	down();
}

/* ---- bad input ---- */

static void test_listen_bad_fds(void)
{
	int c1, c2, p[2], qfd, kfd, tcp;
	Ff__Reply *rep;
	uint16_t port;

	up();
	c1 = fx_shim(&fx, "c1");
	c2 = fx_shim(&fx, "c2");
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	/* a pipe is not a listening socket */
	rep = do_listen(c1, p[0], "0.0.0.0", 80, &qfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	close(p[0]);
	CU_ASSERT(pipe_orphaned(p[1]));
	close(p[1]);
	/* a TCP socket that is not listening */
	tcp = socket(AF_INET, SOCK_STREAM, 0);
	rep = do_listen(c1, tcp, "0.0.0.0", 0, &qfd);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	close(tcp);
	/* claims another port than the socket's */
	kfd = fx_tcp_listener(&port);
	rep = do_listen(c1, kfd, "0.0.0.0", (uint16_t)(port + 1), &qfd);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* no fd at all */
	rep = do_listen(c1, -1, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* c2 cannot listen on c1's address */
	rep = do_listen(c2, kfd, "10.99.0.1", port, &qfd);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_PERM);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	assert_serving(2);
	close(c1);
	close(c2);
	down();
}

/* Sends bytes as they are (framed: behind a valid frame byte). */
static Ff__Reply *raw(int fd, const void *buf, size_t len, bool framed)
{
	uint8_t *b = malloc(len + 1);
	int rfds[FF_MAX_FDS], nr, err;

	b[0] = FF_FRAME_V1;
	memcpy(b + 1, buf, len);
	err = framed ? ff_send_fds(fd, b, len + 1, NULL, 0) : ff_send_fds(fd, buf, len, NULL, 0);
	free(b);
	if (err < 0)
		return NULL;
	return fx_recv(fd, rfds, &nr);
}

static void test_garbage(void)
{
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	/* id=5, then field 99 (length-delimited, empty): a type we do not know */
	static const uint8_t unknown[] = {0x08, 0x05, 0x9a, 0x06, 0x00};
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unregister u = FF__UNREGISTER__INIT;
	uint8_t enc[256], *big;
	size_t len;
	Ff__Reply *rep;
	int fd, rfds[FF_MAX_FDS], nr;

	up();
	fd = fx_admin(&fx, true);
	rep = raw(fd, garbage, sizeof(garbage), true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* truncated: the first half of a valid request */
	u.name = (char *)"a-rather-long-container-name";
	req.id = 9;
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &u;
	len = protobuf_c_message_pack(&req.base, enc);
	rep = raw(fd, enc, len / 2, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* oversized */
	big = calloc(1, FF_MSG_MAX + 4096);
	rep = raw(fd, big, FF_MSG_MAX + 4096, true);
	free(big);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep->error, "too long"));
	ff__reply__free_unpacked(rep, NULL);
	/* a valid message without the frame byte */
	rep = raw(fd, enc, len, false);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* unknown type */
	rep = raw(fd, unknown, sizeof(unknown), true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_UNSUPPORTED);
	CU_ASSERT_EQUAL(rep->id, 5);
	ff__reply__free_unpacked(rep, NULL);
	/* the same channel still works */
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NOT_FOUND);
	ff__reply__free_unpacked(rep, NULL);
	/* an empty datagram reads as EOF on SOCK_SEQPACKET: the channel goes */
	CU_ASSERT_PTR_NULL(raw(fd, "", 0, false));
	close(fd);
	assert_serving(2);
	down();
}

static void test_unexpected_fds(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus st = FF__GET_STATUS__INIT;
	int fd, p[2], three[3], rfds[FF_MAX_FDS], nr;
	Ff__Reply *rep;

	up();
	fd = fx_admin(&fx, true);
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &st;
	/* status carries no fds */
	rep = fx_call(fd, &req, &p[0], 1, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* more fds than any message may carry */
	three[0] = three[1] = three[2] = p[0];
	{
		uint8_t enc[64];
		size_t len = ff_msg_pack(&req.base, enc);

		CU_ASSERT_EQUAL(fx_send_raw_fds(fd, enc, len, three, 3), (long)len);
		rep = fx_recv(fd, rfds, &nr);
		CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
		CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
		ff__reply__free_unpacked(rep, NULL);
	}
	/* the router kept none of them */
	close(p[0]);
	CU_ASSERT(pipe_orphaned(p[1]));
	close(p[1]);
	close(fd);
	assert_serving(2);
	down();
}

static void test_protocol_order(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus st = FF__GET_STATUS__INIT;
	Ff__Register reg = FF__REGISTER__INIT;
	char *ips[] = {"10.99.0.50"};
	int fd, rfds[FF_MAX_FDS], nr;
	Ff__Reply *rep;
	char b;

	up();
	/* before Hello: refused and closed */
	fd = fx_admin(&fx, false);
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &st;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NOT_HELLO);
	ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT_EQUAL(recv(fd, &b, 1, 0), 0);
	close(fd);
	/* a container cannot register others */
	fd = fx_shim(&fx, "c1");
	reg.name = (char *)"evil";
	reg.n_ips = 1;
	reg.ips = ips;
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &reg;
	rep = fx_call(fd, &req, NULL, 0, rfds, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_PERM);
	ff__reply__free_unpacked(rep, NULL);
	/* and a CLI cannot connect as a container */
	close(fd);
	fd = fx_admin(&fx, true);
	rep = do_connect(fd, "10.99.0.1", 80, &nr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_PERM);
	ff__reply__free_unpacked(rep, NULL);
	close(fd);
	assert_serving(2);
	down();
}

static void test_flood_closes_channel(void)
{
	int fd, rfds[FF_MAX_FDS], nr, replies = 0, resets = 0;
	uint8_t buf[512];

	up();
	fd = fx_shim(&fx, "c1");
	for (int i = 0; i < 40; i++)
		if (ff_send_fds(fd, "\xff\xff", 2, NULL, 0) < 0)
			break;
	/* Closed with requests unread, the router's end resets ours: that
	 * error comes first, then the replies queued before it, then EOF. */
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 2000) != 1)
			break;
		n = ff_recv_fds(fd, buf, sizeof(buf), rfds, FF_MAX_FDS, &nr, 0);
		if (n == -ECONNRESET && !resets++)
			continue;
		if (n <= 0)
			break;
		replies++;
	}
	/* answered up to the limit, then closed */
	CU_ASSERT(replies >= 1 && replies <= 16);
	close(fd);
	assert_serving(2);
	down();
}

static void test_channel_quota(void)
{
	int fds[70], n = 0, refused = 0;

	up();
	for (int i = 0; i < 70; i++) {
		fds[i] = fx_shim(&fx, "c1");
		if (fds[i] >= 0)
			n++;
		else
			refused++;
	}
	CU_ASSERT_EQUAL(n, 64);
	CU_ASSERT_EQUAL(refused, 6);
	for (int i = 0; i < 70; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	usleep(50000);
	n = fx_shim(&fx, "c1");
	CU_ASSERT(n >= 0);
	close(n);
	down();
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"register_rules", test_register_rules},
		{"unregister_and_restart", test_unregister_and_restart},
		{"state_file_bad_line", test_state_file_bad_line},
		{"hello_pages", test_hello_pages},
		{"listen_connect", test_listen_connect},
		{"connect_misses", test_connect_misses},
		{"kernel_forwarding", test_kernel_forwarding},
		{"relisten_after_restart", test_relisten_after_restart},
		{"unlisten", test_unlisten},
		{"release", test_release},
		{"listen_bad_fds", test_listen_bad_fds},
		{"garbage", test_garbage},
		{"unexpected_fds", test_unexpected_fds},
		{"protocol_order", test_protocol_order},
		{"flood_closes_channel", test_flood_closes_channel},
		{"channel_quota", test_channel_quota},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("router", tests);
}
