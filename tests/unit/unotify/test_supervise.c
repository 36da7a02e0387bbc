/* The seccomp supervisor (ffrouter/unotify) against real programs: test
 * children install a filter that traps the socket set-up calls, the test
 * hands the listener to a router in a thread (fixture.h) on a container's
 * socket, and the children use plain socket calls on overlay addresses
 * that no interface here has: only the supervisor can connect them. */
#include "addr.h"
#include "cu.h"
#include "fixture.h"

#include "msg.h"

#include <ff/exec.h>
#include <ff/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdpass.h"

#define NBYTES (1 << 20)
#define C1_IP  "10.99.0.1"
#define C2_IP  "10.99.0.2"

static struct fx_router fx;

/* Traps the ten calls the supervisor serves; lets the rest through. */
static int install_filter(void)
{
	static const int nrs[] = {SYS_connect,	  SYS_bind,	   SYS_listen,	    SYS_accept,
				  SYS_accept4,	  SYS_getsockname, SYS_getpeername, SYS_getsockopt,
				  SYS_setsockopt, SYS_sendto};
	struct sock_filter f[4 + 2 * 10 + 1];
	struct sock_fprog prog = {.filter = f};
	int n = 0;

	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	for (int i = 0; i < 10; i++) {
		f[n++] =
		    (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nrs[i], 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = (unsigned short)n;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
			    &prog);
}

/* Forks a child that (in a network namespace of its own if newns) installs
 * the filter, sends the listener on *sock (the parent's end, returned)
 * and runs fn(arg) once a byte comes back; its exit status is fn's. */
static pid_t fork_filtered(int (*fn)(int), int arg, bool newns, int *sock)
{
	int sp[2];
	char go;
	pid_t pid;

	*sock = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		int l = newns && unshare(CLONE_NEWNET) < 0 ? -1 : install_filter();

		close(sp[0]);
		if (l < 0 || ff_send_fds(sp[1], "l", 1, &l, 1) < 0)
			_exit(90);
		close(l);
		if (read(sp[1], &go, 1) != 1)
			_exit(91);
		alarm(60); /* a call the supervisor lost hangs: a failure, not a stall */
		_exit(fn(arg));
	}
	close(sp[1]);
	if (pid < 0)
		close(sp[0]);
	else
		*sock = sp[0];
	return pid;
}

/* The parked page that came with the last Supervise answered (-1: none). */
static int spawn_page = -1;

/* A child under the filter, supervised as container name: runs fn(arg)
 * once the router took the listener; its exit status is fn's. *ch gets
 * the keeper's channel (close it once the child is done). */
static pid_t spawn(const char *name, int (*fn)(int), int arg, int *ch)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Supervise m = FF__SUPERVISE__INIT;
	Ff__Reply *rep;
	int sp, lfd = -1, rfds[FF_MAX_FDS], nr = 0, nfds = 0;
	char go = 1;
	uint8_t b;
	pid_t pid;

	*ch = -1;
	pid = fork_filtered(fn, arg, false, &sp);
	if (pid < 0 || ff_recv_fds(sp, &b, 1, &lfd, 1, &nfds, 0) != 1 || nfds != 1)
		goto out;
	*ch = fx_shim(&fx, name);
	m.pid = (uint32_t)pid;
	req.id = 7;
	req.body_case = FF__REQUEST__BODY_SUPERVISE;
	req.supervise = &m;
	rep = *ch >= 0 ? fx_call(*ch, &req, &lfd, 1, rfds, &nr) : NULL;
	CU_ASSERT_PTR_NOT_NULL(rep);
	if (rep) {
		CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_OK);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		CU_ASSERT_EQUAL(nr, 1); /* the parked page */
		if (spawn_page >= 0)
			close(spawn_page);
		spawn_page = nr >= 1 ? rfds[0] : -1;
		if (nr > 1)
			ff_close_fds(rfds + 1, nr - 1);
	}
out:
	if (lfd >= 0)
		close(lfd);
	if (pid > 0 && write(sp, &go, 1) != 1)
		kill(pid, SIGKILL);
	if (sp >= 0)
		close(sp);
	return pid;
}

