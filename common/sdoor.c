/* The doorbell of a same-host connection over rings (sdoor.h). The app
 * never sees a ring: it sees its socket, so the socket's readiness must
 * be the ring's, whenever the app looks and without the shim being asked
 * (epoll_wait, select and poll go straight to the kernel). The kernel
 * says an AF_UNIX stream end is
 *   readable iff its receive queue is not empty (or the peer shut down),
 *   writable iff what it sent and the peer has not read yet is small
 *     (a quarter of its SO_SNDBUF, counted in skb sizes).
 * Both are the one queue of bytes from the producer P of a direction to
 * its consumer C: C is readable iff the queue is not empty, P writable iff
 * it is short. So the queue is kept in step with ring d:
 *
 * Readable. tokens is one word: the bytes P put into the socket (times
 *   two) and an armed bit, so that P's count and C's look at it are one
 *   atomic step each. P, after publishing head H: fence; if not armed, P
 *   arms and counts a token in one CAS; fence; if C has already taken
 *   everything (tail == H), the token would only make the socket readable
 *   with nothing to read (apps that take EAGAIN after POLLIN for an error,
 *   wrk, count it): P takes it back with a CAS from the value it set,
 *   which fails exactly when C counted it since; else P sends it. C, after
 *   a read that left the ring empty: R1 disarm, reading the count, in one
 *   fetch-and; fence; R2 if the ring has bytes now, stop; R3 take
 *   count - drained bytes off the queue, waiting a moment for a counted
 *   token still on its way.
 *   - No lost wake-up: either C's R2 sees P's head (C keeps its queue as it
 *     is) or P's armed test sees C's disarm; P's token then was not
 *     counted by R1, and R3, which takes the oldest count - drained bytes,
 *     leaves it (P sends under its lock, one after the other: an older
 *     token is queued before a newer one).
 *   - No stale readiness: a token sent is either for bytes C has not taken
 *     (tail < H when P looked), or one C counted (the take-back failed) and
 *     takes at R3. A counted token always comes: P takes back only what
 *     nobody counted. The filling (below) is such a token too: counted
 *     after its send, as it once was, it could reach a C that had just
 *     emptied the ring past R3 (a POLLIN, then EAGAIN, for the app).
 * Edges. TCP wakes an edge-triggered epoll at every arrival, also while
 *   bytes are still queued. C sets seen after each read that leaves bytes;
 *   P, finding tokens armed, counts one more if it swaps seen 1 -> 0 (and
 *   takes it back, as above, if C took everything meanwhile).
 *   C takes the tokens past EDGE_TOKENS but the last (each one is an skb
 *   on P's send buffer, and P must stay writable).
 * Writable. P, finding no room: S1 stuffed = 1; fence; if room came, write
 *   again; else S2 send a filling of a quarter of the send buffer (the
 *   socket is then not writable), then one token: counted and armed
 *   before they are sent, and taken back if C took everything meanwhile
 *   and did not count them, as a token is (a C that counted them takes
 *   them at R3); and S1 again (so that a C that looked before the
 *   filling was counted looks again). C, after a read
 *   that left a third of the ring free: fence; if stuffed, stuffed = 0 and
 *   take all bytes of the queue but the last (count - drained - 1): the
 *   filling goes, the last token stays while the ring holds bytes, and the
 *   kernel wakes P's POLLOUT. If the ring is empty, R4 takes everything.
 *   - No lost wake-up: either P's check after S1 sees C's tail (P writes
 *     again) or C sees stuffed == 1, after P's filling was counted.
 *   - A filling that could not be followed by its token (the queue was
 *     full already) keeps P unwritable until C empties the ring; P then
 *     waits longer, never for ever.
 * Spinning. A consumer about to sleep may watch its ring in memory
 *   instead for a while: it stores spin_until (a CLOCK_MONOTONIC deadline),
 *   fence, and reads the ring until bytes come or the time is up; then
 *   spin_until = 0, fence, and one more look at the ring before it sleeps.
 *   P, after publishing head and its fence, finding tokens not armed, sends
 *   no token while spin_until is ahead of its clock.
 *   - No lost wake-up: P skips only having read spin_until != 0 after its
 *     head; C's look follows its own clear and fence, so it sees that head
 *     (the fences order P's store before its load and C's likewise; one of
 *     the two loads sees the other's store). A spinner that died before
 *     its clear stops counting at its deadline (at most a second away).
 *   - Nothing else changes: no token was counted, C takes none (R3 takes
 *     count - drained), and P arms the next time as before.
 * Lazy disarm. C, having emptied its ring, may leave tokens armed (its
 *   socket readable with nothing to read) until just before anyone waits
 *   on the socket: the shim runs R1-R3 for such an end first thing in
 *   poll, select, epoll_wait and their kin, and in a blocking read; a
 *   non-blocking read that finds the ring empty says EAGAIN. Meanwhile P,
 *   finding tokens armed, sends nothing, so a reader that comes back
 *   before it would wait costs neither side a system call.
 *   - No lost wake-up: a waiter on a level-triggered socket cannot sleep
 *     while a token is queued, and one that begins later finds it
 *     disarmed (R1-R3 before it waits). Never while stuffed (P waits for
 *     room: the empty ring's R4 is due now), nor once a holder registered
 *     the end for edges: an edge-triggered waiter already asleep (another
 *     thread) would get no edge for the next bytes.
 *   - A wait that may sleep may first watch such rings (a stream's, for
 *     a few microseconds: libffshim's stream_spin) before the disarms:
 *     P sends nothing meanwhile while tokens are armed (and a token it
 *     does send only ends the wait), and an end whose ring has bytes by
 *     then is left as it is: readable, the ring not empty.
 *   - Readiness stays exact for every wait that begins after the read; one
 *     that began before (in another thread or process) may report a
 *     readable socket whose ring is empty, as TCP's does when another
 *     thread read first.
 * Edges are asked for only while edges says a holder registered the end
 *   with EPOLLET (or always, without edges): seen stays 0 otherwise.
 * EOF and the peer's end: shutdown and close go to the socket too
 * (libffshim), so the kernel reports them as it always did; the tokens
 * before an EOF are taken like any others.
 * A hostile peer can set tokens, drained, seen and stuffed to anything:
 * C then takes at most what its own queue holds (never blocks), and the
 * only harm is to the peer's own connection (a wake-up it lost). */
