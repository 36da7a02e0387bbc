/* Shared-memory byte rings of a same-host connection (sring.h, ff/sring.h).
 * What the peer wrote in the shared page is read with atomics and checked
 * before use: the size comes from our attach, every position is masked,
 * and a head/tail pair that no honest peer can produce marks the ring
 * corrupt for good. */
#include "sring.h"

#include <ff/wire.h>

#include <errno.h>
#include <string.h>

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* A new layout is a new capability (ff/wire.h). */
_Static_assert(FF_SRING_VERSION == 3 && FF_CAP_RINGS == (1u << 3),
	       "a new ring layout needs a new FF_CAP_RINGS bit");

size_t ff_sring_len(uint32_t size)
{
	if (size < FF_SRING_MIN || size > FF_SRING_MAX || (size & (size - 1)))
		return 0;
	return FF_SRING_HDR + 2 * (size_t)size;
}

int ff_sring_format(void *mem, size_t len, uint32_t size)
{
	struct ff_sring_hdr *h = mem;
	size_t need = ff_sring_len(size);

	if (!need || len < need)
		return -EINVAL;
	h->version = FF_SRING_VERSION;
	h->size = size;
	STORE(&h->magic, FF_SRING_MAGIC);
	return 0;
}

static int robust_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int err;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	err = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -err;
}

int ff_sring_end_format(void *mem)
{
	struct ff_sring_end *e = mem;
	int err = robust_init(&e->rx);

	if (!err)
		err = robust_init(&e->tx);
	if (!err)
		STORE(&e->magic, FF_SRING_END_MAGIC);
	return err;
}

int ff_sring_attach(struct ff_sring *r, void *mem, size_t len, int side)
{
	struct ff_sring_hdr *h = mem;
	uint32_t size;
	size_t need;

	if ((side != 0 && side != 1) || len < FF_SRING_HDR || LOAD(&h->magic) != FF_SRING_MAGIC ||
	    LOAD(&h->version) != FF_SRING_VERSION)
		return -EINVAL;
	size = LOAD(&h->size); /* once: the peer may change it later */
	need = ff_sring_len(size);
	if (!need || len < need)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->size = size;
	r->tx = &h->dir[side];
	r->rx = &h->dir[!side];
	r->txd = (uint8_t *)mem + FF_SRING_HDR + (size_t)side * size;
	r->rxd = (uint8_t *)mem + FF_SRING_HDR + (size_t)!side * size;
	return 0;
}

/* Bytes to read, with our tail in *tail; -1 if the ring is corrupt. */
static int64_t avail(struct ff_sring *r, uint64_t *tail)
{
	uint64_t head = LOAD(&r->rx->head), n;

	*tail = __atomic_load_n(&r->rx->tail, __ATOMIC_RELAXED);
	n = head - *tail;
	if (r->corrupt || n > r->size) {
		r->corrupt = true;
		return -1;
	}
	return (int64_t)n;
}

/* Free space, with our head in *head; -1 if the ring is corrupt. */
static int64_t space(struct ff_sring *r, uint64_t *head)
{
	uint64_t tail = LOAD(&r->tx->tail), used;

	*head = __atomic_load_n(&r->tx->head, __ATOMIC_RELAXED);
	used = *head - tail;
	if (r->corrupt || used > r->size) {
		r->corrupt = true;
		return -1;
	}
	return (int64_t)(r->size - used);
}

/* Copies n bytes between ring d at position pos and buf (to the ring if
 * in), wrapping around its end. */
static void copy(uint8_t *d, uint32_t size, uint64_t pos, void *buf, size_t n, bool in)
{
	size_t off = (size_t)(pos & (size - 1)), first = n < size - off ? n : size - off;

	if (in) {
		memcpy(d + off, buf, first);
		memcpy(d, (uint8_t *)buf + first, n - first);
	} else {
		memcpy(buf, d + off, first);
		memcpy((uint8_t *)buf + first, d, n - first);
	}
}

/* Copies the iovecs, at most max bytes, between ring d from position pos
 * on and their buffers (to the ring if in), storing the new position in
 * *idx (unless NULL) after every FF_SRING_STEP bytes and at the end: a
 * large copy is taken in pieces, so the other side starts on the first
 * piece (reading it, or writing into the room it made) while this one
 * copies the next, and a copy of 128 KiB is not one 128 KiB wait. How
 * many. */
static size_t copy_iov(uint8_t *d, uint32_t size, uint64_t pos, const struct iovec *iov, int n,
		       size_t max, bool in, uint64_t *idx)
{
	size_t done = 0, mark = FF_SRING_STEP;

	for (int i = 0; i < n && done < max; i++) {
		size_t k = iov[i].iov_len < max - done ? iov[i].iov_len : max - done, off = 0;

		while (off < k) {
			size_t m = k - off;

			if (idx && done + m > mark)
				m = mark - done;
			copy(d, size, pos + done, (uint8_t *)iov[i].iov_base + off, m, in);
			off += m;
			done += m;
			if (idx && done == mark && done < max) {
				STORE(idx, pos + done);
				mark += FF_SRING_STEP;
			}
		}
	}
	if (idx && done)
		STORE(idx, pos + done);
	return done;
}

ssize_t ff_sring_writev(struct ff_sring *r, const struct iovec *iov, int n)
{
	uint64_t head;
	int64_t room = space(r, &head);

	if (room < 0)
		return -ECONNRESET;
	if (LOAD(&r->tx->cons_shut))
		return -EPIPE;
	return (ssize_t)copy_iov(r->txd, r->size, head, iov, n, (size_t)room, true, &r->tx->head);
}

ssize_t ff_sring_write(struct ff_sring *r, const void *buf, size_t len)
{
	struct iovec v = {.iov_base = (void *)buf, .iov_len = len};

	return ff_sring_writev(r, &v, 1);
}

ssize_t ff_sring_readv(struct ff_sring *r, const struct iovec *iov, int n, bool peek)
{
	uint64_t tail;
	int64_t have = avail(r, &tail);

	if (have < 0)
		return -ECONNRESET;
	return (ssize_t)copy_iov(r->rxd, r->size, tail, iov, n, (size_t)have, false,
				 peek ? NULL : &r->rx->tail);
}

ssize_t ff_sring_read(struct ff_sring *r, void *buf, size_t len, bool peek)
{
	struct iovec v = {.iov_base = buf, .iov_len = len};

	return ff_sring_readv(r, &v, 1, peek);
}

size_t ff_sring_readable(struct ff_sring *r)
{
	uint64_t tail;
	int64_t n = avail(r, &tail);

	return n < 0 ? 0 : (size_t)n;
}

size_t ff_sring_writable(struct ff_sring *r)
{
	uint64_t head;
	int64_t n = space(r, &head);

	return n < 0 ? 0 : (size_t)n;
}

bool ff_sring_eof(struct ff_sring *r)
{
	/* shut first: a producer stores its last head before it */
	return LOAD(&r->rx->prod_shut) && ff_sring_readable(r) == 0;
}

bool ff_sring_peer_gone(struct ff_sring *r)
{
	return LOAD(&r->tx->cons_shut) != 0;
}

void ff_sring_shut_tx(struct ff_sring *r)
{
	STORE(&r->tx->prod_shut, 1);
}

void ff_sring_shut_rx(struct ff_sring *r)
{
	STORE(&r->rx->cons_shut, 1);
}
