/* ffrouter/core/sockets.c through the router's sockets: a shim's Hello
 * (its pages), the same-host listen/connect hand-over, and connects that
 * find no listener or no container. */
#include "cu.h"
#include "fixture.h"

#include "fdpass.h"
#include "map.h"

#include <ff/shm.h>
#include <ff/wire.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct fx_router fx;

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

	fx_up(&fx);
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
	fx_router_stop(&fx);
}

static void test_listen_connect(void)
{
	int c1 = -1, c2 = -1, kfd, qfd, cfd, sfd, c, l, k;
	Ff__Reply *rep;
	Ff__Accepted *a;
	uint16_t port;
	char buf[8];

	fx_up(&fx);
	c1 = fx_shim(&fx, "c1");
	c2 = fx_shim(&fx, "c2");
	kfd = fx_tcp_listener(&port);
	CU_ASSERT_FATAL(c1 >= 0 && c2 >= 0 && kfd >= 0);
	rep = fx_listen(c1, kfd, "0.0.0.0", port, &qfd);
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

	rep = fx_overlay_connect(c2, "10.99.0.1", port, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	CU_ASSERT_EQUAL(rep->connect->path, FF__PATH__PATH_SAME_HOST);
	CU_ASSERT_EQUAL(rep->connect->local->port >= 32768, 1);
	CU_ASSERT_EQUAL(rep->connect->peer->port, port);
	a = fx_take_accepted(qfd, &sfd);
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
	rep = fx_overlay_connect(c2, "10.99.0.1", port, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NO_LISTENER);
	CU_ASSERT_EQUAL(cfd, -1);
	ff__reply__free_unpacked(rep, NULL);
	close(c1);
	close(c2);
	fx_router_stop(&fx);
}

static void test_connect_misses(void)
{
	int c2, cfd;
	Ff__Reply *rep;

	fx_up(&fx);
	c2 = fx_shim(&fx, "c2");
	rep = fx_overlay_connect(c2, "10.99.0.1", 9, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NO_LISTENER);
	ff__reply__free_unpacked(rep, NULL);
	rep = fx_overlay_connect(c2, "10.98.0.1", 9, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_NOT_FOUND);
	ff__reply__free_unpacked(rep, NULL);
	rep = fx_overlay_connect(c2, "10.99.0.1", 0, &cfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	close(c2);
	fx_router_stop(&fx);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"hello_pages", test_hello_pages},
		{"listen_connect", test_listen_connect},
		{"connect_misses", test_connect_misses},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("sockets", tests);
}
