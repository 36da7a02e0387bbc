/* sc-relay.c - one connection served in turn by several processes and
 * threads, byte-exact.
 *
 * The client streams RELAY_TURNS chunks of a known pattern and reads back
 * each byte XOR 0x5a. On the server, the chunks are relayed in turn by:
 * the process that accepted, a forked child, the accepting process, an
 * image started with posix_spawn that inherits the fd (hidden subcommand
 * "relay-child"), the accepting process, a spawned helper that gets the fd
 * through SCM_RIGHTS after the server closed its own copy ("relay-helper",
 * which passes it back), and the accepting process again with the fd it got
 * back. Then RELAY_WRITERS threads send records at once, each of its own
 * byte, and the client counts every byte value; both ends shut down and
 * see EOF. Over TCP all of this holds; a relay that reads the doorbell's
 * bytes, loses a ring to a close in another process, or races two
 * writers, prints another line.
 *
 * Scenario "noshim": the server relays the stream's first chunk, then
 * hands the connection (after fork, then on a second one after vfork) to
 * an exec'd image that does not load the shim
 * (ourselves with LD_PRELOAD taken out of the environment: hidden
 * subcommand "noshim-child") and closes its own copy at once. The image
 * relays the rest, sees the client's EOF, and shuts down; the client
 * checks every byte and the EOF. Over rings the image gets a plain socket
 * behind the shim's relay (libffshim/sock/exec.c); were the rings' socket
 * handed over as it is, the image would read the doorbell's bytes.
 *
 * Children print nothing: they report through their exit status (the
 * number of the check that failed, 0 when all passed). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ffconform.h"

#define RELAY_CHUNK (96u << 10) /* spans a ring's wrap at the 256 KiB the rings test uses */
#define RELAY_TURNS 7
#define RELAY_WRITERS 4
#define RELAY_RECORDS 200
#define RELAY_RECORD 1000
#define NOSHIM_FIRST (96u << 10)
#define NOSHIM_TOTAL (3u << 20)

extern char **environ;

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 9) + 7);
}

/* Relays len bytes from offset off of the stream: reads them, checks the
 * pattern, sends each back XOR 0x5a. 0, -EPROTO on a wrong byte, or a
 * negative errno. */
static int relay(int fd, uint64_t off, size_t len)
{
	uint8_t buf[16384];

	while (len > 0) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		int r = io_read_full(fd, buf, n);

		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			if (buf[i] != pattern(off + i))
				return -EPROTO;
			buf[i] ^= 0x5a;
		}
		r = io_write_all(fd, buf, n);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

/* Starts ourselves as `ffconform SUB A B C` with posix_spawn (no fork
 * handlers run: the new image is the only other holder); -1 on failure. */
static pid_t spawn_self(const char *sub, const char *a, const char *b, const char *c)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *argv[] = {"ffconform", (char *)sub, (char *)a, (char *)b, (char *)c, NULL};
	pid_t pid;

	exe[n > 0 ? n : 0] = '\0';
	if (posix_spawn(&pid, n > 0 ? exe : "/proc/self/exe", NULL, NULL, argv, environ) != 0)
		return -1;
	return pid;
}

/* A message of one byte with room for one fd (SCM_RIGHTS). */
struct fd_msg {
	char c;
	struct iovec v;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m;
};

static void fd_msg_init(struct fd_msg *f)
{
	memset(f, 0, sizeof(*f));
	f->c = 'f';
	f->v = (struct iovec){.iov_base = &f->c, .iov_len = 1};
	f->m = (struct msghdr){.msg_iov = &f->v, .msg_iovlen = 1, .msg_control = f->u.buf,
			       .msg_controllen = sizeof(f->u.buf)};
}