#include "sdoor.h"

#include <errno.h>
#include <poll.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Raw system calls: the shim, which links this, interposes send and recv.
 * The syscall() wrapper returns -1 with errno, as they do. */
#define SEND(fd, b, n, f) syscall(SYS_sendto, (fd), (b), (n), (f), NULL, 0)
#define RECV(fd, b, n, f) syscall(SYS_recvfrom, (fd), (b), (n), (f), NULL, NULL)

#define LOAD(p)	    __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define FENCE()	    __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* FILL_PIECE: one skb of an AF_UNIX stream, whose sends make skbs of up
 * to SKB_MAX_HEAD(0) + 32 KiB and of up to half the send buffer (a
 * filling of a quarter of it is below that) */
#define FILL_MAX    (64u << 10)
#define FILL_PIECE  (32u << 10) /* a filling's piece */
#define DRAIN_MAX   (16u << 20) /* at one call: a hostile count stops there */
#define TAKE_WAITS  10		/* 1 ms each */
#define EDGE_TOKENS 4		/* tokens a consumer lets pile up while it reads */
#define ARM_TRIES   64		/* an honest consumer fails a CAS once: its R1 */

int ff_sdoor_init(struct ff_sdoor *d, struct ff_sring *r, int fd)
{
	int sz = 0;
	socklen_t len = sizeof(sz);

	if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_SNDBUF, &sz, &len) < 0)
		return -errno;
	d->r = r;
	d->edges = NULL;
	d->stuff = (uint32_t)sz / 4 + 512;
	if (d->stuff > FILL_MAX)
		d->stuff = FILL_MAX;
	if (d->stuff < 1)
		d->stuff = 1;
	return 0;
}

#define ARMED	 1ull
#define COUNT(v) ((v) >> 1)

