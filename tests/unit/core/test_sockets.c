/* ffrouter/core/sockets.c through the router's sockets: a shim's Hello
 * (its pages), the same-host listen/connect hand-over, connects that find
 * no listener or no container, and the rings of same-host connections
 * (--same-host-rings): a sealed, formatted memfd to both ends when both
 * shims read rings, none otherwise, none past --max-ring-mem until
 * connections go, and again with a Lookup (an exec'd shim). */
#include "cu.h"
#include "fixture.h"

#include "fdpass.h"
#include "map.h"
#include "sdoor.h"

#include <ff/shm.h>
#include <ff/wire.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* A memfd the router handed over: rings of size bytes, sealed, formatted,
 * usable as side; the ring is written through a and read through b. */
static void ring_ok(int mfd, uint32_t size, struct ff_sring *r, int side, void **mem)
{
	struct stat st;
	size_t len = ff_sring_len(size);
	int seals = fcntl(mfd, F_GET_SEALS);

	CU_ASSERT_FATAL(fstat(mfd, &st) == 0);
	CU_ASSERT_EQUAL((size_t)st.st_size, len);
	CU_ASSERT_EQUAL(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
			F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	CU_ASSERT_EQUAL(ftruncate(mfd, 4096), -1); /* a shim cannot make the other fault */
	*mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	CU_ASSERT_NOT_EQUAL_FATAL(*mem, MAP_FAILED);
	CU_ASSERT_EQUAL(ff_sring_attach(r, *mem, len, side), 0);
}

/* An end's page the router handed over: one page, sealed, formatted. */
static void end_ok(int efd)
{
	struct stat st;
	struct ff_sring_end *e;

	CU_ASSERT_FATAL(fstat(efd, &st) == 0);
	CU_ASSERT_EQUAL(st.st_size, FF_SRING_HDR);
	CU_ASSERT_EQUAL(fcntl(efd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
			F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	e = mmap(NULL, FF_SRING_HDR, PROT_READ | PROT_WRITE, MAP_SHARED, efd, 0);
	CU_ASSERT_NOT_EQUAL_FATAL(e, MAP_FAILED);
	CU_ASSERT_EQUAL(e->magic, FF_SRING_END_MAGIC);
	CU_ASSERT_EQUAL(e->holders, 0);
	/* its locks are process-shared and robust, ready to take */
	CU_ASSERT_EQUAL(pthread_mutex_lock(&e->tx), 0);
	CU_ASSERT_EQUAL(pthread_mutex_unlock(&e->tx), 0);
	munmap(e, FF_SRING_HDR);
}

static void test_rings(void)
{
	const uint32_t size = 64u << 10;
	int c1r, c2r, c1, c2, kfd, qfd, qfd2, cfd, sfd, mfd, mfd2, efd, efd2, conns[8][2], sb = 0;
	struct ff_sring ra, rb;
	void *ma, *mb;
	struct stat s1, s2, e1, e2;
	socklen_t len = sizeof(sb);
	Ff__Reply *rep;
	Ff__Accepted *a;
	uint16_t port, port2;
	char buf[8];
	int n = 0;

	fx.ring = size;
	fx.ring_mib = 1; /* room for 7 connections' rings (132 KiB each) */
	fx_up(&fx);
	c1r = fx_shim_caps(&fx, "c1", FF_CAP_RINGS);
	c2r = fx_shim_caps(&fx, "c2", FF_CAP_RINGS);
	c1 = fx_shim(&fx, "c1");
	c2 = fx_shim(&fx, "c2");
	kfd = fx_tcp_listener(&port);
	CU_ASSERT_FATAL(c1r >= 0 && c2r >= 0 && c1 >= 0 && c2 >= 0 && kfd >= 0);
	rep = fx_listen(c1r, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_FATAL(rep != NULL && !rep->status && qfd >= 0);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);

	/* both able: the same memfd to both, side 0 the connecting one */
	rep = fx_overlay_connect2(c2r, "10.99.0.1", port, &cfd, &mfd, &efd);
	CU_ASSERT_FATAL(rep != NULL && !rep->status && cfd >= 0);
	CU_ASSERT_EQUAL(rep->connect->ring, size);
	CU_ASSERT_FATAL(mfd >= 0 && efd >= 0);
	ff__reply__free_unpacked(rep, NULL);
	a = fx_take_accepted2(qfd, &sfd, &mfd2, &efd2);
	CU_ASSERT_FATAL(a != NULL && sfd >= 0 && mfd2 >= 0 && efd2 >= 0);
	CU_ASSERT_EQUAL(a->ring, size);
	ff__accepted__free_unpacked(a, NULL);
	CU_ASSERT(fstat(mfd, &s1) == 0 && fstat(mfd2, &s2) == 0 && s1.st_ino == s2.st_ino);
	ring_ok(mfd, size, &ra, 0, &ma);
	ring_ok(mfd2, size, &rb, 1, &mb);
	/* each end its own page, which the other never gets */
	end_ok(efd);
	end_ok(efd2);
	CU_ASSERT(fstat(efd, &e1) == 0 && fstat(efd2, &e2) == 0 && e1.st_ino != e2.st_ino);
	CU_ASSERT_EQUAL(ff_sring_write(&ra, "ring", 4), 4);
	CU_ASSERT_EQUAL(ff_sring_read(&rb, buf, sizeof(buf), false), 4);
	CU_ASSERT_EQUAL(memcmp(buf, "ring", 4), 0);
	/* the doorbell's send buffer, both ends */
	CU_ASSERT(getsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &sb, &len) == 0 &&
		  sb == 2 * (int)FF_SDOOR_SNDBUF);
	/* an exec'd shim looking its end up gets the rings and its side */
	{
		Ff__Request req = FF__REQUEST__INIT;
		Ff__Lookup m = FF__LOOKUP__INIT;
		int rfds[FF_MAX_FDS], nr = 0;
		Ff__Reply *lr;

		CU_ASSERT_FATAL(fstat(sfd, &s2) == 0);
		m.inode = s2.st_ino;
		req.body_case = FF__REQUEST__BODY_LOOKUP;
		req.lookup = &m;
		lr = fx_call(c1r, &req, NULL, 0, rfds, &nr);
		CU_ASSERT_FATAL(lr != NULL && !lr->status);
		CU_ASSERT_EQUAL(lr->lookup->ring, size);
		CU_ASSERT_EQUAL(lr->lookup->side, 1);
		CU_ASSERT_EQUAL_FATAL(nr, 2);
		CU_ASSERT(fstat(rfds[0], &s2) == 0 && s2.st_ino == s1.st_ino);
		CU_ASSERT(fstat(rfds[1], &s2) == 0 && s2.st_ino == e2.st_ino);
		ff_close_fds(rfds, nr);
		ff__reply__free_unpacked(lr, NULL);
	}
	munmap(ma, ff_sring_len(size));
	munmap(mb, ff_sring_len(size));
	ff_close_fds((int[]){mfd, mfd2, efd, efd2, cfd, sfd}, 6);

	/* a shim that does not read rings, on either side: none */
	rep = fx_overlay_connect2(c2, "10.99.0.1", port, &cfd, &mfd, NULL);
	CU_ASSERT_FATAL(rep != NULL && !rep->status && cfd >= 0);
	CU_ASSERT_EQUAL(rep->connect->ring, 0);
	CU_ASSERT_EQUAL(mfd, -1);
	ff__reply__free_unpacked(rep, NULL);
	a = fx_take_accepted2(qfd, &sfd, &mfd2, NULL);
	CU_ASSERT_FATAL(a != NULL && sfd >= 0);
	CU_ASSERT_EQUAL(a->ring, 0);
	CU_ASSERT_EQUAL(mfd2, -1);
	ff__accepted__free_unpacked(a, NULL);
	close(cfd);
	close(sfd);
	kfd = fx_tcp_listener(&port2);
	rep = fx_listen(c1, kfd, "0.0.0.0", port2, &qfd2);
	CU_ASSERT_FATAL(rep != NULL && !rep->status && qfd2 >= 0);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	rep = fx_overlay_connect2(c2r, "10.99.0.1", port2, &cfd, &mfd, NULL);
	CU_ASSERT_FATAL(rep != NULL && !rep->status && cfd >= 0);
	CU_ASSERT_EQUAL(rep->connect->ring, 0);
	CU_ASSERT_EQUAL(mfd, -1);
	ff__reply__free_unpacked(rep, NULL);
	close(cfd);
	a = fx_take_accepted2(qfd2, &sfd, &mfd2, NULL);
	CU_ASSERT_FATAL(a != NULL && sfd >= 0 && mfd2 == -1);
	ff__accepted__free_unpacked(a, NULL);
	close(sfd);
	close(qfd2);

	/* --max-ring-mem 1: 7 connections get rings, the 8th the socketpair
	 * (a status request sweeps the closed ones first) */
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &n, &n, &n), 0);
	n = 0;
	for (int i = 0; i < 8; i++) {
		rep = fx_overlay_connect2(c2r, "10.99.0.1", port, &conns[i][0], &mfd, NULL);
		CU_ASSERT_FATAL(rep != NULL && !rep->status && conns[i][0] >= 0);
		n += rep->connect->ring == size && mfd >= 0;
		CU_ASSERT_EQUAL(i < 7, rep->connect->ring == size);
		if (mfd >= 0)
			close(mfd);
		ff__reply__free_unpacked(rep, NULL);
		a = fx_take_accepted2(qfd, &conns[i][1], &mfd2, NULL);
		CU_ASSERT_FATAL(a != NULL);
		if (mfd2 >= 0)
			close(mfd2);
		ff__accepted__free_unpacked(a, NULL);
	}
	CU_ASSERT_EQUAL(n, 7);
	/* gone (swept): their memory counts no more */
	for (int i = 0; i < 8; i++)
		close(conns[i][0]), close(conns[i][1]);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &n, &n, &n), 0);
	rep = fx_overlay_connect2(c2r, "10.99.0.1", port, &cfd, &mfd, NULL);
	CU_ASSERT_FATAL(rep != NULL && !rep->status && cfd >= 0);
	CU_ASSERT_EQUAL(rep->connect->ring, size);
	CU_ASSERT(mfd >= 0);
	ff__reply__free_unpacked(rep, NULL);
	a = fx_take_accepted2(qfd, &sfd, &mfd2, NULL);
	CU_ASSERT_FATAL(a != NULL);
	ff__accepted__free_unpacked(a, NULL);
	ff_close_fds((int[]){cfd, mfd, sfd, mfd2}, 4);
	close(qfd);
	ff_close_fds((int[]){c1r, c2r, c1, c2}, 4);
	fx_router_stop(&fx);
	fx.ring = 0;
	fx.ring_mib = 0;
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"hello_pages", test_hello_pages},
		{"listen_connect", test_listen_connect},
		{"connect_misses", test_connect_misses},
		{"rings", test_rings},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("sockets", tests);
}
