/* A hostile container against the router and its neighbours (issue 10),
 * through the router's sockets (router in a thread, fixture.h): files it
 * shares with the router, the pages the router hands it, and the router's
 * file descriptor budget. After each attack another container must still
 * be served. */
#include "cu.h"
#include "fixture.h"

#include "fdpass.h"
#include "msg.h"
#include "rdma/internal.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The app's kernel listener is the same open file in the app and in the
 * router: the app clears O_NONBLOCK on it, then a peer without ffnet
 * connects. The router forwards the connection and must then find the
 * listener empty without blocking in accept. */
static void test_kernel_listener_blocking(void)
{
	int c1, kfd, qfd, tfd, sfd = -1, tfd2;
	struct pollfd p;
	Ff__Reply *rep;
	uint16_t port;

	fx_up(&fx);
	c1 = fx_shim(&fx, "c1");
	kfd = fx_tcp_listener(&port);
	rep = fx_listen(c1, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	set_blocking(kfd, true);
	tfd = tcp_connect(port);
	CU_ASSERT_FATAL(tfd >= 0);
	p = (struct pollfd){.fd = qfd, .events = POLLIN};
	CU_ASSERT_EQUAL(poll(&p, 1, 2000), 1);
	if (p.revents & POLLIN) {
		Ff__Accepted *a = fx_take_accepted(qfd, &sfd);

		CU_ASSERT_PTR_NOT_NULL(a);
		if (a)
			ff__accepted__free_unpacked(a, NULL);
	}
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

int main(void)
{
	static const struct cu_test tests[] = {
		{"kernel_listener_blocking", test_kernel_listener_blocking},
		{"accept_queue_blocking", test_accept_queue_blocking},
		{"doorbell_blocking", test_doorbell_blocking},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("hostile", tests);
}