static int send_fd(int sock, int fd)
{
	struct fd_msg f;
	struct cmsghdr *h;

	fd_msg_init(&f);
	h = CMSG_FIRSTHDR(&f.m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	return sendmsg(sock, &f.m, 0) == 1 ? 0 : -errno;
}

/* The fd that came on sock (bounded wait), or a negative errno. */
static int recv_fd(int sock)
{
	struct fd_msg f;
	struct cmsghdr *h;
	int fd, r = io_wait(sock, POLLIN, FFC_IO_MS);

	if (r <= 0)
		return r ? r : -ETIMEDOUT;
	fd_msg_init(&f);
	if (recvmsg(sock, &f.m, MSG_CMSG_CLOEXEC) != 1)
		return -EPROTO;
	h = CMSG_FIRSTHDR(&f.m);
	if (!h || h->cmsg_type != SCM_RIGHTS || h->cmsg_len != CMSG_LEN(sizeof(int)))
		return -EPROTO;
	memcpy(&fd, CMSG_DATA(h), sizeof(int));
	return fd;
}

/* One bounded wait and one recv on fd: bytes (> 0), 0 at EOF, or a
 * negative errno (-ETIMEDOUT when nothing came). */
static ssize_t recv_next(int fd, uint8_t *buf, size_t len)
{
	int r = io_wait(fd, POLLIN, FFC_IO_MS);
	ssize_t n;

	if (r <= 0)
		return r ? r : -ETIMEDOUT;
	n = recv(fd, buf, len, 0);
	return n < 0 ? -errno : n;
}

/* ---- client ---- */

struct writer {
	int fd, err;
	uint64_t total; /* 0: the relay scenario's */
};

static void *client_writer(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[8192];
	uint64_t off = 0, total = w->total ? w->total : (uint64_t)RELAY_TURNS * RELAY_CHUNK;

	while (off < total && !w->err) {
		size_t n = total - off < sizeof(buf) ? (size_t)(total - off) : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(off + i);
		w->err = io_write_all(w->fd, buf, n);
		off += n;
	}
	if (!w->err && shutdown(w->fd, SHUT_WR) < 0)
		w->err = -errno;
	return NULL;
}

void cl_relay(void)
{
	struct writer w = {.fd = -1};
	uint64_t total = (uint64_t)RELAY_TURNS * RELAY_CHUNK, off = 0, bad = UINT64_MAX;
	uint64_t counts[256] = {0};
	uint8_t buf[8192];
	pthread_t t;
	int r = 0;

	w.fd = cl_open("relay", NULL, false);
	if (w.fd < 0)
		return;
	if (pthread_create(&t, NULL, client_writer, &w) != 0) {
		ck_fail("relay.writer", "no thread");
		close(w.fd);
		return;
	}
	while (off < total && r == 0) {
		size_t n = total - off < sizeof(buf) ? (size_t)(total - off) : sizeof(buf);

		r = io_read_full(w.fd, buf, n);
		for (size_t i = 0; r == 0 && i < n; i++)
			if (buf[i] != (pattern(off + i) ^ 0x5a) && bad == UINT64_MAX)
				bad = off + i;
		off += n;
	}
	if (step("read", r)) {
		if (bad == UINT64_MAX)
			ck_ok("relay.bytes-back", "%llu bytes as sent, through every relay",
			      (unsigned long long)total);
		else
			ck_fail("relay.bytes-back", "byte %llu (turn %llu) is wrong",
				(unsigned long long)bad, (unsigned long long)(bad / RELAY_CHUNK));
	}
	/* then the writers' records, until the server's EOF */
	for (;;) {
		ssize_t n = recv_next(w.fd, buf, sizeof(buf));

		if (n <= 0) {
			r = (int)n;
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			counts[buf[i]]++;
	}
	if (step("writers", r)) {
		bool ok = true;

		for (int v = 0; v < 256; v++) {
			uint64_t want = v >= 0xa0 && v < 0xa0 + RELAY_WRITERS
					    ? (uint64_t)RELAY_RECORDS * RELAY_RECORD
					    : 0;

			if (counts[v] != want) {
				ck_fail("relay.writers-bytes", "byte 0x%02x: %llu times, expected %llu", v,
					(unsigned long long)counts[v], (unsigned long long)want);
				ok = false;
				break;
			}
		}
		if (ok)
			ck_ok("relay.writers-bytes", "%d writers x %d bytes, then EOF", RELAY_WRITERS,
			      RELAY_RECORDS * RELAY_RECORD);
	}
	pthread_join(t, NULL);
	ck_errval("relay.client-writes", 0, -w.err);
	close(w.fd);
}

/* ---- server ---- */

struct sv_writer {
	int fd, id, err;
};

static void *server_writer(void *arg)
{
	struct sv_writer *w = arg;
	uint8_t rec[RELAY_RECORD];

	memset(rec, 0xa0 + w->id, sizeof(rec));
	for (int i = 0; i < RELAY_RECORDS && !w->err; i++)
		w->err = io_write_all(w->fd, rec, sizeof(rec));
	return NULL;
}

static uint64_t turn(int k)
{
	return (uint64_t)k * RELAY_CHUNK;
}

void sv_relay(int fd, const char *arg FFC_UNUSED)
{
	struct sv_writer w[RELAY_WRITERS];
	pthread_t t[RELAY_WRITERS];
	char a[24], b[24], c[24];
	int sp[2] = {-1, -1}, back = -1, r, nw = 0;
	pid_t pid;

	/* 0: here */
	if (!step("turn0", relay(fd, turn(0), RELAY_CHUNK)))
		goto out;
	/* 1: a forked child, which closes its copy */
	pid = fork();
	if (pid == 0) {
		r = relay(fd, turn(1), RELAY_CHUNK);
		close(fd);
		_exit(r ? 1 : 0);
	}
	if (!ck_eq("relay.fork-child", 0, pid > 0 ? wait_child(pid) : -1))
		goto out;
	/* 2: here */
	if (!step("turn2", relay(fd, turn(2), RELAY_CHUNK)))
		goto out;
	/* 3: a new image that inherits the fd and uses it first for data */
	ck_zero("relay.clear-cloexec", fcntl(fd, F_SETFD, 0));
	snprintf(a, sizeof(a), "%d", fd);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)turn(3));
	snprintf(c, sizeof(c), "%u", RELAY_CHUNK);
	pid = spawn_self("relay-child", a, b, c);
	if (!ck_eq("relay.exec-child", 0, pid > 0 ? wait_child(pid) : -1))
		goto out;
	/* 4: here */
	if (!step("turn4", relay(fd, turn(4), RELAY_CHUNK)))
		goto out;
	/* 5: a helper gets the fd through SCM_RIGHTS, ours closed meanwhile */
	if (!ck_zero("relay.socketpair", socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp)))
		goto out;
	ck_zero("relay.cloexec", fcntl(fd, F_SETFD, FD_CLOEXEC));
	fcntl(sp[1], F_SETFD, 0);
	snprintf(a, sizeof(a), "%d", sp[1]);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)turn(5));
	pid = spawn_self("relay-helper", a, b, c);
	close(sp[1]);
	if (!ck_yes("relay.helper-started", pid > 0))
		goto out;
	r = send_fd(sp[0], fd);
	ck_errval("relay.pass", 0, -r);
	ck_zero("relay.close-passed", close(fd));
	fd = -1;
	back = recv_fd(sp[0]);
	ck_eq("relay.helper", 0, wait_child(pid));
	if (!ck_yes("relay.passed-back", back >= 0))
		goto out;
	fd = back;
	/* 6: here, through the fd that came back */
	if (!step("turn6", relay(fd, turn(6), RELAY_CHUNK)))
		goto out;
	/* writers at once */
	for (; nw < RELAY_WRITERS; nw++) {
		w[nw] = (struct sv_writer){.fd = fd, .id = nw};
		if (pthread_create(&t[nw], NULL, server_writer, &w[nw]) != 0)
			break;
	}
	r = 0;
	for (int i = 0; i < nw; i++) {
		pthread_join(t[i], NULL);
		if (!r)
			r = w[i].err;
	}
	ck_eq("relay.writers", RELAY_WRITERS, nw);
	ck_errval("relay.writers-sent", 0, -r);
	ck_zero("relay.shutdown", shutdown(fd, SHUT_WR));
	{
		char x;

		r = io_wait(fd, POLLIN, FFC_IO_MS);
		ck_eq("relay.eof", 0, r > 0 ? recv(fd, &x, 1, 0) : -ETIMEDOUT);
	}
