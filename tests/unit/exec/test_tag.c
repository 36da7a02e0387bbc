/* libffshim/real.c under ffexec: with FFNET_EXEC set when the table is
 * filled, the shim's own connect, bind, listen, accept, accept4, getsockname,
 * getpeername, getsockopt, setsockopt and sendto pass ffexec's filter untouched
 * (tagged) and still answer as libc's do, -1 and errno included; without
 * it, the table is libc's and the filter traps them. Each case runs in a
 * fresh filtered child (notif.h): the table is filled once per process.
 * Not run under valgrind (it does not know seccomp(2)). */
#include "cu.h"
#include "notif.h"
#include "ffexec.h"

#include "real.h"

#include <ff/exec.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every tagged entry once, with the kernel's answers; then one libc
 * getsockname, which the filter must trap. */
static int real_body(int out)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in got, peer;
	socklen_t len = sizeof(got), vl = sizeof(int);
	int l, c, acc, v = 1, port;

	ffs_init();
	l = REAL(socket)(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c = REAL(socket)(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || c < 0 || REAL(bind)(l, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 2;
	nt_say(out, "socket-is-libc", REAL(socket) == dlsym(RTLD_NEXT, "socket"));
	nt_say(out, "listen", REAL(listen)(l, 8));
	nt_say(out, "getsockname", REAL(getsockname)(l, (struct sockaddr *)&got, &len));
	port = ntohs(got.sin_port);
	a.sin_port = got.sin_port;
	nt_say(out, "connect", REAL(connect)(c, (struct sockaddr *)&a, sizeof(a)));
	acc = REAL(accept4)(l, NULL, NULL, SOCK_CLOEXEC);
	nt_say(out, "accept4", acc >= 0);
	len = sizeof(peer);
	nt_say(out, "getpeername", REAL(getpeername)(c, (struct sockaddr *)&peer, &len));
	nt_say(out, "peer-port", ntohs(peer.sin_port) == port);
	nt_say(out, "setsockopt", REAL(setsockopt)(c, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)));
	v = 0;
	nt_say(out, "getsockopt", REAL(getsockopt)(c, IPPROTO_TCP, TCP_NODELAY, &v, &vl));
	nt_say(out, "nodelay", v);
	vl = sizeof(int);
	nt_say(out, "getsockopt-type", REAL(getsockopt)(c, SOL_SOCKET, SO_TYPE, &v, &vl));
	nt_say(out, "type", v == SOCK_STREAM);
	nt_say(out, "sendto", REAL(sendto)(c, "x", 1, 0, (struct sockaddr *)&a, sizeof(a)));
	fcntl(l, F_SETFL, O_NONBLOCK);
	nt_say(out, "accept", REAL(accept)(l, NULL, NULL));
	nt_say(out, "bad-fd", REAL(getsockname)(-1, (struct sockaddr *)&got, &len));
	/* libc's own, untagged: trapped */
	len = sizeof(got);
	nt_say(out, "libc", getsockname(l, (struct sockaddr *)&got, &len));
	return 0;
}

static int exec_body(int out)
{
	setenv(FF_ENV_EXEC, "1", 1);
	return real_body(out);
}

static void test_tagged(void)
{
	struct nt_run r;

	CU_ASSERT_FATAL(nt_run(exec_body, &r) == 0);
	CU_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	CU_ASSERT_STRING_EQUAL(r.out, "socket-is-libc 1 0\n"
				      "listen 0 0\n"
				      "getsockname 0 0\n"
				      "connect 0 0\n"
				      "accept4 1 0\n"
				      "getpeername 0 0\n"
				      "peer-port 1 0\n"
				      "setsockopt 0 0\n"
				      "getsockopt 0 0\n"
				      "nodelay 1 0\n"
				      "getsockopt-type 0 0\n"
				      "type 1 0\n"
				      "sendto 1 0\n"
				      "accept -1 11\n"
				      "bad-fd -1 9\n"
				      "libc 0 0\n");
	/* only libc's getsockname reached the supervisor */
	CU_ASSERT_EQUAL(r.ncalls, 1);
	if (r.ncalls >= 1) {
		CU_ASSERT_EQUAL(r.calls[0].nr, SYS_getsockname);
		CU_ASSERT_EQUAL(r.calls[0].args[0] >> 32, 0);
	}
}

/* Without FFNET_EXEC the entries are libc's: every one is trapped. */
static int plain_body(int out)
{
	unsetenv(FF_ENV_EXEC);
	return real_body(out);
}

static void test_plain(void)
{
	static const int want[] = {SYS_bind,	    SYS_listen,	     SYS_getsockname,
				   SYS_connect,	    SYS_getpeername, SYS_setsockopt,
				   SYS_getsockopt,  SYS_getsockopt,  SYS_sendto,
				   SYS_getsockname, SYS_getsockname};
	struct nt_run r;
	int from = 0;

	CU_ASSERT_FATAL(nt_run(plain_body, &r) == 0);
	CU_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "connect 0 0\naccept4 1 0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "libc 0 0\n"));
	/* libc's accept and accept4 may use either call: counted apart */
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CU_ASSERT(nt_find(&r, want[i], &from) >= 0);
	for (int i = 0; i < r.ncalls; i++)
		CU_ASSERT_NOT_EQUAL(r.calls[i].args[0] >> 32, FF_EXEC_TAG);
	CU_ASSERT_EQUAL(r.ncalls, 13); /* the 11 above, accept4 and accept */
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"tagged", test_tagged},
	    {"plain", test_plain},
	    {0},
	};
	int err = nt_available();

	ffe_filter_trap_sendto(true); /* ffexec --sendto: the tagged sendto passes it too */

	if (err) {
		printf("SKIP: no seccomp user notification here: %s\n", strerror(-err));
		return 77;
	}
	return cu_run("ffexec-tag", tests);
}
