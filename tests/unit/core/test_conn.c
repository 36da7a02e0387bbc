/* ffrouter/core/conn.c through the router's sockets: connection records
 * go with their sockets, and nothing of a container stays behind. */
#include "cu.h"
#include "fixture.h"
#include "msg.h"

#include <ff/wire.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static struct fx_router fx;

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

	fx_up(&fx);
	usleep(50000); /* the router closes its end of up()'s channels */
	before = open_fds();
	CU_ASSERT_EQUAL(fx_register(&fx, "c3", "10.99.0.3"), FF__STATUS__ST_OK);
	c1 = fx_shim(&fx, "c3");
	c2 = fx_shim(&fx, "c2");
	kfd = fx_tcp_listener(&port);
	rep = fx_listen(c1, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	for (int i = 0; i < 50; i++) {
		Ff__Accepted *a;

		rep = fx_overlay_connect(c2, "10.99.0.3", port, &cfd[i]);
		CU_ASSERT_EQUAL_FATAL(rep->status, 0);
		ff__reply__free_unpacked(rep, NULL);
		a = fx_take_accepted(qfd, &sfd[i]);
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
	CU_ASSERT_EQUAL(fx_unregister(&fx, "c3"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &c, &l, &k), 0); /* sweeps */
	CU_ASSERT_EQUAL(k, 0);
	CU_ASSERT_EQUAL(l, 0);
	usleep(50000);
	CU_ASSERT_EQUAL(open_fds(), before);
	fx_router_stop(&fx);
}

/* Counts the connections in a status read only after a pause, as a busy
 * ffctl would: by then the router has made every piece. -1 on a failure. */
static int status_conns_late(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus m = FF__GET_STATUS__INIT;
	int fd = fx_admin(&fx, true), rfds[FF_MAX_FDS], n, more = 1, conns = 0;

	req.id = 3;
	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &m;
	if (fd < 0 || ff_msg_send(fd, &req.base, NULL, 0) < 0)
		conns = -1;
	usleep(300000);
	while (conns >= 0 && more) {
		Ff__Reply *rep = fx_recv(fd, rfds, &n);

		if (!rep || rep->status || !rep->status_reply)
			conns = -1;
		else
			conns += (int)rep->status_reply->n_conns;
		more = rep ? rep->more : 0;
		if (rep)
			ff__reply__free_unpacked(rep, NULL);
	}
	if (fd >= 0)
		close(fd);
	return conns;
}

/* A status of more connections than the admin socket holds at once (6,000:
 * ~50 pieces) reaches a reader that starts late: the router waits for room
 * between pieces instead of dropping the channel (it did: `ffctl status`
 * failed with 10,000 connections open, bench/load.sh). Each connection is
 * kept alive by its client end only. */
static void test_status_many(void)
{
	enum { N = 6000 };
	static int cfd[N];
	struct rlimit rl;
	int c1, c2, kfd, qfd, k;
	Ff__Reply *rep;
	uint16_t port;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max < N + 512) {
		printf("status_many: RLIMIT_NOFILE %llu is too low here, not run\n",
		       (unsigned long long)rl.rlim_max);
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	fx.max_conns = 2 * N;
	fx_up(&fx);
	CU_ASSERT_EQUAL(fx_register(&fx, "c3", "10.99.0.3"), FF__STATUS__ST_OK);
	c1 = fx_shim(&fx, "c3");
	c2 = fx_shim(&fx, "c2");
	kfd = fx_tcp_listener(&port);
	rep = fx_listen(c1, kfd, "0.0.0.0", port, &qfd);
	CU_ASSERT_EQUAL_FATAL(rep->status, 0);
	ff__reply__free_unpacked(rep, NULL);
	close(kfd);
	for (int i = 0; i < N; i++) {
		Ff__Accepted *a;
		int sfd;

		rep = fx_overlay_connect(c2, "10.99.0.3", port, &cfd[i]);
		CU_ASSERT_EQUAL_FATAL(rep->status, 0);
		ff__reply__free_unpacked(rep, NULL);
		a = fx_take_accepted(qfd, &sfd);
		CU_ASSERT_PTR_NOT_NULL_FATAL(a);
		ff__accepted__free_unpacked(a, NULL);
		close(sfd);
	}
	k = status_conns_late();
	CU_ASSERT_EQUAL(k, N);
	for (int i = 0; i < N; i++)
		close(cfd[i]);
	close(qfd);
	close(c1);
	close(c2);
	fx_router_stop(&fx);
	fx.max_conns = 0;
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"release", test_release},
		{"status_many", test_status_many},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("conn", tests);
}
