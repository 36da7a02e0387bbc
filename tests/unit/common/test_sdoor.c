/* common/sdoor.c, the doorbell of ring connections: the readiness the
 * kernel reports for the app's socket must be the ring's.
 * - readiness, one step at a time, as poll and epoll see it: readable iff
 *   the ring holds bytes, not after the last byte was read, again for the
 *   next write; not writable once the ring is full, writable again when a
 *   third of it is free, readable all the while; an edge-triggered epoll
 *   woken by each arrival after a read, as over TCP, with few doorbell
 *   bytes queued however the reader reads; EOF after shutdown;
 * - two processes, 16 MiB one way through a 4 KiB and a 256 KiB ring,
 *   random write sizes, the reader on edge-triggered epoll and the writer
 *   on poll(POLLOUT), non-blocking: every byte arrives in order, and no
 *   wait times out while the other side left it something to do (a ring
 *   with bytes and a reader asleep, an empty ring and a writer asleep:
 *   lost wake-ups); the same with a reader on level-triggered poll, whose
 *   every POLLIN finds bytes in the ring (or its EOF), reading all there
 *   is or a piece at a time;
 * - a spinning reader: no token while it watches the ring, one again
 *   after it stopped or its deadline passed; and the two-process stream
 *   with such a reader;
 * - a hostile peer's counters: the consumer never blocks and takes no
 *   more than its queue holds. */
#include "cu.h"
#include "sdoor.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Both ends of one ring connection, as two shims have them. */
struct conn {
	int sv[2], mfd;
	size_t len;
	void *ma, *mb;
	struct ff_sring ra, rb;
	struct ff_sdoor a, b; /* a: side 0 on sv[0]; b: side 1 on sv[1] */
	int fa, fb;
};

static void conn_open(struct conn *c, uint32_t size)
{
	int sb = FF_SDOOR_SNDBUF;

	c->len = ff_sring_len(size);
	CU_ASSERT_FATAL(c->len > 0);
	c->mfd = memfd_create("sdoor-test", MFD_CLOEXEC);
	CU_ASSERT_FATAL(c->mfd >= 0 && ftruncate(c->mfd, (off_t)c->len) == 0);
	c->ma = mmap(NULL, c->len, PROT_READ | PROT_WRITE, MAP_SHARED, c->mfd, 0);
	c->mb = mmap(NULL, c->len, PROT_READ | PROT_WRITE, MAP_SHARED, c->mfd, 0);
	CU_ASSERT_FATAL(c->ma != MAP_FAILED && c->mb != MAP_FAILED);
	CU_ASSERT_EQUAL_FATAL(ff_sring_format(c->ma, c->len, size), 0);
	CU_ASSERT_EQUAL_FATAL(ff_sring_attach(&c->ra, c->ma, c->len, 0), 0);
	CU_ASSERT_EQUAL_FATAL(ff_sring_attach(&c->rb, c->mb, c->len, 1), 0);
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, c->sv) ==
			0);
	for (int i = 0; i < 2; i++)
		CU_ASSERT_FATAL(setsockopt(c->sv[i], SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb)) == 0);
	CU_ASSERT_EQUAL_FATAL(ff_sdoor_init(&c->a, &c->ra, c->sv[0]), 0);
	CU_ASSERT_EQUAL_FATAL(ff_sdoor_init(&c->b, &c->rb, c->sv[1]), 0);
	c->fa = c->sv[0];
	c->fb = c->sv[1];
}

static void conn_close(struct conn *c)
{
	munmap(c->ma, c->len);
	munmap(c->mb, c->len);
	close(c->mfd);
	close(c->sv[0]);
	close(c->sv[1]);
}

static short ready(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};

	return poll(&p, 1, 0) == 1 ? p.revents : 0;
}
#define READABLE(fd) ((ready(fd) & POLLIN) != 0)
#define WRITABLE(fd) ((ready(fd) & POLLOUT) != 0)

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 9));
}

/* Writes n pattern bytes from d (as far as they fit): how many. */
static size_t put(struct ff_sdoor *d, int fd, uint64_t *off, size_t n)
{
	uint8_t buf[4096];
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);
		ssize_t w;

		for (size_t i = 0; i < k; i++)
			buf[i] = pattern(*off + i);
		w = ff_sring_write(d->r, buf, k);
		if (w <= 0)
			break;
		*off += (uint64_t)w;
		done += (size_t)w;
		CU_ASSERT_EQUAL(ff_sdoor_wrote(d, fd), 0);
	}
	return done;
}

