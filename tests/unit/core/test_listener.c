/* ffrouter/core/listener.c through the router's sockets: connections to
 * the kernel listener forwarded through the accept queue, a queue that
 * outlives its router, Unlisten, and fds that are no listening socket. */
#include "cu.h"
#include "fixture.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

static struct fx_router fx;

static Ff__Reply *do_listen2(int ch, int kfd, uint16_t port, int *qfd, int *qr)
{
	return fx_listen_req(ch, kfd, -1, "0.0.0.0", port, qfd, qr);
}

static Ff__Reply *do_relisten(int ch, int kfd, int qr, uint16_t port)
{
	return fx_listen_req(ch, kfd, qr, "0.0.0.0", port, NULL, NULL);
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

	fx_up(&fx);
	c1 = fx_shim(&fx, "c1");
	kfd = fx_tcp_listener(&port);
	rep = fx_listen(c1, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	sin.sin_port = htons(port);
	tfd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(connect(tfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	a = fx_take_accepted(qfd, &sfd);
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
	fx_router_stop(&fx);
}

/* A listener outlives its router: the shim keeps the kernel listener and a
 * copy of the router's end of the queue and hands them to the next router. */
static void test_relisten_after_restart(void)
{
	int c1, c2, kfd, qfd, qr, cfd, sfd, c, l, k;
	Ff__Reply *rep;
	Ff__Accepted *a;
	uint16_t port;

	fx_up(&fx);
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
	rep = fx_overlay_connect(c2, "10.99.0.1", port, &cfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	a = fx_take_accepted(qfd, &sfd);
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
	fx_router_stop(&fx);
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

	fx_up(&fx);
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
	fx_router_stop(&fx);
}

static void test_listen_bad_fds(void)
{
	int c1, c2, p[2], qfd, kfd, tcp;
	Ff__Reply *rep;
	uint16_t port;

	fx_up(&fx);
	c1 = fx_shim(&fx, "c1");
	c2 = fx_shim(&fx, "c2");
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	/* a pipe is not a listening socket */
	rep = fx_listen(c1, p[0], "0.0.0.0", 80, &qfd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	close(p[0]);
	CU_ASSERT(fx_pipe_orphaned(p[1]));
	close(p[1]);
	/* a TCP socket that is not listening */
	tcp = socket(AF_INET, SOCK_STREAM, 0);
	rep = fx_listen(c1, tcp, "0.0.0.0", 0, &qfd);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	close(tcp);
	/* claims another port than the socket's */
	kfd = fx_tcp_listener(&port);
	rep = fx_listen(c1, kfd, "0.0.0.0", (uint16_t)(port + 1), &qfd);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* no fd at all */
	rep = fx_listen(c1, -1, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
	ff__reply__free_unpacked(rep, NULL);
	/* c2 cannot listen on c1's address */
	rep = fx_listen(c2, kfd, "10.99.0.1", port, &qfd);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_PERM);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	fx_assert_serving(&fx, 2);
	close(c1);
	close(c2);
	fx_router_stop(&fx);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"kernel_forwarding", test_kernel_forwarding},
		{"relisten_after_restart", test_relisten_after_restart},
		{"unlisten", test_unlisten},
		{"listen_bad_fds", test_listen_bad_fds},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("listener", tests);
}
