/* One end of a same-host connection's shared-memory rings (ff/sring.h):
 * the byte-stream operations both shims use, and the router's formatting
 * of a new memfd. One producer and one consumer per direction: an end used
 * by several threads or processes serialises its calls itself.
 *
 * Results: a byte count (> 0); 0 when there is nothing to read (see
 * ff_sring_eof) or no space to write; -EPIPE a write after the peer stopped
 * reading; -ECONNRESET the peer corrupted the ring (from then on every call
 * says so). */
#pragma once

#include <ff/sring.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ff_sring {
	struct ff_sring_idx *tx, *rx; /* the direction we write, the one we read */
	uint8_t *txd, *rxd;           /* their bytes */
	uint32_t size;                /* read once, at attach */
	bool corrupt;
};

/* Bytes of a memfd with rings of size bytes, or 0 if size is no power of
 * two in [FF_SRING_MIN, FF_SRING_MAX]. */
size_t ff_sring_len(uint32_t size);
/* Formats mem (len bytes, zeroed, as a new memfd is): 0 or -EINVAL. */
int ff_sring_format(void *mem, size_t len, uint32_t size);
/* Formats a zeroed end page (FF_SRING_HDR bytes, mapped shared): 0 or -errno. */
int ff_sring_end_format(void *mem);
/* r becomes side's end (0 or 1) of the rings in mem (len bytes, mapped
 * shared); 0, or -EINVAL if the header is not a valid one for len. */
int ff_sring_attach(struct ff_sring *r, void *mem, size_t len, int side);

/* Copies up to the iovecs' total out (0 when full). */
ssize_t ff_sring_writev(struct ff_sring *r, const struct iovec *iov, int n);
ssize_t ff_sring_write(struct ff_sring *r, const void *buf, size_t len);
/* Copies up to the iovecs' total in, taking it unless peek. */
ssize_t ff_sring_readv(struct ff_sring *r, const struct iovec *iov, int n, bool peek);
ssize_t ff_sring_read(struct ff_sring *r, void *buf, size_t len, bool peek);

/* Bytes there are to read / space to write (0 on a corrupt ring). */
size_t ff_sring_readable(struct ff_sring *r);
size_t ff_sring_writable(struct ff_sring *r);
/* Nothing left to read and the peer writes no more. */
bool ff_sring_eof(struct ff_sring *r);
/* The peer reads no more: a write fails with EPIPE. */
bool ff_sring_peer_gone(struct ff_sring *r);
/* Our side writes no more (shutdown SHUT_WR, close) / reads no more. */
void ff_sring_shut_tx(struct ff_sring *r);
void ff_sring_shut_rx(struct ff_sring *r);
