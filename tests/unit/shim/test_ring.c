/* The shim's side of a connection over rings (libffshim/sock/ring.c)
 * against a peer that is the test: first an honest one (bytes both ways,
 * readiness), then a hostile one that rewrites the shared page. Whatever
 * the peer writes there, the shim's calls return: ECONNRESET for indices
 * no honest peer can produce (every call from then on), EAGAIN for
 * garbage in the doorbell's counters, and never a crash or a hang (each
 * blocking call has SO_RCVTIMEO / SO_SNDTIMEO as a backstop). */
#include "cu.h"
#include "shim_fixture.h"

#include "sdoor.h"
#include "sock/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd, peer; /* the app's socket and the test's (the peer's) end */
	struct ffs_sock *s;
	void *mem;
	size_t len;
	struct ff_sring r; /* the peer's end of the rings: side 1 */
	struct ff_sdoor d;
	struct ff_sring_hdr *h;
};

static void conn_open(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sf_addr("10.77.0.9", 80, &ss);
	struct timeval tv = {.tv_sec = 2};
	int mfd;

	memset(c, 0, sizeof(*c));
	c->fd = sf_socket(AF_INET, SOCK_STREAM);
	sf_answer(SF_RING, 0);
	CU_ASSERT_EQUAL_FATAL(ffs_connect(c->fd, (struct sockaddr *)&ss, len), 0);
	c->peer = sf_take_peer();
	mfd = sf_take_ring();
	CU_ASSERT_FATAL(c->peer >= 0 && mfd >= 0);
	c->s = ffs_ring_conn(c->fd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->s); /* the shim took the rings */
	c->len = ff_sring_len(SF_RING_SIZE);
	c->mem = mmap(NULL, c->len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	close(mfd);
	CU_ASSERT_NOT_EQUAL_FATAL(c->mem, MAP_FAILED);
	CU_ASSERT_EQUAL_FATAL(ff_sring_attach(&c->r, c->mem, c->len, 1), 0);
	CU_ASSERT_EQUAL_FATAL(ff_sdoor_init(&c->d, &c->r, c->peer), 0);
	c->h = c->mem;
	/* backstops: a blocking call that would hang fails the test instead */
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void conn_close(struct conn *c)
{
	sf_close(c->fd);
	close(c->peer);
	munmap(c->mem, c->len);
}

static ssize_t app_recv(struct conn *c, void *buf, size_t n, int flags)
{
	struct iovec v = {.iov_base = buf, .iov_len = n};

	return ffs_ring_recv(c->fd, c->s, &v, 1, flags);
}

static ssize_t app_send(struct conn *c, const void *buf, size_t n, int flags)
{
	struct iovec v = {.iov_base = (void *)buf, .iov_len = n};

	return ffs_ring_send(c->fd, c->s, &v, 1, flags);
}

/* The peer writes buf as an honest shim does: ring, then doorbell. */
static void peer_send(struct conn *c, const void *buf, size_t n)
{
	CU_ASSERT_EQUAL(ff_sring_write(&c->r, buf, n), (ssize_t)n);
	CU_ASSERT_EQUAL(ff_sdoor_wrote(&c->d, c->peer), 0);
}

static short app_events(struct conn *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLOUT};

	return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

static void test_honest(void)
{
	struct conn c;
	char buf[64];

	conn_open(&c);
	CU_ASSERT_EQUAL(app_events(&c) & POLLIN, 0);
	peer_send(&c, "hello", 5);
	CU_ASSERT(app_events(&c) & POLLIN);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 5);
	CU_ASSERT_EQUAL(memcmp(buf, "hello", 5), 0);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), MSG_DONTWAIT), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	CU_ASSERT_EQUAL(app_send(&c, "world", 5, 0), 5);
	CU_ASSERT_EQUAL(ff_sring_read(&c.r, buf, sizeof(buf), false), 5);
	CU_ASSERT_EQUAL(memcmp(buf, "world", 5), 0);
	conn_close(&c);
}

/* A wake-up byte on the app's socket, as a token would be. */
static void poke(struct conn *c)
{
	CU_ASSERT_EQUAL(write(c->peer, "t", 1), 1);
}

