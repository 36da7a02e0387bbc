/* ffexec/filter.c: which calls the filter sends to the supervisor and
 * which it lets through, checked on the notifications a real listener
 * delivers (notif.h), and that every call still gives the kernel's answer
 * once continued. Also: no_new_privs is set only when the kernel demands
 * it. Not run under valgrind (it does not know seccomp(2)); exits 77 where
 * the kernel has no user notification. */
#include "cu.h"
#include "notif.h"

#include "ffexec.h"

#include <ff/exec.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define TAG(fd)	  ((long)((unsigned long)FF_EXEC_TAG << 32 | (unsigned int)(fd)))
#define OTHER(fd) ((long)(0x12345678UL << 32 | (unsigned int)(fd)))
#define HI(x)	  ((long)(1UL << 32 | (unsigned int)(x)))
#define X32_BIT	  0x40000000L

static int tcp(void)
{
	return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Each call, in order, with its result; the expected notifications and
 * lines are in test_trapped. */
static int calls_body(int out)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
	struct sockaddr_un u = {.sun_family = AF_UNIX, .sun_path = "/nonexistent/ffexec-test"};
	struct sockaddr_in got;
	socklen_t len = sizeof(got), vl = sizeof(int);
	int l = tcp(), c = tcp(), c2 = tcp(), c3 = tcp(), c4 = tcp(), v = 1;
	int us = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ub = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ud = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (l < 0 || c < 0 || c2 < 0 || c3 < 0 || c4 < 0 || us < 0 || ub < 0 || ud < 0 ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 2;
	nt_say(out, "listen", listen(l, 8));
	nt_say(out, "getsockname", getsockname(l, (struct sockaddr *)&got, &len));
	a.sin_port = got.sin_port;
	memset(&got, 0, sizeof(got));
	nt_say(out, "tagged-getsockname",
	       syscall(SYS_getsockname, TAG(l), (struct sockaddr *)&got, &len));
	nt_say(out, "same-port", got.sin_port == a.sin_port);
	nt_say(out, "connect-16", connect(c, (struct sockaddr *)&a, sizeof(a)));
	nt_say(out, "accept4", accept4(l, NULL, NULL, SOCK_CLOEXEC) >= 0);
	nt_say(out, "unix-connect", connect(us, (struct sockaddr *)&u, sizeof(u)));
	/* AF_UNIX autobind (an address of 2 bytes): not trapped */
	nt_say(out, "unix-bind", bind(ub, (struct sockaddr *)&u, sizeof(sa_family_t)));
	/* SO_ERROR passes (Go reads it after every non-blocking connect;
	 * the kernel's answer is right on either socket), SO_DOMAIN traps */
	nt_say(out, "getsockopt-error", getsockopt(c, SOL_SOCKET, SO_ERROR, &v, &vl));
	nt_say(out, "getsockopt-socket", getsockopt(c, SOL_SOCKET, SO_DOMAIN, &v, &vl));
	nt_say(out, "getsockopt-tcp", getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, &vl));
	nt_say(out, "getsockopt-ip", getsockopt(c, IPPROTO_IP, IP_TTL, &v, &vl));
	/* refused by an IPv4 TCP socket (ENOPROTOOPT or EOPNOTSUPP, by kernel) */
	nt_say(out, "getsockopt-ipv6", getsockopt(c, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl) < 0);
	nt_say(out, "getsockopt-udp", getsockopt(c, IPPROTO_UDP, 1, &v, &vl) < 0);
	v = 1;
	nt_say(out, "setsockopt-socket", setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v)));
	nt_say(out, "setsockopt-tcp", setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)));
	nt_say(out, "setsockopt-ip", setsockopt(c, IPPROTO_IP, IP_TOS, &v, sizeof(v)));
	len = sizeof(got);
	nt_say(out, "getpeername", getpeername(c, (struct sockaddr *)&got, &len));
	fcntl(l, F_SETFL, O_NONBLOCK);
	nt_say(out, "accept", syscall(SYS_accept, l, NULL, NULL));
	nt_say(out, "tagged-connect", syscall(SYS_connect, TAG(c2), &a, sizeof(a)));
	nt_say(out, "connect-28", connect(c3, (struct sockaddr *)&a6, sizeof(a6)));
	nt_say(out, "connect-8", connect(c3, (struct sockaddr *)&a, 8));
	nt_say(out, "connect-hi16", syscall(SYS_connect, c4, &a, HI(sizeof(a))));
	nt_say(out, "getsockopt-hi6",
	       syscall(SYS_getsockopt, c, HI(IPPROTO_TCP), TCP_NODELAY, &v, &vl));
	len = sizeof(got);
	nt_say(out, "other-tag", syscall(SYS_getsockname, OTHER(l), &got, &len));
	nt_say(out, "tagged-getsockopt",
	       syscall(SYS_getsockopt, TAG(c), SOL_SOCKET, SO_TYPE, &v, &vl));
	/* c2's connection, made since the untagged accept */
	nt_say(out, "tagged-accept4", syscall(SYS_accept4, TAG(l), NULL, NULL, 0) >= 0);
	/* sendto: only with an address, whichever half of the pointer is set */
	nt_say(out, "send", send(c, "x", 1, MSG_NOSIGNAL));
	nt_say(out, "sendto-null", sendto(c, "x", 1, MSG_NOSIGNAL, NULL, 0));
	nt_say(out, "sendto-addr", sendto(ud, "x", 1, 0, (struct sockaddr *)&a, sizeof(a)));
	nt_say(out, "sendto-hi", syscall(SYS_sendto, ud, "x", 1, 0, 1L << 32, sizeof(a)));
	/* x32 ABI: through, whatever the kernel then says (usually ENOSYS) */
	syscall(X32_BIT | SYS_connect, c4, &a, sizeof(a));
	return 0;
}

