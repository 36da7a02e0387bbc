/* ffrouter/core/conn.c through the router's sockets: connection records
 * go with their sockets, and nothing of a container stays behind. */
#include "cu.h"
#include "fixture.h"

#include <dirent.h>
#include <signal.h>
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

int main(void)
{
	static const struct cu_test tests[] = {
		{"release", test_release},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("conn", tests);
}
