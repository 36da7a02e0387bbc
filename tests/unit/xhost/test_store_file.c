/* ffrouter/xhost/store-file.c, the default locality store, through the
 * router's sockets: registrations survive a restart, and a state file
 * with lines that do not parse loses none of the others. */
#include "cu.h"
#include "fixture.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static struct fx_router fx;

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
	fx_assert_serving(&fx, 1);
	/* the unreadable original is kept, nothing lost */
	snprintf(path, sizeof(path), "%s/state.bad", fx.dir);
	CU_ASSERT_EQUAL(access(path, R_OK), 0);
	fx_router_stop(&fx);
}

/* What ffctl registered and unregistered is what a restarted router has:
 * c1 and c4 come back (c4's socket too), c2 stays gone. */
static void test_restart_keeps_registrations(void)
{
	int fd;

	fx_up(&fx);
	CU_ASSERT_EQUAL_FATAL(fx_unregister(&fx, "c2"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(fx_register(&fx, "c4", "10.99.0.2"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(fx_router_restart(&fx), 0);
	fx_assert_serving(&fx, 2);
	fd = fx_shim(&fx, "c4");
	CU_ASSERT(fd >= 0);
	close(fd);
	CU_ASSERT_EQUAL(fx_register(&fx, "c5", "10.99.0.1"), FF__STATUS__ST_ADDR_IN_USE);
	fx_router_stop(&fx);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"state_file_bad_line", test_state_file_bad_line},
		{"restart_keeps_registrations", test_restart_keeps_registrations},
		{0},
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("store_file", tests);
}