static int wait_status(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int port_pipe[2];

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static int check_name(int fd, bool peer, const char *ip, uint16_t port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char buf[INET_ADDRSTRLEN];
	int r = peer ? getpeername(fd, (struct sockaddr *)&sin, &len)
		     : getsockname(fd, (struct sockaddr *)&sin, &len);

	if (r < 0 || len != sizeof(sin) || sin.sin_family != AF_INET)
		return -1;
	inet_ntop(AF_INET, &sin.sin_addr, buf, sizeof(buf));
	if (strcmp(buf, ip) || (port && ntohs(sin.sin_port) != port))
		return -1;
	return ntohs(sin.sin_port);
}

static int opt_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, level, name, &v, &len) == 0 && len == sizeof(v) ? v : -2;
}

/* Listens on 0.0.0.0, tells the port, accepts one connection from c2,
 * reads NBYTES of the pattern. */
static int server(int nonblock_accept)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	uint16_t port;
	int one = 1, l, c;
	size_t got = 0;
	uint8_t buf[65536];

	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(l, 16) < 0)
		return 10;
	if (getsockname(l, (struct sockaddr *)&sin, &len) < 0 || sin.sin_family != AF_INET)
		return 11;
	if (opt_int(l, SOL_SOCKET, SO_ACCEPTCONN) != 1 ||
	    opt_int(l, SOL_SOCKET, SO_DOMAIN) != AF_INET)
		return 12;
	port = ntohs(sin.sin_port);
	if (nonblock_accept && (fcntl(l, F_SETFL, O_NONBLOCK) < 0 ||
				accept4(l, NULL, NULL, SOCK_NONBLOCK) >= 0 || errno != EAGAIN))
		return 14;
	if (write(port_pipe[1], &port, sizeof(port)) != sizeof(port))
		return 13;
	if (nonblock_accept) {
		struct pollfd p = {.fd = l, .events = POLLIN};

		if (poll(&p, 1, 5000) != 1 || fcntl(l, F_SETFL, 0) < 0)
			return 15;
	}
	len = sizeof(sin);
	c = accept4(l, (struct sockaddr *)&sin, &len, SOCK_CLOEXEC);
	if (c < 0 || len != sizeof(sin) || sin.sin_addr.s_addr != inet_addr(C2_IP))
		return 16;
	if (check_name(c, true, C2_IP, ntohs(sin.sin_port)) < 0 ||
	    check_name(c, false, C1_IP, port) < 0)
		return 17;
	if (opt_int(c, SOL_SOCKET, SO_DOMAIN) != AF_INET ||
	    opt_int(c, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP)
		return 18;
	while (got < NBYTES) {
		ssize_t n = read(c, buf, sizeof(buf));

		if (n <= 0)
			return 19;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern(got + (size_t)i))
				return 20;
		got += (size_t)n;
	}
	if (write(c, "ok", 2) != 2)
		return 21;
	close(c);
	close(l);
	return 0;
}

#define C_NONBLOCK 1
#define C_SENDTO   2 /* sends with the server's address, as sockperf does */

static int client(int mode)
{
	int nonblock = mode & C_NONBLOCK;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	uint16_t port;
	int fd, one = 1;
	size_t sent = 0;
	uint8_t buf[65536];
	char ok[2];

	if (read(port_pipe[0], &port, sizeof(port)) != sizeof(port))
		return 30;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = inet_addr(C1_IP);
	/* (the sendto client's socket without close-on-exec: the swap keeps either) */
	fd = socket(
	    AF_INET,
	    SOCK_STREAM | (mode & C_SENDTO ? 0 : SOCK_CLOEXEC) | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return 31;
	if (nonblock) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};

		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 || errno != EINPROGRESS)
			return 32;
		if (poll(&p, 1, 5000) != 1 || opt_int(fd, SOL_SOCKET, SO_ERROR) != 0)
			return 33;
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
			return 34;
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 || errno != EISCONN)
			return 35;
		fcntl(fd, F_SETFL, 0);
	} else if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		return 36;
	}
	if (check_name(fd, true, C1_IP, port) < 0 || check_name(fd, false, C2_IP, 0) < 0)
		return 37;
	if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC) != !!(mode & C_SENDTO))
		return 43;
	/* set before the connect, on the TCP socket: still set; a fresh one: TCP's default */
	if (opt_int(fd, IPPROTO_TCP, TCP_NODELAY) != 1 || opt_int(fd, IPPROTO_TCP, TCP_CORK) != 0)
		return 38;
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &(int){77}, sizeof(int)) < 0 ||
	    opt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE) != 77)
		return 39;
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &(int){-1}, sizeof(int)) == 0 ||
	    errno != EINVAL)
		return 40;
	while (sent < NBYTES) {
		size_t n = NBYTES - sent < sizeof(buf) ? NBYTES - sent : sizeof(buf);
		ssize_t w;

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(sent + i);
		if (mode & C_SENDTO)
			w = sendto(fd, buf, n, 0, (struct sockaddr *)&sin, sizeof(sin));
		else
			w = write(fd, buf, n);
		if (w <= 0)
			return 41;
		sent += (size_t)w;
	}
	if (read(fd, ok, 2) != 2 || memcmp(ok, "ok", 2))
		return 42;
	close(fd);
	return 0;
}