static void expect_reset(struct conn *c, const char *what)
{
	char buf[64];
	ssize_t r;

	r = app_recv(c, buf, sizeof(buf), MSG_DONTWAIT);
	CU_ASSERT_EQUAL(r, -1);
	CU_ASSERT_EQUAL(errno, ECONNRESET);
	/* a blocking read returns at once too, and so does every later call */
	r = app_recv(c, buf, sizeof(buf), 0);
	CU_ASSERT_EQUAL(r, -1);
	CU_ASSERT_EQUAL(errno, ECONNRESET);
	r = app_send(c, "x", 1, 0);
	CU_ASSERT_EQUAL(r, -1);
	CU_ASSERT(errno == ECONNRESET || errno == EPIPE);
	if (errno != ECONNRESET && errno != EPIPE)
		fprintf(stderr, "%s: send: %s\n", what, strerror(errno));
}

/* The producer's head more than a ring ahead of the tail. */
static void test_head_ahead(void)
{
	struct conn c;

	conn_open(&c);
	peer_send(&c, "abc", 3);
	__atomic_store_n(&c.h->dir[1].head, c.h->dir[1].tail + SF_RING_SIZE + 1, __ATOMIC_RELEASE);
	poke(&c);
	expect_reset(&c, "head ahead");
	conn_close(&c);
}

/* The producer's head behind what the app already took. */
static void test_head_behind(void)
{
	struct conn c;
	char buf[8];

	conn_open(&c);
	peer_send(&c, "abcdef", 6);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 6);
	__atomic_store_n(&c.h->dir[1].head, 2, __ATOMIC_RELEASE);
	poke(&c);
	expect_reset(&c, "head behind");
	conn_close(&c);
}

/* The consumer of the app's ring claims more than the app wrote: the app's
 * next send finds its ring corrupt. */
static void test_tail_ahead(void)
{
	struct conn c;

	conn_open(&c);
	CU_ASSERT_EQUAL(app_send(&c, "abc", 3, 0), 3);
	__atomic_store_n(&c.h->dir[0].tail, 1000000, __ATOMIC_RELEASE);
	CU_ASSERT_EQUAL(app_send(&c, "d", 1, 0), -1);
	CU_ASSERT_EQUAL(errno, ECONNRESET);
	CU_ASSERT_EQUAL(app_send(&c, "d", 1, MSG_DONTWAIT), -1);
	CU_ASSERT_EQUAL(errno, ECONNRESET);
	conn_close(&c);
}

/* Garbage in the doorbell's counters and flags, no bytes in the ring: the
 * app's reads say there is nothing (EAGAIN, or the timeout), its socket
 * does not stay readable for ever, and honest bytes still come through
 * once the peer writes them. */
static void test_garbage_counters(void)
{
	struct conn c;
	struct ff_sring_idx *rx, *tx;
	char buf[8];

	conn_open(&c);
	rx = &c.h->dir[1]; /* what the peer writes: the app's reads */
	tx = &c.h->dir[0];
	__atomic_store_n(&rx->tokens, 0xfffffffffffffff1ull, __ATOMIC_RELEASE);
	__atomic_store_n(&rx->stuffed, 0xdeadbeef, __ATOMIC_RELEASE);
	__atomic_store_n(&tx->drained, 0x8000000000000000ull, __ATOMIC_RELEASE);
	__atomic_store_n(&tx->seen, 7, __ATOMIC_RELEASE);
	for (int i = 0; i < 5; i++)
		poke(&c);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), MSG_DONTWAIT), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	CU_ASSERT_EQUAL(app_events(&c) & POLLIN, 0); /* the stray bytes were taken */
	{
		struct timeval tv = {.tv_usec = 200000};

		setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), -1);
		CU_ASSERT_EQUAL(errno, EAGAIN);
	}
	/* the app's sends still go into its ring (the counters are the
	 * peer's to keep) */
	CU_ASSERT_EQUAL(app_send(&c, "ok", 2, MSG_DONTWAIT), 2);
	CU_ASSERT_EQUAL(ff_sring_read(&c.r, buf, sizeof(buf), false), 2);
	conn_close(&c);
}

/* A peer that never reads: the app's ring fills, then a non-blocking send
 * says EAGAIN and a blocking one gives up at SO_SNDTIMEO with what it
 * wrote, as TCP's would. */