out:
	if (sp[0] >= 0)
		close(sp[0]);
	if (fd >= 0)
		close(fd);
}

/* "relay-child FD OFF LEN": relays, closes; 0 or 1. */
int relay_child_main(int argc, char **argv)
{
	int fd, r;

	if (argc != 3)
		return 2;
	fd = atoi(argv[0]);
	r = relay(fd, strtoull(argv[1], NULL, 10), strtoul(argv[2], NULL, 10));
	close(fd);
	return r ? 1 : 0;
}

/* "relay-helper SOCK OFF LEN": the connection comes on SOCK, is relayed,
 * goes back, and our copy is closed; 0, or the step that failed. */
int relay_helper_main(int argc, char **argv)
{
	int sock, fd, r;

	if (argc != 3)
		return 2;
	sock = atoi(argv[0]);
	fd = recv_fd(sock);
	if (fd < 0)
		return 3;
	r = relay(fd, strtoull(argv[1], NULL, 10), strtoul(argv[2], NULL, 10));
	if (r)
		return 4;
	if (send_fd(sock, fd) < 0)
		return 5;
	close(fd);
	close(sock);
	return 0;
}

/* ---- noshim ---- */

/* One connection handed to the image after fork or vfork (mode). */
static void cl_noshim_one(const char *mode)
{
	struct writer w = {.fd = -1};
	uint64_t off = 0, bad = UINT64_MAX;
	uint8_t buf[8192];
	char name[48];
	pthread_t t;
	ssize_t n = 0;
	int r = 0;

	snprintf(name, sizeof(name), "noshim.%s.bytes-back", mode);
	w.fd = cl_open("noshim", mode, false);
	if (w.fd < 0)
		return;
	w.total = NOSHIM_TOTAL;
	if (pthread_create(&t, NULL, client_writer, &w) != 0) {
		ck_fail("noshim.writer", "no thread");
		close(w.fd);
		return;
	}
	/* every byte back, then the image's EOF */
	for (;;) {
		n = recv_next(w.fd, buf, sizeof(buf));
		if (n <= 0) {
			r = (int)n;
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != (pattern(off + (uint64_t)i) ^ 0x5a) && bad == UINT64_MAX)
				bad = off + (uint64_t)i;
		off += (uint64_t)n;
	}
	if (step("read", r)) {
		if (off == NOSHIM_TOTAL && bad == UINT64_MAX)
			ck_ok(name, "%u bytes as sent, then EOF", NOSHIM_TOTAL);
		else if (bad != UINT64_MAX)
			ck_fail(name, "byte %llu is wrong", (unsigned long long)bad);
		else
			ck_fail(name, "EOF after %llu bytes of %u", (unsigned long long)off,
				NOSHIM_TOTAL);
	}
	pthread_join(t, NULL);
	ck_errval("noshim.client-writes", 0, -w.err);
	close(w.fd);
}