/* Reads up to n bytes into d, checking them: how many. */
static size_t get(struct ff_sdoor *d, int fd, uint64_t *off, size_t n)
{
	uint8_t buf[4096];
	size_t done = 0;

	while (done < n) {
		ssize_t k = ff_sring_read(d->r, buf,
					  n - done < sizeof(buf) ? n - done : sizeof(buf), false);

		CU_ASSERT_EQUAL(ff_sdoor_took(d, fd), 0);
		if (k <= 0)
			break;
		for (ssize_t i = 0; i < k; i++)
			CU_ASSERT_FATAL(buf[i] == pattern(*off + (uint64_t)i));
		*off += (uint64_t)k;
		done += (size_t)k;
	}
	return done;
}

static void test_readiness(void)
{
	const uint32_t size = 64u << 10;
	struct conn c;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET}, out;
	uint64_t wo = 0, ro = 0;
	int ep;

	conn_open(&c, size);
	/* a fresh connection: writable both ways, readable neither */
	CU_ASSERT(!READABLE(c.sv[1]) && !READABLE(c.sv[0]));
	CU_ASSERT(WRITABLE(c.sv[0]) && WRITABLE(c.sv[1]));
	/* bytes make the reader readable, until it took the last one */
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 100), 100);
	CU_ASSERT(READABLE(c.sv[1]));
	CU_ASSERT(!READABLE(c.sv[0])); /* the other direction is empty */
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 50), 50);
	CU_ASSERT(READABLE(c.sv[1]));
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 50), 50);
	CU_ASSERT(!READABLE(c.sv[1]));
	/* and again: the token is sent anew */
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 10), 10);
	CU_ASSERT(READABLE(c.sv[1]));
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 4096), 10);
	CU_ASSERT(!READABLE(c.sv[1]));
	CU_ASSERT(WRITABLE(c.sv[0]));
	/* an empty read leaves it so */
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 1), 0);
	CU_ASSERT(!READABLE(c.sv[1]));
	/* a full ring: room asked for, none came: not writable, still readable */
	CU_ASSERT_EQUAL(ff_sdoor_full(&c.a, c.fa), 1); /* there is room */
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, size + 1), size);
	CU_ASSERT_EQUAL(ff_sdoor_full(&c.a, c.fa), 0);
	CU_ASSERT(!WRITABLE(c.sv[0]));
	CU_ASSERT(READABLE(c.sv[1]));
	/* a quarter free: not yet; half free: writable, and still readable */
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, size / 4), size / 4);
	CU_ASSERT(!WRITABLE(c.sv[0]));
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, size / 4), size / 4);
	CU_ASSERT(WRITABLE(c.sv[0]));
	CU_ASSERT(READABLE(c.sv[1]));
	/* full again, then all read: writable, not readable */
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, size), size / 2);
	CU_ASSERT_EQUAL(ff_sdoor_full(&c.a, c.fa), 0);
	CU_ASSERT(!WRITABLE(c.sv[0]));
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 2 * size), size);
	CU_ASSERT(WRITABLE(c.sv[0]));
	CU_ASSERT(!READABLE(c.sv[1]));
	/* edge-triggered epoll: an edge when bytes come after the reader
	 * emptied the ring */
	ep = epoll_create1(EPOLL_CLOEXEC);
	CU_ASSERT_FATAL(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, c.sv[1], &ev) == 0);
	CU_ASSERT_EQUAL(epoll_wait(ep, &out, 1, 0), 0);
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 1000), 1000);
	CU_ASSERT_EQUAL(epoll_wait(ep, &out, 1, 0), 1);
	CU_ASSERT_EQUAL(epoll_wait(ep, &out, 1, 0), 0);
	/* an arrival after a partial read is an edge of its own, as over TCP;
	 * more bytes before the reader took any are not */
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 100), 100);
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 10), 10);
	CU_ASSERT_EQUAL(epoll_wait(ep, &out, 1, 0), 1);
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 10), 10);
	CU_ASSERT_EQUAL(epoll_wait(ep, &out, 1, 0), 0);
	/* and a reader that reads little at a time keeps few tokens queued */
	for (int i = 0; i < 50; i++) {
		CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 1), 1);
		CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 1), 1);
	}
	CU_ASSERT((c.ra.tx->tokens >> 1) - c.rb.rx->drained <= 5);
	CU_ASSERT(WRITABLE(c.sv[0]));
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 4096), 1000 - 100 + 20);
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 1), 1);
	CU_ASSERT_EQUAL(epoll_wait(ep, &out, 1, 0), 1);
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 4096), 1);
	close(ep);
	/* the writer shuts: EOF after the bytes, through the socket */
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 5), 5);
	ff_sring_shut_tx(&c.ra);
	CU_ASSERT(shutdown(c.sv[0], SHUT_WR) == 0);
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 4096), 5);
	CU_ASSERT(READABLE(c.sv[1]));
	CU_ASSERT(ff_sring_eof(&c.rb));
	CU_ASSERT_EQUAL(wo, ro);
	conn_close(&c);
}