static void test_full(void)
{
	static char big[SF_RING_SIZE * 2];
	struct conn c;
	struct timeval tv = {.tv_usec = 200000};
	ssize_t r;

	conn_open(&c);
	memset(big, 'z', sizeof(big));
	CU_ASSERT_EQUAL(app_send(&c, big, sizeof(big), MSG_DONTWAIT), SF_RING_SIZE);
	CU_ASSERT_EQUAL(app_send(&c, big, 1, MSG_DONTWAIT), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	CU_ASSERT_EQUAL(app_events(&c) & POLLOUT, 0);
	setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	r = app_send(&c, big, 1, 0);
	CU_ASSERT_EQUAL(r, -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	conn_close(&c);
}

/* SO_SNDBUF / SO_RCVBUF on a ring connection: the app reads back what a
 * TCP socket would say, and the doorbell keeps its own size, so that a
 * full ring still makes the socket unwritable (a 4 MiB send buffer on the
 * socket itself would leave it writable, and the app spinning). */
/* dup2 onto the last copy of the end closes it as close() does: the peer
 * reads the end of the stream; onto one of two copies, not yet. */
static void replace_with_null(int fd)
{
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

	CU_ASSERT_FATAL(nul >= 0);
	ffs_fd_replacing(nul, fd);
	CU_ASSERT_EQUAL(dup2(nul, fd), fd);
	ffs_fd_copy(nul, fd);
	close(nul);
}

static void test_dup2_last(void)
{
	struct conn c;
	int d;

	conn_open(&c);
	d = dup(c.fd);
	ffs_fd_copy(c.fd, d);
	replace_with_null(d);
	CU_ASSERT_FALSE(ff_sring_eof(&c.r)); /* c.fd still holds it */
	replace_with_null(c.fd);
	CU_ASSERT_TRUE(ff_sring_eof(&c.r));
	CU_ASSERT_PTR_NULL(ffs_ring_conn(c.fd));
	conn_close(&c);
}

/* A forked child that exits without closing its copy: exit() lets its
 * hold go, so the parent's close is the last and the peer reads the end.
 * (Before, the count stayed at two and the peer never saw it in the
 * ring.) */
static void test_exit_releases(void)
{
	struct conn c;
	pid_t pid;
	int st = -1;

	conn_open(&c);
	pid = fork();
	if (pid == 0)
		exit(0); /* the destructors run, c.fd left open */
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CU_ASSERT_FALSE(ff_sring_eof(&c.r)); /* we still hold it */
	sf_close(c.fd);
	CU_ASSERT_TRUE(ff_sring_eof(&c.r));
	close(c.peer);
	munmap(c.mem, c.len);
}

static void test_bufs(void)
{
	static char big[SF_RING_SIZE * 2];
	struct conn c;
	int want = 4 << 20, tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), a = 0, b = 0,
	    k = 0;
	socklen_t len = sizeof(a);

	conn_open(&c);
	CU_ASSERT_FATAL(tcp >= 0);
	CU_ASSERT_EQUAL(setsockopt(tcp, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want)), 0);
	CU_ASSERT_EQUAL(getsockopt(tcp, SOL_SOCKET, SO_SNDBUF, &a, &len), 0);
	CU_ASSERT_EQUAL(ffs_setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want)), 0);
	len = sizeof(b);
	CU_ASSERT_EQUAL(ffs_getsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &b, &len), 0);
	CU_ASSERT_EQUAL(b, a); /* TCP's answer */
	len = sizeof(k);
	CU_ASSERT_EQUAL(getsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &k, &len), 0);
	CU_ASSERT_EQUAL(k, 2 * (int)FF_SDOOR_SNDBUF); /* the doorbell's, untouched */
	/* a short length is refused as TCP refuses it */
	CU_ASSERT_EQUAL(ffs_setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &want, 2), -1);
	CU_ASSERT_EQUAL(errno, EINVAL);
	memset(big, 'z', sizeof(big));
	CU_ASSERT_EQUAL(app_send(&c, big, sizeof(big), MSG_DONTWAIT), SF_RING_SIZE);
	CU_ASSERT_EQUAL(app_events(&c) & POLLOUT, 0);
	close(tcp);
	conn_close(&c);
}

/* A read that empties the ring leaves the socket readable until the next
 * wait (sdoor.c, Lazy disarm): the peer's next bytes cost it no token; a
 * wait (ffs_ring_settle, which poll, select and epoll_wait call first)
 * finds the truth; a peer gone without a word in the ring still shows at
 * the second read; and an end registered for edges disarms at once. */