/* The end of a test: the keepers' channels and the port pipe closed, the
 * router still serving, then stopped. */
static void finish(int ch1, int ch2)
{
	close(ch1);
	if (ch2 >= 0)
		close(ch2);
	close(port_pipe[0]);
	close(port_pipe[1]);
	fx_assert_serving(&fx, 2);
	fx_router_stop(&fx);
}

static void pair(int nonblock, int cmode)
{
	int ch1, ch2, rc, rs;
	pid_t s, c;

	fx_up(&fx);
	CU_ASSERT_EQUAL_FATAL(pipe2(port_pipe, O_CLOEXEC), 0);
	s = spawn("c1", server, nonblock, &ch1);
	c = spawn("c2", client, cmode, &ch2);
	rc = wait_status(c);
	rs = wait_status(s);
	if (rc || rs)
		fprintf(stderr, "client exit %d, server exit %d\n", rc, rs);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(rs, 0);
	finish(ch1, ch2);
}

static void test_blocking_pair(void)
{
	pair(0, 0);
}

static void test_nonblocking_pair(void)
{
	pair(1, C_NONBLOCK);
}

/* sendto with the peer's address on an accelerated (AF_UNIX) socket: the
 * bytes go, as TCP would send them (AF_UNIX itself says EISCONN) */
static void test_sendto_addr(void)
{
	pair(0, C_SENDTO);
}

/* A connect outside the overlay, and calls on other sockets, are the
 * kernel's, untouched. */
static int plain(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), sv[2];

	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    check_name(fd, true, "127.0.0.1", (uint16_t)port) < 0)
		return 50;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
	    opt_int(sv[0], SOL_SOCKET, SO_DOMAIN) != AF_UNIX)
		return 51;
	if (setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) == 0)
		return 52; /* an AF_UNIX socket has no TCP level */
	if (getsockname(12345, (struct sockaddr *)&sin, &(socklen_t){sizeof(sin)}) == 0 ||
	    errno != EBADF)
		return 53;
	{ /* a datagram with its address: the kernel's */
		int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		int v = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t al = sizeof(a);
		char d[4];

		if (bind(v, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    getsockname(v, (struct sockaddr *)&a, &al) < 0 ||
		    sendto(u, "udp", 3, 0, (struct sockaddr *)&a, sizeof(a)) != 3 ||
		    recv(v, d, sizeof(d), 0) != 3 || memcmp(d, "udp", 3))
			return 54;
		close(u);
		close(v);
	}
	close(fd);
	return 0;
}

static void test_outside_untouched(void)
{
	uint16_t port;
	int l, ch, c;
	pid_t pid;

	fx_up(&fx);
	l = fx_tcp_listener(&port);
	CU_ASSERT_FATAL(l >= 0);
	pid = spawn("c1", plain, port, &ch);
	c = accept(l, NULL, NULL);
	CU_ASSERT(c >= 0);
	CU_ASSERT_EQUAL(wait_status(pid), 0);
	close(c);
	close(l);
	close(ch);
	fx_router_stop(&fx);
}