/* A spinning reader: the writer sends no token while it watches the
 * ring, and does again after spin_end, or once the deadline of a spinner
 * that never ended has passed. */
static void test_spin(void)
{
	struct conn c;
	uint64_t wo = 0, ro = 0;

	conn_open(&c, 64u << 10);
	ff_sdoor_spin_begin(&c.b, 1000000000u);
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 100), 100);
	CU_ASSERT(!READABLE(c.sv[1])); /* no system call on either side */
	CU_ASSERT_EQUAL(ff_sring_readable(&c.rb), 100);
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 4096), 100);
	ff_sdoor_spin_end(&c.b);
	CU_ASSERT(!READABLE(c.sv[1]));
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 10), 10);
	CU_ASSERT(READABLE(c.sv[1])); /* asleep now: a token */
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 4096), 10);
	CU_ASSERT(!READABLE(c.sv[1]));
	/* a spinner that died: its deadline ends its claim */
	ff_sdoor_spin_begin(&c.b, 1000);
	usleep(2000);
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 10), 10);
	CU_ASSERT(READABLE(c.sv[1]));
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 4096), 10);
	CU_ASSERT(!READABLE(c.sv[1]));
	conn_close(&c);
}

/* ---- two processes ---- */

#define BIG	(16u << 20)
#define WAIT_MS 3000

/* The writer, in its own process: BIG bytes in random pieces; exits with
 * the number of lost wake-ups (capped). */
static int writer(struct conn *c)
{
	uint64_t off = 0;
	unsigned lost = 0, seed = 7;

	while (off < BIG) {
		size_t k = 1 + (size_t)rand_r(&seed) % 3000;

		if (k > BIG - off)
			k = BIG - off;
		if (put(&c->a, c->fa, &off, k) > 0)
			continue;
		if (ff_sdoor_full(&c->a, c->fa) == 1)
			continue;
		for (;;) {
			struct pollfd p = {.fd = c->sv[0], .events = POLLOUT};

			if (poll(&p, 1, WAIT_MS) == 1)
				break;
			/* asleep with an empty ring: nobody will wake us */
			if (ff_sring_writable(&c->ra) == c->ra.size) {
				lost++;
				break;
			}
		}
	}
	ff_sring_shut_tx(&c->ra);
	shutdown(c->sv[0], SHUT_WR);
	return lost > 100 ? 100 : (int)lost;
}

enum reader { ON_EPOLL_ET, SPINS, ON_POLL, ON_POLL_PART };

/* The reader's level-triggered wait: POLLIN means bytes (or EOF), and a
 * ring with bytes does not leave it asleep. */
static void poll_in(struct conn *c, uint64_t *lost, uint64_t *stale)
{
	struct pollfd p = {.fd = c->sv[1], .events = POLLIN};
	int k;

	while ((k = poll(&p, 1, WAIT_MS)) == 0)
		if (ff_sring_readable(&c->rb) > 0) {
			(*lost)++;
			break;
		}
	if (k == 1 && !ff_sring_readable(&c->rb) && !ff_sring_eof(&c->rb))
		(*stale)++;
}