static void test_lazy(void)
{
	struct conn c;
	char buf[64];
	uint64_t tokens;

	conn_open(&c);
	CU_ASSERT_EQUAL(fcntl(c.fd, F_SETFL, O_NONBLOCK), 0);
	peer_send(&c, "one", 3);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 3);
	tokens = __atomic_load_n(&c.r.tx->tokens, __ATOMIC_ACQUIRE);
	peer_send(&c, "two", 3);
	CU_ASSERT_EQUAL(__atomic_load_n(&c.r.tx->tokens, __ATOMIC_ACQUIRE), tokens);
	CU_ASSERT(app_events(&c) & POLLIN);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 3);
	CU_ASSERT_EQUAL(memcmp(buf, "two", 3), 0);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	ffs_ring_settle(true);
	CU_ASSERT_EQUAL(app_events(&c) & POLLIN, 0);
	peer_send(&c, "three", 5); /* disarmed: a token */
	CU_ASSERT(__atomic_load_n(&c.r.tx->tokens, __ATOMIC_ACQUIRE) > tokens);
	CU_ASSERT(app_events(&c) & POLLIN);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 5);
	CU_ASSERT_EQUAL(memcmp(buf, "three", 5), 0);
	/* the peer's process dies: its socket closes, its ring says nothing */
	close(c.peer);
	c.peer = -1;
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 0);
	conn_close(&c);

	conn_open(&c);
	ffs_ring_epoll(c.fd, EPOLLIN | EPOLLET);
	peer_send(&c, "four", 4);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), MSG_DONTWAIT), 4);
	CU_ASSERT_EQUAL(app_events(&c) & POLLIN, 0); /* no wait needed */
	conn_close(&c);
}

static int kwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	return epoll_pwait(epfd, ev, max, timeout, mask);
}

/* epoll on a ring connection (libffshim/sock/epoll.c): the kernel holds a
 * tag, which answers are translated back from; a wait with a ring ready
 * is answered from memory; the app's add, modify and delete of that
 * registration are the kernel's answers (EEXIST, ENOENT) without reaching
 * it until something waits; readiness a deferred disarm left is dropped. */
static void test_epoll(void)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1234}, out[4];
	struct conn c;
	char buf[64];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	CU_ASSERT_FATAL(ep >= 0);
	conn_open(&c);
	CU_ASSERT_EQUAL(fcntl(c.fd, F_SETFL, O_NONBLOCK), 0);
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
	CU_ASSERT_EQUAL(ffs_ep_fast(ep, out, 4, kwait, NULL), 0); /* nothing yet */
	peer_send(&c, "abc", 3);
	/* the kernel's answer carries the tag; translated, the app's data */
	CU_ASSERT_EQUAL(epoll_wait(ep, out, 4, 1000), 1);
	CU_ASSERT_NOT_EQUAL(out[0].data.u64, 0x1234);
	CU_ASSERT_EQUAL(ffs_ep_answer(out, 1), 1);
	CU_ASSERT_EQUAL(out[0].data.u64, 0x1234);
	CU_ASSERT(out[0].events & EPOLLIN);
	/* from the ring */
	memset(out, 0, sizeof(out));
	CU_ASSERT_EQUAL(ffs_ep_fast(ep, out, 4, kwait, NULL), 1);
	CU_ASSERT_EQUAL(out[0].data.u64, 0x1234);
	CU_ASSERT_EQUAL(out[0].events, EPOLLIN);
	/* the kernel's errors, from memory */
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), -1);
	CU_ASSERT_EQUAL(errno, EEXIST);
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_DEL, c.fd, NULL), 0);
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_DEL, c.fd, NULL), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	/* deleted: neither the ring nor the kernel's late answer reports it */
	CU_ASSERT_EQUAL(ffs_ep_fast(ep, out, 4, kwait, NULL), 0);
	CU_ASSERT_EQUAL(ffs_ep_answer(out, epoll_wait(ep, out, 4, 0)), 0);
	/* and before a wait, the kernel deletes it too */
	ffs_ep_sync();
	CU_ASSERT_EQUAL(epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, NULL), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	/* added again, for writing only */
	ev.events = EPOLLOUT;
	ev.data.u64 = 0x5678;
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
	CU_ASSERT_EQUAL(ffs_ep_fast(ep, out, 4, kwait, NULL), 1);
	CU_ASSERT_EQUAL(out[0].events, EPOLLOUT);
	CU_ASSERT_EQUAL(out[0].data.u64, 0x5678);
	ev.events = EPOLLIN;
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev), 0);
	/* read out: the socket stays readable (a deferred disarm), the
	 * answer drops it */
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 3);
	CU_ASSERT_EQUAL(ffs_ep_fast(ep, out, 4, kwait, NULL), 0);
	CU_ASSERT_EQUAL(ffs_ep_answer(out, epoll_wait(ep, out, 4, 0)), 0);
	ffs_ring_settle(true); /* (and syncs the MOD) */
	CU_ASSERT_EQUAL(epoll_wait(ep, out, 4, 0), 0);
	peer_send(&c, "d", 1);
	CU_ASSERT_EQUAL(ffs_ep_answer(out, epoll_wait(ep, out, 4, 1000)), 1);
	CU_ASSERT_EQUAL(out[0].data.u64, 0x5678);
	CU_ASSERT_EQUAL(out[0].events, EPOLLIN);
	/* while a thread waits in the kernel, a change reaches it at once */
	ffs_ep_sleeping(1);
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_DEL, c.fd, NULL), 0);
	CU_ASSERT_EQUAL(epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, NULL), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
	ffs_ep_sleeping(-1);
	/* edge-triggered: the kernel's, with the app's own data */
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 0x9abc;
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev), 0);
	CU_ASSERT_EQUAL(epoll_wait(ep, out, 4, 1000), 1);
	CU_ASSERT_EQUAL(out[0].data.u64, 0x9abc);
	conn_close(&c);
	close(ep);
}