/* Files that are not seccomp listeners are refused; the router serves on. */
static void test_not_a_listener(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Supervise m = FF__SUPERVISE__INIT;
	int fds[3], rfds[FF_MAX_FDS], nr, sp[2], ch;

	fx_up(&fx);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	fds[0] = eventfd(0, 0);
	fds[1] = sp[0];
	fds[2] = open("/dev/null", O_RDWR);
	ch = fx_shim(&fx, "c1");
	CU_ASSERT_FATAL(ch >= 0);
	req.body_case = FF__REQUEST__BODY_SUPERVISE;
	req.supervise = &m;
	for (int i = 0; i < 3; i++) {
		Ff__Reply *rep;

		req.id = 10 + (uint64_t)i;
		rep = fx_call(ch, &req, &fds[i], 1, rfds, &nr);
		CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
		CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	/* and no fd at all */
	req.id = 20;
	{
		Ff__Reply *rep = fx_call(ch, &req, NULL, 0, rfds, &nr);

		CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
		CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_INVALID);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	close(sp[1]);
	close(ch);
	fx_assert_serving(&fx, 2);
	fx_router_stop(&fx);
}

/* A task killed while its accept waits in the supervisor: the router
 * drops the call and serves on; a later client is not accelerated to a
 * listener that is gone. */
static int block_in_accept(int unused)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port;

	if (bind(l, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&sin, &len) < 0)
		return 60;
	port = ntohs(sin.sin_port);
	if (write(port_pipe[1], &port, sizeof(port)) != sizeof(port))
		return 61;
	accept(l, NULL, NULL);
	return 62;
}

/* A router up and c1 blocked in accept (block_in_accept) on *port; its
 * pid, *ch its keeper's channel. */
static pid_t spawn_accepting(int *ch, uint16_t *port)
{
	pid_t pid;

	fx_up(&fx);
	CU_ASSERT_EQUAL_FATAL(pipe2(port_pipe, O_CLOEXEC), 0);
	pid = spawn("c1", block_in_accept, 0, ch);
	CU_ASSERT_EQUAL(read(port_pipe[0], port, sizeof(*port)), (ssize_t)sizeof(*port));
	return pid;
}

static void test_killed_in_accept(void)
{
	int ch, listeners = -1, n = -1, conns = -1;
	uint16_t port;
	pid_t pid;

	pid = spawn_accepting(&ch, &port);
	for (int i = 0; i < 200 && listeners != 1; i++) {
		usleep(10000);
		fx_status_counts(&fx, &n, &listeners, &conns);
	}
	if (listeners != 1)
		fprintf(stderr, "listeners %d containers %d conns %d\n", listeners, n, conns);
	CU_ASSERT_EQUAL(listeners, 1);
	usleep(50000); /* into the accept */
	kill(pid, SIGKILL);
	CU_ASSERT_EQUAL(wait_status(pid), 128 + SIGKILL);
	for (int i = 0; i < 300 && listeners != 0; i++) {
		usleep(10000);
		fx_status_counts(&fx, &n, &listeners, &conns);
	}
	CU_ASSERT_EQUAL(listeners, 0);
	finish(ch, -1);
}

static int keeps; /* keeps of a listener seen on a keeper's channel */

static bool parked_has(const struct ff_parked_page *pg, uint64_t id)
{
	for (int k = 0; k < FF_PARKED_SLOTS; k++)
		if (__atomic_load_n(&pg->slot[k].id, __ATOMIC_ACQUIRE) == id)
			return true;
	return false;
}

/* Adopt with id, task, call: the router's status. */
static Ff__Status adopt(int ch, uint64_t id, uint32_t tid, uint32_t nr, const uint64_t *args)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Adopt m = FF__ADOPT__INIT;
	uint64_t a[4];
	int rfds[FF_MAX_FDS], n = 0;
	Ff__Reply *rep;
	Ff__Status st;

	memcpy(a, args, sizeof(a));
	m.id = id;
	m.tid = tid;
	m.nr = nr;
	m.n_args = 4;
	m.args = a;
	req.id = 30;
	req.body_case = FF__REQUEST__BODY_ADOPT;
	req.adopt = &m;
	CU_ASSERT_FATAL(ff_msg_send(ch, &req.base, NULL, 0) == 0);
	/* (the router's unasked keep of the listener may come first) */
	while ((rep = fx_recv(ch, rfds, &n)) && rep->id == 0) {
		if (rep->body_case == FF__REPLY__BODY_KEEP && n == 2)
			keeps++;
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		ff_close_fds(rfds, n);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	st = rep->status;
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	ff_close_fds(rfds, n);
	return st;
}