/* Sends up to n bytes of b: how many went (0: the socket is full), or
 * -errno. */
static ssize_t put(int fd, const void *b, size_t n)
{
	ssize_t k;

	do
		k = SEND(fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		return -errno;
	return k < 0 ? 0 : k;
}

/* Takes back the count of n bytes that no send delivered. */
static void uncount(struct ff_sdoor *d, uint64_t n)
{
	if (n)
		__atomic_sub_fetch(&d->r->tx->tokens, 2 * n, __ATOMIC_SEQ_CST);
}

/* Takes up to n bytes off our queue; counts them. With wait, bytes that
 * the count says were sent and are not there yet (a producer between its
 * count and its send) are waited for, a few milliseconds at most. */
static int take(struct ff_sdoor *d, int fd, uint64_t n, bool wait)
{
	static char sink[FILL_MAX]; /* only the kernel writes it; never read */
	uint64_t got = 0;
	int err = 0, waits = 0;

	if (n > DRAIN_MAX)
		n = DRAIN_MAX;
	while (got < n) {
		size_t want = n - got < sizeof(sink) ? (size_t)(n - got) : sizeof(sink);
		ssize_t k = RECV(fd, sink, want, MSG_DONTWAIT);

		if (k > 0) {
			got += (uint64_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			err = -errno;
			break;
		}
		if (k == 0 || !wait || ++waits > TAKE_WAITS)
			break; /* EOF, or a count that no send will honour */
		struct pollfd p = {.fd = fd, .events = POLLIN};

		syscall(SYS_poll, &p, 1, 1);
	}
	if (got)
		__atomic_add_fetch(&d->r->rx->drained, got, __ATOMIC_RELEASE);
	return err;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ff_sdoor_spin_begin(struct ff_sdoor *d, uint64_t ns)
{
	STORE(&d->r->rx->spin_until, mono_ns() + ns);
	FENCE();
}

void ff_sdoor_spin_end(struct ff_sdoor *d)
{
	STORE(&d->r->rx->spin_until, 0);
	FENCE();
}

int ff_sdoor_wrote(struct ff_sdoor *d, int fd)
{
	struct ff_sring_idx *x = d->r->tx;
	uint64_t v, nv, head = __atomic_load_n(&x->head, __ATOMIC_RELAXED);
	uint32_t one = 1;
	ssize_t k;

	FENCE();
	v = LOAD(&x->tokens);
	if (!(v & ARMED)) {
		uint64_t until = LOAD(&x->spin_until);

		if (until && mono_ns() < until)
			return 0; /* the consumer watches the ring */
		nv = v + 2 + ARMED;
		if (!__atomic_compare_exchange_n(&x->tokens, &v, nv, false, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST))
			return 0; /* only a hostile peer changes it but by disarming */
	} else if (LOAD(&x->seen) &&
		   __atomic_compare_exchange_n(&x->seen, &one, 0, false, __ATOMIC_SEQ_CST,
					       __ATOMIC_SEQ_CST)) {
		/* armed: the consumer is readable already; an arrival after
		 * it took bytes still gets a token, as TCP's each segment
		 * wakes an edge-triggered epoll */
		nv = v + 2;
		if (!__atomic_compare_exchange_n(&x->tokens, &v, nv, false, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST))
			return 0;
	} else {
		return 0;
	}
	FENCE();
	if (LOAD(&x->tail) == head &&
	    __atomic_compare_exchange_n(&x->tokens, &nv, v, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		return 0;    /* all taken already, and nobody counted the token */
	k = put(fd, "t", 1); /* 0: the queue is full, so not empty either */
	if (k <= 0)
		uncount(d, 1);
	return k < 0 ? (int)k : 0;
}

/* Room (or an end that makes writing fail at once) after S1. */
static bool room_after_flag(struct ff_sdoor *d)
{
	STORE(&d->r->tx->stuffed, 1);
	FENCE();
	return ff_sring_writable(d->r) > 0 || ff_sring_peer_gone(d->r) || d->r->corrupt;
}

int ff_sdoor_full(struct ff_sdoor *d, int fd)
{
	static const char fill[FILL_PIECE];
	struct ff_sring_idx *x = d->r->tx;
	uint64_t v, nv, n = (uint64_t)d->stuff + 1, sent = 0;
	uint64_t head = __atomic_load_n(&x->head, __ATOMIC_RELAXED);
	ssize_t k;

	if (room_after_flag(d))
		return 1;
	/* S2: the filling and its token are counted and armed before they
	 * go, and taken back if the consumer took everything and did not
	 * count them, as wrote() does with a token (no stale readiness).
	 * Only then: a consumer that read part of the ring may have counted
	 * them without R1 (took(), bytes left), and taken the queue's last
	 * byte in their stead; they must come. */
	v = LOAD(&x->tokens);
	for (int i = 0;; i++) {
		nv = (v + 2 * n) | ARMED;
		if (__atomic_compare_exchange_n(&x->tokens, &v, nv, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			break;
		if (i == ARM_TRIES) { /* a peer that keeps changing it: counted, sent */
			__atomic_add_fetch(&x->tokens, 2 * n, __ATOMIC_SEQ_CST);
			nv = 0;
			break;
		}
	}
	FENCE();
	if (nv && LOAD(&x->tail) == head &&
	    __atomic_compare_exchange_n(&x->tokens, &nv, v, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		return 1;
	/* in pieces of one skb each, which the kernel queues whole or not
	 * at all (a count taken back after a short send makes a consumer's
	 * R3 wait for bytes that do not come) */
	while (sent < d->stuff) {
		size_t m = d->stuff - sent < FILL_PIECE ? (size_t)(d->stuff - sent) : FILL_PIECE;

		k = put(fd, fill, m);
		if (k > 0)
			sent += (uint64_t)k;
		if (k < 0) {
			uncount(d, n - sent);
			return (int)k;
		}
		if ((size_t)k < m)
			break; /* the queue is full: not writable either */
	}
	k = put(fd, "t", 1);
	if (k > 0)
		sent++;
	uncount(d, n - sent);
	if (k < 0)
		return (int)k;
	return room_after_flag(d) ? 1 : 0;
}

static bool edges(const struct ff_sdoor *d)
{
	return !d->edges || LOAD(d->edges);
}

int ff_sdoor_took_lazy(struct ff_sdoor *d, int fd)
{
	FENCE(); /* our tail before stuffed, as for ff_sdoor_took */
	if (ff_sring_readable(d->r) == 0 && !d->r->corrupt && !LOAD(&d->r->rx->stuffed) &&
	    !edges(d))
		return 1;
	return ff_sdoor_took(d, fd);
}

int ff_sdoor_took(struct ff_sdoor *d, int fd)
{
	struct ff_sring_idx *x = d->r->rx;
	size_t have;
	uint64_t t;

	FENCE();
	have = ff_sring_readable(d->r);
	if (have > 0) {
		uint64_t queued = COUNT(LOAD(&x->tokens)) - LOAD(&x->drained);
		bool stuffed = LOAD(&x->stuffed),
		     room = stuffed && d->r->size - have >= d->r->size / 3;

		if (edges(d) && !LOAD(&x->seen))
			STORE(&x->seen, 1);
		/* the filling once there is room, and tokens past a few (each
		 * weighs on the producer's send buffer): all but the last */
		if (room)
			STORE(&x->stuffed, 0);
		if ((room || (!stuffed && queued > EDGE_TOKENS)) && queued > 1 &&
		    queued <= DRAIN_MAX) {
			int err = take(d, fd, queued - 1, false);

			if (err)
				return err;
		}
		return 0;
	}
	if (d->r->corrupt)
		return 0;
	STORE(&x->seen, 0);
	t = COUNT(__atomic_fetch_and(&x->tokens, ~ARMED, __ATOMIC_SEQ_CST)); /* R1 */
	FENCE();
	if (ff_sring_readable(d->r) > 0) /* R2 */
		return 0;
	return take(d, fd, t - LOAD(&x->drained), true); /* R3 */
}