/* A blocking read on an empty ring waits in one call on the socket, which
 * keeps the kernel's rules: SO_RCVTIMEO ends it with EAGAIN, bytes the
 * peer writes meanwhile end it, and so does the peer's end (EOF). */
static void test_block(void)
{
	struct timeval tv = {.tv_usec = 100000};
	struct conn c;
	char buf[16];
	pid_t pid;
	int st;

	conn_open(&c);
	CU_ASSERT_EQUAL(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		usleep(30000);
		_exit(ff_sring_write(&c.r, "late", 4) == 4 && ff_sdoor_wrote(&c.d, c.peer) == 0 ? 0
											     : 1);
	}
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 4);
	CU_ASSERT_EQUAL(memcmp(buf, "late", 4), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(c.peer);
	c.peer = -1;
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 0);
	conn_close(&c);
}

/* The peer's process goes (its socket released): the kernel says POLLHUP
 * with the EOF, TCP only POLLIN|POLLRDHUP until this end shuts its
 * sending side down too. poll's answer (ffs_hup_hidden) and a tagged
 * epoll registration's say TCP's. */
static void test_hup(void)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = 7}, out[4];
	struct pollfd p;
	struct conn c;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	conn_open(&c);
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
	close(c.peer);
	c.peer = -1;
	p = (struct pollfd){.fd = c.fd, .events = POLLIN | POLLRDHUP};
	CU_ASSERT_EQUAL(poll(&p, 1, 1000), 1);
	CU_ASSERT_EQUAL(p.revents, POLLIN | POLLRDHUP | POLLHUP); /* the kernel's */
	CU_ASSERT(ffs_hup_hidden(c.fd, (uint32_t)p.revents));
	CU_ASSERT(!ffs_hup_hidden(c.fd, POLLHUP)); /* all there is: kept */
	CU_ASSERT(!ffs_hup_hidden(c.fd, POLLIN | POLLHUP | POLLERR)); /* a reset: kept */
	CU_ASSERT_EQUAL(ffs_ep_answer(out, epoll_wait(ep, out, 4, 1000)), 1);
	CU_ASSERT_EQUAL(out[0].events, EPOLLIN | EPOLLRDHUP);
	CU_ASSERT_EQUAL(out[0].data.u64, 7);
	/* both directions shut now: HUP, as TCP says it */
	CU_ASSERT_EQUAL(ffs_shutdown(c.fd, SHUT_WR), 0);
	CU_ASSERT(!ffs_hup_hidden(c.fd, (uint32_t)p.revents));
	CU_ASSERT_EQUAL(ffs_ep_answer(out, epoll_wait(ep, out, 4, 1000)), 1);
	CU_ASSERT_EQUAL(out[0].events, EPOLLIN | EPOLLRDHUP | EPOLLHUP);
	close(ep);
	conn_close(&c);
}

static bool has_data(const struct epoll_event *out, int n, uint64_t d)
{
	for (int i = 0; i < n; i++)
		if (out[i].data.u64 == d)
			return true;
	return false;
}