/* The router shows the keeper the calls it holds in a page the keeper can
 * only read; an Adopt (a keeper handing back a call a dead router held) is
 * refused unless it names a pending accept of a task of the container that
 * this router does not hold already, from that keeper's own channel. */
static void test_parked_page(void)
{
	struct ff_parked_page *pg;
	struct ff_parked e = {0};
	int ch, other, listeners = -1, n = -1, conns = -1;
	uint16_t port;
	pid_t pid;

	pid = spawn_accepting(&ch, &port);
	CU_ASSERT_FATAL(spawn_page >= 0);
	for (int i = 0; i < 200 && listeners != 1; i++) {
		usleep(10000);
		fx_status_counts(&fx, &n, &listeners, &conns);
	}
	/* the keeper's copy cannot write */
	CU_ASSERT_PTR_EQUAL(
	    mmap(NULL, sizeof(*pg), PROT_READ | PROT_WRITE, MAP_SHARED, spawn_page, 0), MAP_FAILED);
	pg = mmap(NULL, sizeof(*pg), PROT_READ, MAP_SHARED, spawn_page, 0);
	CU_ASSERT_FATAL(pg != MAP_FAILED);
	CU_ASSERT_EQUAL(pg->magic, FF_PARKED_MAGIC);
	for (int i = 0; i < 200 && !e.id; i++) { /* the accept, parked */
		for (int k = 0; k < FF_PARKED_SLOTS && !e.id; k++)
			if (__atomic_load_n(&pg->slot[k].id, __ATOMIC_ACQUIRE) &&
			    pg->slot[k].nr == SYS_accept && pg->slot[k].tid == (uint32_t)pid)
				e = pg->slot[k];
		if (!e.id)
			usleep(10000);
	}
	CU_ASSERT_NOT_EQUAL_FATAL(e.id, 0);
	CU_ASSERT_EQUAL(adopt(ch, e.id, e.tid, e.nr, e.args), FF__STATUS__ST_INVALID); /* held */
	CU_ASSERT_EQUAL(adopt(ch, e.id + 1000, e.tid, e.nr, e.args), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(adopt(ch, e.id, e.tid, SYS_connect, e.args), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(adopt(ch, e.id, 1, e.nr, e.args), FF__STATUS__ST_INVALID);
	CU_ASSERT_EQUAL(keeps, 1);  /* the listener's queue and kernel socket */
	other = fx_shim(&fx, "c1"); /* a shim of the same container, no keeper */
	CU_ASSERT_FATAL(other >= 0);
	CU_ASSERT_EQUAL(adopt(other, e.id, e.tid, e.nr, e.args), FF__STATUS__ST_INVALID);
	close(other);
	kill(pid, SIGKILL);
	CU_ASSERT_EQUAL(wait_status(pid), 128 + SIGKILL);
	/* the call's task is gone: the router drops it from the page */
	for (int i = 0; i < 300 && parked_has(pg, e.id); i++)
		usleep(10000);
	CU_ASSERT_FALSE(parked_has(pg, e.id));
	munmap(pg, sizeof(*pg));
	close(spawn_page);
	spawn_page = -1;
	finish(ch, -1);
}

/* The next keep of a listener on a keeper's channel (fds: stash, queue
 * end), or NULL; the caller frees it and closes *fds. */
static Ff__Reply *next_keep(int ch, int *fds)
{
	int rfds[FF_MAX_FDS], n = 0;
	Ff__Reply *rep;

	while ((rep = fx_recv(ch, rfds, &n))) {
		if (rep->id == 0 && rep->body_case == FF__REPLY__BODY_KEEP && n == 2) {
			fds[0] = rfds[0];
			fds[1] = rfds[1];
			return rep;
		}
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		ff_close_fds(rfds, n);
	}
	return NULL;
}

static ino_t ino_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* The kernel listener in a stash (-1: empty). */
static int from_stash(int stash)
{
	int fds[FF_MAX_FDS], n = 0;
	char b;

	if (ff_recv_fds(stash, &b, 1, fds, FF_MAX_FDS, &n, MSG_DONTWAIT) != 1 || n != 1) {
		ff_close_fds(fds, n);
		return -1;
	}
	return fds[0];
}

/* A keeper whose channel was lost, not the router, hands its listener
 * back to the same router (Relisten with the kernel listener taken out of
 * its stash): the router, which knows the queue, says OK and keeps it
 * with a stash that holds the kernel listener again. */
static void test_keep_same_router(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	struct ff_listen_msg lm;
	struct ff_sa any = {.ip.family = AF_INET};
	Ff__Reply *keep, *rep;
	int ch, kfd, k2, fds[2], rfds[FF_MAX_FDS], n = 0;
	uint16_t port;
	ino_t kino;
	pid_t pid;

	pid = spawn_accepting(&ch, &port);
	keep = next_keep(ch, fds);
	CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
	kfd = from_stash(fds[0]);
	CU_ASSERT_FATAL(kfd >= 0);
	kino = ino_of(kfd);
	CU_ASSERT_EQUAL(from_stash(fds[0]), -1); /* one copy only */
	close(fds[0]);
	any.port = port;
	ff_listen_to_proto(&lm, &any, 4, false, keep->keep->queue_inode);
	req.id = 31;
	req.body_case = FF__REQUEST__BODY_RELISTEN;
	req.relisten = &lm.m;
	fds[0] = kfd;
	CU_ASSERT_FATAL(ff_msg_send(ch, &req.base, fds, 2) == 0);
	ff_close_fds(fds, 2);
	protobuf_c_message_free_unpacked(&keep->base, NULL);
	while ((rep = fx_recv(ch, rfds, &n)) && rep->id != 31) { /* (a keep may come first) */
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		ff_close_fds(rfds, n);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_EQUAL(rep->status, FF__STATUS__ST_OK);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	ff_close_fds(rfds, n);
	keep = next_keep(ch, fds);
	CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
	k2 = from_stash(fds[0]);
	CU_ASSERT(k2 >= 0);
	CU_ASSERT_EQUAL(ino_of(k2), kino);
	if (k2 >= 0)
		close(k2);
	ff_close_fds(fds, 2);
	protobuf_c_message_free_unpacked(&keep->base, NULL);
	kill(pid, SIGKILL);
	CU_ASSERT_EQUAL(wait_status(pid), 128 + SIGKILL);
	finish(ch, -1);
}

/* Listens on one port, closes, and listens there again, RELISTENS times,
 * as a server restarting its listener or ffconform's next check does. The
 * kernel frees the port at close; so must ffnet, though the keeper holds a
 * copy of each kernel listener (here: its keeps wait unread in the test's
 * channel) and the router learns of the close only from its loop. reuse:
 * SO_REUSEADDR first. 0, or 70 + the iteration's step that failed. */
#define RELISTENS 40
static int relisten(int reuse)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	for (int i = 0; i < RELISTENS; i++) {
		int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

		if (l < 0 || (reuse && setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))))
			return 70;
		if (bind(l, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
			fprintf(stderr, "relisten %d: bind: %s\n", i, strerror(errno));
			return 71;
		}
		if (listen(l, 4) < 0) {
			fprintf(stderr, "relisten %d: listen: %s\n", i, strerror(errno));
			return 72;
		}
		if (!i && getsockname(l, (struct sockaddr *)&sin, &len) < 0)
			return 73;
		close(l);
	}
	return 0;
}

static void relisten_run(int reuse)
{
	int ch, st;
	pid_t pid;

	fx_up(&fx);
	CU_ASSERT_EQUAL_FATAL(pipe2(port_pipe, O_CLOEXEC), 0);
	pid = spawn("c1", relisten, reuse, &ch);
	st = wait_status(pid);
	CU_ASSERT_EQUAL(st, 0);
	finish(ch, -1);
}

static void test_relisten_reuse(void)
{
	relisten_run(1);
}

static void test_relisten_plain(void)
{
	relisten_run(0);
}

/* A target that changes its memory between the notification and the
 * answer: one thread connects to an address another thread keeps flipping
 * between c1's listener (overlay) and a kernel listener on loopback. The
 * supervisor reads the address once and decides on that copy; whatever
 * each connect then says, the program runs to its end, the router serves
 * on, and a clean pair afterwards is served as before. */
static struct sockaddr_in flip_sa;
static volatile int flip_stop;
static struct sockaddr_in flip_a, flip_b;

static void *flipper(void *arg)
{
	/* flips now and then within a call, between calls too: torn reads,
	 * c1's address and the loopback one all reach the supervisor */
	for (unsigned i = 0; !flip_stop; i++) {
		memcpy((void *)&flip_sa, i & 1 ? &flip_a : &flip_b, sizeof(flip_sa));
		if (i % 4 == 0)
			usleep(20);
	}
	return NULL;
}

static int racer(int lport)
{
	uint16_t port;
	pthread_t t;
	int bad = 0;

	if (read(port_pipe[0], &port, sizeof(port)) != sizeof(port))
		return 70;
	flip_a = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port)};
	flip_a.sin_addr.s_addr = inet_addr(C1_IP);
	flip_b = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
	flip_b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	flip_sa = flip_a;
	if (pthread_create(&t, NULL, flipper, NULL))
		return 71;
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int r = connect(fd, (struct sockaddr *)&flip_sa, sizeof(flip_sa));

		/* what a non-blocking TCP connect may say to either address
		 * (EINPROGRESS also to c1's, the kernel's answer if the kernel saw it) */
		if (r < 0 && errno != EINPROGRESS && errno != ECONNREFUSED &&
		    errno != ENETUNREACH && errno != EHOSTUNREACH)
			bad++;
		/* connected (c1's at once, the kernel's if the backlog had room):
		 * to one of the two, never to a mix */
		errno = 0;
		if (check_name(fd, true, C1_IP, port) < 0 &&
		    check_name(fd, true, "127.0.0.1", (uint16_t)lport) < 0 && errno != ENOTCONN)
			bad++;
		close(fd);
	}
	flip_stop = 1;
	pthread_join(t, NULL);
	return bad ? 72 : 0;
}

