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
 * Readable. P, after publishing head: fence; if armed is 0 and P swaps it
 *   to 1, P sends a token (1 byte). C, after a read that left ring d
 *   empty: R1 t = sent; R2 armed = 0; fence; R3 if the ring has bytes (or
 *   EOF) now, stop; R4 take t - drained bytes off the queue.
 *   - No lost wake-up: with the two fences, either C's R3 sees P's head
 *     (C keeps its queue as it is) or P sees C's armed = 0 and sends a
 *     token counted after R1: t does not count it, and R4, which takes the
 *     oldest t - drained bytes, leaves it (P sends under its lock, one
 *     byte after the other, so an older token is in the queue before a
 *     newer one).
 *   - No stale readiness: P counts a token in sent before it sends it, so
 *     t counts every token sent before R1; R4 takes t - drained bytes,
 *     waiting a moment for a counted one still on its way (P between its
 *     count and its send). P sent none since (armed was 1 until R2, and
 *     after R2 P sends only for new bytes).
 *   - armed == 1 with the ring empty only means a token too many: C takes
 *     it at its next empty read.
 * Edges. TCP wakes an edge-triggered epoll at every arrival, also while
 *   bytes are still queued. C sets seen after each read that leaves bytes;
 *   P, finding armed == 1, sends one more token if it swaps seen 1 -> 0.
 *   C takes the tokens past EDGE_TOKENS but the last (each one is an skb
 *   on P's send buffer, and P must stay writable).
 * Writable. P, finding no room: S1 stuffed = 1; fence; if room came, write
 *   again; else S2 send a filling of half the send buffer (the socket is
 *   then not writable), then one token, and S1 again (so that a C that
 *   looked before the filling was counted looks again). C, after a read
 *   that left a third of the ring free: fence; if stuffed, stuffed = 0 and
 *   take all bytes of the queue but the last (sent - drained - 1): the
 *   filling goes, the last token stays while the ring holds bytes, and the
 *   kernel wakes P's POLLOUT. If the ring is empty, R4 takes everything.
 *   - No lost wake-up: either P's check after S1 sees C's tail (P writes
 *     again) or C sees stuffed == 1, after P's filling was counted.
 *   - A filling that could not be followed by its token (the queue was
 *     full already) keeps P unwritable until C empties the ring; P then
 *     waits longer, never for ever.
 * EOF and the peer's end: shutdown and close go to the socket too
 * (libffshim), so the kernel reports them as it always did; the tokens
 * before an EOF are taken like any others.
 * A hostile peer can set sent, drained, armed and stuffed to anything:
 * C then takes at most what its own queue holds (never blocks), and the
 * only harm is to the peer's own connection (a wake-up it lost). */
#include "sdoor.h"

#include <errno.h>
#include <poll.h>
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

#define FILL_MAX    (64u << 10)
#define DRAIN_MAX   (16u << 20) /* at one call: a hostile count stops there */
#define TAKE_WAITS  10		/* 1 ms each */
#define EDGE_TOKENS 4		/* tokens a consumer lets pile up while it reads */

int ff_sdoor_init(struct ff_sdoor *d, struct ff_sring *r, int fd)
{
	int sz = 0;
	socklen_t len = sizeof(sz);

	if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_SNDBUF, &sz, &len) < 0)
		return -errno;
	d->r = r;
	d->stuff = (uint32_t)sz / 2;
	if (d->stuff > FILL_MAX)
		d->stuff = FILL_MAX;
	if (d->stuff < 1)
		d->stuff = 1;
	return 0;
}

/* Sends up to n bytes of b: how many went (0: the socket is full), or
 * -errno. A token (pre) is counted in sent before it is sent, so that a
 * consumer never counts less than its queue holds from before it looked
 * (it waits a moment for a counted token still on its way: take()); a
 * filling is counted once the kernel has it. */
static ssize_t put(struct ff_sdoor *d, int fd, const void *b, size_t n, bool pre)
{
	ssize_t k;

	if (pre)
		__atomic_add_fetch(&d->r->tx->sent, (uint64_t)n, __ATOMIC_SEQ_CST);
	do
		k = SEND(fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		k = -errno;
	else if (k < 0)
		k = 0;
	if (pre && (size_t)(k > 0 ? k : 0) < n)
		__atomic_sub_fetch(&d->r->tx->sent, n - (size_t)(k > 0 ? k : 0), __ATOMIC_SEQ_CST);
	if (!pre && k > 0)
		__atomic_add_fetch(&d->r->tx->sent, (uint64_t)k, __ATOMIC_RELEASE);
	return k;
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

int ff_sdoor_wrote(struct ff_sdoor *d, int fd)
{
	uint32_t zero = 0;
	ssize_t k;

	FENCE();
	if (LOAD(&d->r->tx->armed) ||
	    !__atomic_compare_exchange_n(&d->r->tx->armed, &zero, 1, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST)) {
		uint32_t one = 1;

		/* armed: the consumer is readable already; an arrival after
		 * it took bytes still gets a token, as TCP's each segment
		 * wakes an edge-triggered epoll */
		if (!LOAD(&d->r->tx->seen) ||
		    !__atomic_compare_exchange_n(&d->r->tx->seen, &one, 0, false, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST))
			return 0;
	}
	k = put(d, fd, "t", 1, true); /* 0: the queue is full, so not empty either */
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
	static const char fill[FILL_MAX];
	ssize_t k;

	if (room_after_flag(d))
		return 1;
	k = put(d, fd, fill, d->stuff, false);
	if (k < 0)
		return (int)k;
	k = put(d, fd, "t", 1, true);
	if (k < 0)
		return (int)k;
	return room_after_flag(d) ? 1 : 0;
}

int ff_sdoor_took(struct ff_sdoor *d, int fd)
{
	struct ff_sring_idx *x = d->r->rx;
	size_t have;
	uint64_t t;

	FENCE();
	have = ff_sring_readable(d->r);
	if (have > 0) {
		uint64_t queued = LOAD(&x->sent) - LOAD(&x->drained);
		bool stuffed = LOAD(&x->stuffed),
		     room = stuffed && d->r->size - have >= d->r->size / 3;

		if (!LOAD(&x->seen))
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
	t = LOAD(&x->sent); /* R1 */
	STORE(&x->seen, 0);
	STORE(&x->armed, 0); /* R2 */
	FENCE();
	if (ff_sring_readable(d->r) > 0) /* R3 */
		return 0;
	return take(d, fd, t - LOAD(&x->drained), true); /* R4 */
}