static const char calls_out[] = "listen 0 0\n"
				"getsockname 0 0\n"
				"tagged-getsockname 0 0\n"
				"same-port 1 0\n"
				"connect-16 0 0\n"
				"accept4 1 0\n"
				"unix-connect -1 2\n"
				"unix-bind 0 0\n"
				"getsockopt-error 0 0\n"
				"getsockopt-socket 0 0\n"
				"getsockopt-tcp 0 0\n"
				"getsockopt-ip 0 0\n"
				"getsockopt-ipv6 1 0\n"
				"getsockopt-udp 1 0\n"
				"setsockopt-socket 0 0\n"
				"setsockopt-tcp 0 0\n"
				"setsockopt-ip 0 0\n"
				"getpeername 0 0\n"
				"accept -1 11\n"
				"tagged-connect 0 0\n"
				"connect-28 -1 97\n"
				"connect-8 -1 22\n"
				"connect-hi16 0 0\n"
				"getsockopt-hi6 0 0\n"
				"other-tag 0 0\n"
				"tagged-getsockopt 0 0\n"
				"tagged-accept4 1 0\n"
				"send 1 0\n"
				"sendto-null 1 0\n"
				"sendto-addr 1 0\n"
				"sendto-hi -1 14\n";

/* A notification expected: its number and, when arg >= 0, the low 32
 * bits of that argument. */
struct want {
	int nr, arg;
	unsigned int val;
};

static void test_trapped(void)
{
	static const struct want want[] = {
	    {SYS_bind, 2, 16},
	    {SYS_listen, -1, 0},
	    {SYS_getsockname, -1, 0},
	    {SYS_connect, 2, 16},
	    {SYS_accept4, -1, 0},
	    {SYS_getsockopt, 2, SO_DOMAIN},
	    {SYS_getsockopt, 1, IPPROTO_TCP},
	    {SYS_getsockopt, 1, IPPROTO_IP},
	    {SYS_getsockopt, 1, IPPROTO_IPV6},
	    {SYS_setsockopt, 1, IPPROTO_TCP},
	    {SYS_setsockopt, 1, IPPROTO_IP},
	    {SYS_getpeername, -1, 0},
	    {SYS_accept, -1, 0},
	    {SYS_connect, 2, 28},
	    {SYS_connect, 2, 16},
	    {SYS_getsockopt, 1, IPPROTO_TCP},
	    {SYS_getsockname, -1, 0},
	    {SYS_sendto, -1, 0},
	    {SYS_sendto, 4, 0},
	};
	const int nwant = sizeof(want) / sizeof(want[0]);
	struct nt_run r;

	ffe_filter_trap_sendto(true); /* ffexec --sendto */
	CU_ASSERT_FATAL(nt_run(calls_body, &r) == 0);
	ffe_filter_trap_sendto(false);
	CU_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	CU_ASSERT_STRING_EQUAL(r.out, calls_out);
	if (strcmp(r.out, calls_out))
		printf("\n%s", r.out);
	CU_ASSERT_EQUAL(r.ncalls, nwant);
	for (int i = 0; i < r.ncalls && i < nwant; i++) {
		const struct nt_call *c = &r.calls[i];

		CU_ASSERT_EQUAL(c->nr, want[i].nr);
		CU_ASSERT_EQUAL(c->pid, (uint32_t)r.pid);
		if (want[i].arg >= 0)
			CU_ASSERT_EQUAL((unsigned int)c->args[want[i].arg], want[i].val);
		if (c->nr != want[i].nr)
			printf("\n  call %d: nr %d, want %d ", i, c->nr, want[i].nr);
	}
	/* the connect with the upper half set arrived as the program made it */
	if (r.ncalls == nwant)
		CU_ASSERT_EQUAL(r.calls[14].args[2] >> 32, 1);
}