static void test_memory_changed(void)
{
	int ch1, ch2, l, rs;
	uint16_t lport;
	pid_t s, c;

	fx_up(&fx);
	CU_ASSERT_EQUAL_FATAL(pipe2(port_pipe, O_CLOEXEC), 0);
	l = fx_tcp_listener(&lport);
	CU_ASSERT_FATAL(l >= 0);
	s = spawn("c1", block_in_accept, 0, &ch1);
	c = spawn("c2", racer, lport, &ch2);
	CU_ASSERT_EQUAL(wait_status(c), 0);
	kill(s, SIGKILL);
	rs = wait_status(s);
	CU_ASSERT(rs == 128 + SIGKILL || rs == 62);
	close(l);
	finish(ch1, ch2);
	/* and a clean pair on a fresh router, as before */
	pair(0, 0);
}

/* ---- a listener whose tasks live outside the container's netns ----
 * A keeper inside container c3's network namespace hands over the
 * listener of a filter whose task is in another namespace (here, the
 * test's): every call of that task must stay the kernel's, since the
 * container may only act as itself. */

/* The task, in a network namespace of its own with nothing in it: a
 * connect to c1's overlay listener. The kernel's answer is ENETUNREACH
 * (and no packet leaves); had the supervisor served it for c3, it would
 * connect. */
