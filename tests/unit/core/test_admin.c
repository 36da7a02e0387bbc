/* ffrouter/core/admin.c through the router's sockets: what ffctl may
 * register (names, addresses, modes of the sockets it creates) and what
 * unregistering a container frees. */
#include "cu.h"
#include "fixture.h"

#include <ff/wire.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct fx_router fx;

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

	fx_up(&fx);
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
	fx_assert_serving(&fx, 3);
	fx_router_stop(&fx);
}

static void test_unregister(void)
{
	char path[160];

	fx_up(&fx);
	CU_ASSERT_EQUAL(fx_unregister(&fx, "nope"), FF__STATUS__ST_NOT_FOUND);
	CU_ASSERT_EQUAL(fx_unregister(&fx, "c2"), FF__STATUS__ST_OK);
	snprintf(path, sizeof(path), "%s/c/c2", fx.dir);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	/* its address is free again */
	CU_ASSERT_EQUAL(fx_register(&fx, "c4", "10.99.0.2"), FF__STATUS__ST_OK);
	fx_router_stop(&fx);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"register_rules", test_register_rules},
		{"unregister", test_unregister},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("admin", tests);
}