/* Several sets, an fd in two of them: each wait from the rings answers
 * its own set's ready registrations only, in turn when it can take fewer
 * than are ready; a closed fd's registrations and a closed set's go (a
 * new set with the old one's number knows none of them). */
static void test_epoll_sets(void)
{
	struct epoll_event ev, out[8];
	struct conn c[6];
	int ep1 = epoll_create1(EPOLL_CLOEXEC), ep2 = epoll_create1(EPOLL_CLOEXEC), ep3, n;
	uint64_t first;

	CU_ASSERT_FATAL(ep1 >= 0 && ep2 >= 0);
	for (int i = 0; i < 6; i++) {
		conn_open(&c[i]);
		ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 100 + (uint64_t)i};
		if (i < 4)
			CU_ASSERT_EQUAL(ffs_ep_ctl(ep1, EPOLL_CTL_ADD, c[i].fd, &ev), 0);
		ev.data.u64 = 200 + (uint64_t)i;
		if (i >= 2)
			CU_ASSERT_EQUAL(ffs_ep_ctl(ep2, EPOLL_CTL_ADD, c[i].fd, &ev), 0);
	}
	peer_send(&c[1], "a", 1);
	peer_send(&c[2], "b", 1);
	peer_send(&c[4], "c", 1);
	n = ffs_ep_fast(ep1, out, 8, kwait, NULL);
	CU_ASSERT(n == 2 && has_data(out, n, 101) && has_data(out, n, 102));
	n = ffs_ep_fast(ep2, out, 8, kwait, NULL);
	CU_ASSERT(n == 2 && has_data(out, n, 202) && has_data(out, n, 204));
	/* one at a time: the two ready ones take turns */
	CU_ASSERT_EQUAL(ffs_ep_fast(ep1, out, 1, kwait, NULL), 1);
	first = out[0].data.u64;
	CU_ASSERT(first == 101 || first == 102);
	CU_ASSERT_EQUAL(ffs_ep_fast(ep1, out, 1, kwait, NULL), 1);
	CU_ASSERT(out[0].data.u64 == (first == 101 ? 102 : 101));
	/* c[2] closes: gone from both sets */
	CU_ASSERT_EQUAL(sf_close(c[2].fd), 0);
	n = ffs_ep_fast(ep1, out, 8, kwait, NULL);
	CU_ASSERT(n == 1 && out[0].data.u64 == 101);
	n = ffs_ep_fast(ep2, out, 8, kwait, NULL);
	CU_ASSERT(n == 1 && out[0].data.u64 == 204);
	/* ep2 closes: a set with its number knows none of its registrations */
	CU_ASSERT_EQUAL(sf_close(ep2), 0);
	ep3 = epoll_create1(EPOLL_CLOEXEC);
	CU_ASSERT_EQUAL(ep3, ep2);
	CU_ASSERT_EQUAL(ffs_ep_fast(ep3, out, 8, kwait, NULL), 0);
	ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 304};
	CU_ASSERT_EQUAL(ffs_ep_ctl(ep3, EPOLL_CTL_ADD, c[4].fd, &ev), 0);
	n = ffs_ep_fast(ep3, out, 8, kwait, NULL);
	CU_ASSERT(n == 1 && out[0].data.u64 == 304);
	sf_close(ep3);
	sf_close(ep1);
	close(c[2].peer);
	munmap(c[2].mem, c[2].len);
	for (int i = 0; i < 6; i++)
		if (i != 2)
			conn_close(&c[i]);
}

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* O_NONBLOCK as the shim last set it (fcntl F_SETFL and ioctl FIONBIO go
 * through ffs_ring_setfl): a read loop's last read says EAGAIN without
 * asking the kernel; a blocking one waits its SO_RCVTIMEO; and a guess
 * gone stale (another process set O_NONBLOCK) can only make a read ask
 * the kernel, whose O_NONBLOCK then answers at once. */