static int outside_task(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = inet_addr(C1_IP);
	if (c < 0)
		return 10;
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) == 0)
		return 20;
	return errno == ENETUNREACH ? 0 : 21;
}

/* The keeper, in a network namespace of its own: says unshare's errno on
 * sock, then takes a pid and a listener, supervises them as c3, says the
 * status and keeps its channel until sock ends. */
static void outside_keeper(int sock)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Supervise m = FF__SUPERVISE__INIT;
	Ff__Reply *rep;
	int err = unshare(CLONE_NEWNET) < 0 ? errno : 0, lfd = -1, nfds = 0, ch, st = -1;
	int rfds[FF_MAX_FDS], nr = 0;
	pid_t pid;
	char c;

	if (write(sock, &err, sizeof(err)) != sizeof(err) || err)
		_exit(1);
	if (ff_recv_fds(sock, &pid, sizeof(pid), &lfd, 1, &nfds, 0) != sizeof(pid) || nfds != 1)
		_exit(2);
	ch = fx_shim(&fx, "c3");
	m.pid = (uint32_t)pid;
	req.id = 7;
	req.body_case = FF__REQUEST__BODY_SUPERVISE;
	req.supervise = &m;
	rep = ch >= 0 ? fx_call(ch, &req, &lfd, 1, rfds, &nr) : NULL;
	if (rep) {
		st = (int)rep->status;
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	close(lfd);
	if (write(sock, &st, sizeof(st)) != sizeof(st))
		_exit(3);
	while (read(sock, &c, 1) > 0 || errno == EINTR)
		;
	_exit(0);
}