static void stream(uint32_t size, enum reader how)
{
	bool spin = how == SPINS;
	struct conn c;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET}, out;
	uint64_t off = 0, sleeps = 0, lost = 0, spins = 0, stale = 0;
	int ep, st = 0;
	pid_t pid;

	conn_open(&c, size);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0)
		_exit(writer(&c));
	ep = epoll_create1(EPOLL_CLOEXEC);
	CU_ASSERT_FATAL(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, c.sv[1], &ev) == 0);
	for (;;) {
		if (how == ON_POLL_PART) { /* a piece, then a wait, bytes left or not */
			get(&c.b, c.fb, &off, 1 + (size_t)(off % 5000));
			if ((ff_sring_eof(&c.rb) && !ff_sring_readable(&c.rb)) || c.rb.corrupt)
				break;
			sleeps += !ff_sring_readable(&c.rb);
			poll_in(&c, &lost, &stale);
			continue;
		}
		if (get(&c.b, c.fb, &off, BIG) > 0)
			continue;
		if (ff_sring_eof(&c.rb) || c.rb.corrupt)
			break;
		if (spin) { /* watch the ring a moment; look once more after */
			bool got = false;

			ff_sdoor_spin_begin(&c.b, 20000);
			for (int i = 0; i < 2000 && !got; i++)
				got = ff_sring_readable(&c.rb) > 0 || ff_sring_eof(&c.rb);
			ff_sdoor_spin_end(&c.b);
			if (got || ff_sring_readable(&c.rb) > 0 || ff_sring_eof(&c.rb)) {
				spins++;
				continue;
			}
		}
		sleeps++;
		if (how == ON_POLL) {
			poll_in(&c, &lost, &stale);
			continue;
		}
		while (epoll_wait(ep, &out, 1, WAIT_MS) == 0) {
			/* asleep while the ring holds bytes */
			if (ff_sring_readable(&c.rb) > 0) {
				lost++;
				break;
			}
		}
	}
	CU_ASSERT_EQUAL(off, BIG);
	CU_ASSERT_FATAL(waitpid(pid, &st, 0) == pid);
	CU_ASSERT(WIFEXITED(st));
	CU_ASSERT_EQUAL(WEXITSTATUS(st), 0); /* the writer's lost wake-ups */
	CU_ASSERT_EQUAL(lost, 0);
	CU_ASSERT_EQUAL(stale, 0); /* readable with nothing to read */
	fprintf(stderr, "16 MiB through %u KiB: the reader slept %llu times%s", size >> 10,
		(unsigned long long)sleeps, spin ? "" : "\n");
	if (spin)
		fprintf(stderr, ", found bytes spinning %llu times\n", (unsigned long long)spins);
	close(ep);
	conn_close(&c);
}

static void test_processes(void)
{
	stream(FF_SRING_MIN, ON_EPOLL_ET);
	stream(256u << 10, ON_EPOLL_ET);
	stream(FF_SRING_MIN, SPINS); /* a reader that spins before it sleeps */
	/* a level-triggered reader, which wakes for every byte on its socket:
	 * a filling or its token that came after the reader emptied the ring
	 * and took what it counted left the socket readable with nothing to
	 * read (an app's poll said POLLIN, its read EAGAIN) */
	stream(FF_SRING_MIN, ON_POLL);
	stream(256u << 10, ON_POLL);
	/* and one that reads a piece at a time, waiting between pieces: the
	 * socket stays readable while the ring has bytes (a filling the
	 * writer counted, then took back, once cost the queue its last byte) */
	stream(FF_SRING_MIN, ON_POLL_PART);
	stream(64u << 10, ON_POLL_PART);
}

/* ---- a hostile peer ---- */

static void test_hostile(void)
{
	struct conn c;
	struct ff_sring_hdr *h;
	uint64_t wo = 0, ro = 0;

	conn_open(&c, FF_SRING_MIN);
	h = c.ma;
	/* counts that say a lot is queued: the consumer takes what is there
	 * and returns at once */
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 10), 10);
	h->dir[0].tokens = UINT64_MAX / 2 + 1;
	h->dir[0].stuffed = 1;
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 4096), 10);
	CU_ASSERT(!READABLE(c.sv[1]));
	/* counts behind: nothing is taken, nothing blocks */
	h->dir[0].tokens &= ~1ull;
	CU_ASSERT_EQUAL(put(&c.a, c.fa, &wo, 10), 10);
	h->dir[0].drained = UINT64_MAX;
	CU_ASSERT_EQUAL(get(&c.b, c.fb, &ro, 4096), 10);
	CU_ASSERT_EQUAL(wo, ro);
	conn_close(&c);
}

int main(void)
{
	static const struct cu_test tests[] = {
	    {"readiness", test_readiness},
	    {"spin", test_spin},
	    {"processes", test_processes},
	    {"hostile", test_hostile},
	    {0},
	};

	return cu_run("sdoor", tests);
}