/* Without --sendto no send is trapped, with an address or not (a UDP
 * program must not pay a trip per datagram). */
static int sendto_body(int out)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int v = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	char b[2];

	if (u < 0 || v < 0 || bind(v, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(v, (struct sockaddr *)&a, &len) < 0)
		return 2;
	nt_say(out, "sendto-addr", sendto(u, "x", 1, 0, (struct sockaddr *)&a, sizeof(a)));
	nt_say(out, "recv", recv(v, b, sizeof(b), 0));
	return 0;
}

static void test_sendto_default(void)
{
	struct nt_run r;

	CU_ASSERT_FATAL(nt_run(sendto_body, &r) == 0);
	CU_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	CU_ASSERT_STRING_EQUAL(r.out, "sendto-addr 1 0\nrecv 1 0\n");
	/* the bind and getsockname only */
	CU_ASSERT_EQUAL(r.ncalls, 2);
	if (r.ncalls == 2) {
		CU_ASSERT_EQUAL(r.calls[0].nr, SYS_bind);
		CU_ASSERT_EQUAL(r.calls[1].nr, SYS_getsockname);
	}
}

/* No socket call at all: no notification; the filter costs nothing else. */
static int quiet_body(int out)
{
	char buf[4];
	int p[2];

	if (pipe(p) < 0 || write(p[1], "abc", 3) != 3 || read(p[0], buf, 3) != 3)
		return 2;
	nt_say(out, "pid", getpid() > 0);
	return 0;
}

static void test_quiet(void)
{
	struct nt_run r;

	CU_ASSERT_FATAL(nt_run(quiet_body, &r) == 0);
	CU_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	CU_ASSERT_STRING_EQUAL(r.out, "pid 1 0\n");
	CU_ASSERT_EQUAL(r.ncalls, 0);
}

static int has_sys_admin(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];

	return syscall(SYS_capget, &h, d) == 0 && (d[0].effective & (1u << CAP_SYS_ADMIN));
}

/* Exit status: 1 installed with no_new_privs set, 2 installed without,
 * 3 not installed, 4 could not drop CAP_SYS_ADMIN. */
static int install_status(int drop)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
		struct __user_cap_data_struct d[2];
		int fd;

		if (drop) {
			if (syscall(SYS_capget, &h, d) < 0)
				_exit(4);
			d[0].effective &= ~(1u << CAP_SYS_ADMIN);
			if (syscall(SYS_capset, &h, d) < 0)
				_exit(4);
		}
		fd = ffe_filter_install();
		if (fd < 0)
			_exit(3);
		_exit(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 1 : 2);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void test_no_new_privs(void)
{
	/* without CAP_SYS_ADMIN the kernel wants no_new_privs: set, installed */
	CU_ASSERT_EQUAL(install_status(1), 1);
	/* with it, no_new_privs stays off (setuid programs keep working) */
	if (has_sys_admin()) {
		CU_ASSERT_EQUAL(install_status(0), 2);
	} else {
		printf("(no CAP_SYS_ADMIN: only the first half) ");
	}
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"trapped", test_trapped},
	    {"quiet", test_quiet},
	    {"sendto_default", test_sendto_default},
	    {"no_new_privs", test_no_new_privs},
	    {0},
	};
	int err = nt_available();

	if (err) {
		printf("SKIP: no seccomp user notification here: %s\n", strerror(-err));
		return 77;
	}
	return cu_run("ffexec-filter", tests);
}