static void test_outside_netns(void)
{
	int ks[2], ts, err = -1, st = -1, lfd = -1, nfds = 0, ch1, containers, listeners, conns;
	char ns[64], go = 1;
	uint16_t port = 0;
	pid_t k, t, srv;
	uint8_t b;

	fx_up(&fx);
	CU_ASSERT_EQUAL_FATAL(pipe2(port_pipe, O_CLOEXEC), 0);
	srv = spawn("c1", server, 0, &ch1); /* c1's overlay listener */
	CU_ASSERT_EQUAL_FATAL(read(port_pipe[0], &port, sizeof(port)), (ssize_t)sizeof(port));
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ks), 0);
	k = fork();
	if (k == 0) {
		close(ks[0]);
		outside_keeper(ks[1]);
	}
	close(ks[1]);
	CU_ASSERT_FATAL(k > 0);
	CU_ASSERT_EQUAL_FATAL(read(ks[0], &err, sizeof(err)), (ssize_t)sizeof(err));
	if (err)
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(err));
	CU_ASSERT_EQUAL_FATAL(err, 0); /* needs CAP_SYS_ADMIN, as the suite's root has */
	snprintf(ns, sizeof(ns), "/proc/%d/ns/net", (int)k);
	CU_ASSERT_EQUAL_FATAL(fx_register_netns(&fx, "c3", "10.99.0.3", ns), FF__STATUS__ST_OK);

	/* the task, in a namespace of its own, under the filter */
	t = fork_filtered(outside_task, port, true, &ts);
	CU_ASSERT_FATAL(t > 0);
	CU_ASSERT_EQUAL(ff_recv_fds(ts, &b, 1, &lfd, 1, &nfds, 0), 1);
	CU_ASSERT_EQUAL(nfds, 1);
	/* the keeper inside may supervise: its channel is c3's */
	CU_ASSERT(ff_send_fds(ks[0], &t, sizeof(t), &lfd, 1) == 0);
	CU_ASSERT_EQUAL(read(ks[0], &st, sizeof(st)), (ssize_t)sizeof(st));
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_OK);
	if (lfd >= 0)
		close(lfd);
	/* but the task is not c3's: its connect is the kernel's */
	CU_ASSERT_EQUAL(write(ts, &go, 1), 1);
	CU_ASSERT_EQUAL(wait_status(t), 0);
	CU_ASSERT_EQUAL(fx_status_counts(&fx, &containers, &listeners, &conns), 0);
	CU_ASSERT_EQUAL(containers, 3);
	CU_ASSERT_EQUAL(conns, 0);
	kill(srv, SIGKILL);
	CU_ASSERT_EQUAL(wait_status(srv), 128 + SIGKILL);
	close(ts);
	close(ks[0]);
	CU_ASSERT_EQUAL(wait_status(k), 0);
	close(ch1);
	close(port_pipe[0]);
	close(port_pipe[1]);
	fx_assert_serving(&fx, 3);
	fx_router_stop(&fx);
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"blocking_pair", test_blocking_pair},
	    {"nonblocking_pair", test_nonblocking_pair},
	    {"sendto_addr", test_sendto_addr},
	    {"outside_untouched", test_outside_untouched},
	    {"not_a_listener", test_not_a_listener},
	    {"killed_in_accept", test_killed_in_accept},
	    {"parked_page", test_parked_page},
	    {"memory_changed", test_memory_changed},
	    {"outside_netns", test_outside_netns},
	    {"relisten_reuse", test_relisten_reuse},
	    {"relisten_plain", test_relisten_plain},
	    {"keep_same_router", test_keep_same_router},
	    {NULL, NULL},
	};
	int l;

	signal(SIGPIPE, SIG_IGN);
	/* seccomp user notification needs Linux 5.0+ (ADDFD 5.9) */
	l = (int)syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &(struct seccomp_notif_sizes){0});
	if (l < 0) {
		printf("SKIP: no seccomp user notification here (%s)\n", strerror(errno));
		return 77;
	}
	return cu_run("supervise", tests);
}