void cl_noshim(void)
{
	cl_noshim_one("fork");
	/* vfork: Python's subprocess, among others, execs from one */
	cl_noshim_one("vfork");
}

static pid_t start_fork(const char *path, char **argv, char **env)
{
	pid_t pid = fork();

	if (pid == 0) {
		execve(path, argv, env);
		_exit(127);
	}
	return pid;
}

static pid_t start_vfork(const char *path, char **argv, char **env)
{
	pid_t pid = vfork();

	if (pid == 0) {
		execve(path, argv, env);
		_exit(127);
	}
	return pid;
}

/* fork (or vfork), then exec ourselves as `ffconform SUB A B C` without
 * LD_PRELOAD. */
static pid_t exec_noshim(bool use_vfork, const char *sub, const char *a, const char *b,
			 const char *c)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *argv[] = {"ffconform", (char *)sub, (char *)a, (char *)b, (char *)c, NULL};
	char **env;
	int k = 0, m = 0;
	pid_t pid;

	exe[n > 0 ? n : 0] = '\0';
	while (environ[m])
		m++;
	env = calloc((size_t)m + 1, sizeof(char *));
	if (!env)
		return -1;
	for (int i = 0; i < m; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
			env[k++] = environ[i];
	pid = (use_vfork ? start_vfork : start_fork)(n > 0 ? exe : "/proc/self/exe", argv, env);
	free(env);
	return pid;
}

void sv_noshim(int fd, const char *arg)
{
	char a[24], b[24], c[24];
	pid_t pid;

	if (!step("first", relay(fd, 0, NOSHIM_FIRST)))
		goto out;
	ck_zero("noshim.clear-cloexec", fcntl(fd, F_SETFD, 0));
	snprintf(a, sizeof(a), "%d", fd);
	snprintf(b, sizeof(b), "%u", NOSHIM_FIRST);
	snprintf(c, sizeof(c), "%u", NOSHIM_TOTAL - NOSHIM_FIRST);
	/* (valgrind runs a vfork as a fork: the parent does not wait for the
	 * exec, and its close below could end the rings before the relay
	 * holds them; t-valgrind.sh says so with FFC_NO_VFORK) */
	pid = exec_noshim(arg && strcmp(arg, "vfork") == 0 && !getenv("FFC_NO_VFORK"),
			  "noshim-child", a, b, c);
	/* ours goes at once: the image is the connection's one user */
	ck_zero("noshim.close", close(fd));
	fd = -1;
	ck_eq("noshim.child", 0, pid > 0 ? wait_child(pid) : -1);
out:
	if (fd >= 0)
		close(fd);
}

/* "noshim-child FD OFF LEN": relays LEN bytes, reads EOF, shuts down;
 * 0, or the step that failed. */
int noshim_child_main(int argc, char **argv)
{
	char x;
	int fd;

	if (argc != 3)
		return 2;
	fd = atoi(argv[0]);
	if (relay(fd, strtoull(argv[1], NULL, 10), strtoul(argv[2], NULL, 10)))
		return 3;
	if (io_wait(fd, POLLIN, FFC_IO_MS) <= 0 || recv(fd, &x, 1, 0) != 0)
		return 4;
	if (shutdown(fd, SHUT_WR) < 0)
		return 5;
	return close(fd) ? 6 : 0;
}