static void test_nonblock(void)
{
	struct timeval tv = {.tv_usec = 200000};
	struct timespec t0;
	struct conn c;
	char buf[16];

	conn_open(&c);
	CU_ASSERT_EQUAL(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	CU_ASSERT_EQUAL(fcntl(c.fd, F_SETFL, O_NONBLOCK), 0);
	ffs_ring_setfl(c.fd, 1);
	peer_send(&c, "ab", 2);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 2);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), -1); /* from the ring */
	CU_ASSERT_EQUAL(errno, EAGAIN);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), -1); /* the socket's */
	CU_ASSERT_EQUAL(errno, EAGAIN);
	/* blocking again: the read waits for its timeout */
	CU_ASSERT_EQUAL(fcntl(c.fd, F_SETFL, 0), 0);
	ffs_ring_setfl(c.fd, 0);
	peer_send(&c, "cd", 2);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	CU_ASSERT(since(&t0) >= 0.1);
	/* O_NONBLOCK set behind the shim's back: the kernel says EAGAIN at once */
	CU_ASSERT_EQUAL(fcntl(c.fd, F_SETFL, O_NONBLOCK), 0);
	peer_send(&c, "ef", 2);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), 2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL(app_recv(&c, buf, sizeof(buf), 0), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	CU_ASSERT(since(&t0) < 0.1);
	conn_close(&c);
}

static uint8_t stream_byte(uint64_t i)
{
	return (uint8_t)(i * 13 + (i >> 11));
}

/* A stream from a peer process that writes as fast as the ring lets it,
 * more than the ring holds at each write, read as iperf3 reads (a wait,
 * then a non-blocking read) and with blocking reads in turn: each read
 * takes a piece or more, so every wait first watches the ring (settle's
 * stream spin) and a blocking read watches before it sleeps; the writer
 * publishes its copies in pieces. Every byte arrives, in order, each
 * POLLIN is followed by bytes, and nothing hangs (SO_RCVTIMEO, the poll
 * timeout and the writer's own poll bound every wait). */
static void test_stream(void)
{
	static uint8_t out[SF_RING_SIZE + 4000], in[2 * SF_RING_SIZE];
	const uint64_t total = 8u << 20;
	uint64_t got = 0;
	struct conn c;
	pid_t pid;
	int st, reads = 0;

	conn_open(&c);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		uint64_t sent = 0;

		while (sent < total) {
			size_t n = total - sent < sizeof(out) ? (size_t)(total - sent) : sizeof(out);
			ssize_t k;

			for (size_t i = 0; i < n; i++)
				out[i] = stream_byte(sent + i);
			k = ff_sring_write(&c.r, out, n);
			if (k > 0) {
				if (ff_sdoor_wrote(&c.d, c.peer) < 0)
					_exit(1);
				sent += (uint64_t)k;
				continue;
			}
			k = ff_sdoor_full(&c.d, c.peer);
			if (k < 0)
				_exit(2);
			if (k == 0) {
				struct pollfd p = {.fd = c.peer, .events = POLLOUT};

				if (poll(&p, 1, 3000) != 1)
					_exit(3); /* no room for 3 s: the reader hung */
			}
		}
		ff_sring_shut_tx(&c.r);
		_exit(0);
	}
	while (got < total) {
		ssize_t n;

		if (reads++ % 2 == 0) {
			struct pollfd p = {.fd = c.fd, .events = POLLIN};

			ffs_ring_settle(true); /* as the shim's poll() does first */
			CU_ASSERT_EQUAL_FATAL(poll(&p, 1, 3000), 1);
			n = app_recv(&c, in, sizeof(in), MSG_DONTWAIT);
		} else {
			n = app_recv(&c, in, sizeof(in), 0);
		}
		CU_ASSERT_FATAL(n > 0);
		for (ssize_t i = 0; i < n; i++)
			CU_ASSERT_FATAL(in[i] == stream_byte(got + (uint64_t)i));
		got += (uint64_t)n;
	}
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CU_ASSERT_EQUAL(app_recv(&c, in, sizeof(in), 0), 0); /* EOF after the last byte */
	conn_close(&c);
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"honest", test_honest},
	    {"head_ahead", test_head_ahead},
	    {"head_behind", test_head_behind},
	    {"tail_ahead", test_tail_ahead},
	    {"garbage_counters", test_garbage_counters},
	    {"full", test_full},
	    {"bufs", test_bufs},
	    {"dup2_last", test_dup2_last},
	    {"exit_releases", test_exit_releases},
	    {"lazy", test_lazy},
	    {"epoll", test_epoll},
	    {"block", test_block},
	    {"stream", test_stream},
	    {"hup", test_hup},
	    {"nonblock", test_nonblock},
	    {"epoll_sets", test_epoll_sets},
	    {0},
	};
	static const char *const overlay[] = {"10.77.0.9", NULL};
	int r;

	sf_start();
	sf_map_set(overlay);
	r = cu_run("shim-ring", tests);
	sf_stop();
	return r;
}
