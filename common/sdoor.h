/* The doorbell of a same-host connection over shared-memory rings
 * (ff/sring.h, sring.h): the app's own socketpair end, which carries no
 * data any more but whose readiness, as the kernel reports it to poll,
 * select and epoll, follows the rings (sdoor.c says how):
 *   readable iff the ring we read holds bytes (or the peer shut or left),
 *   writable iff the ring we write has room.
 * One producer and one consumer per direction at a time: an end used by
 * several threads or processes serialises its calls (as for sring.h).
 * Every call is non-blocking; results are 0 or -errno of the socket
 * (EPIPE, ECONNRESET: the peer is gone). */
#pragma once

#include "sring.h"

/* The send buffer the router gives both ends of a ring connection's
 * socketpair (SO_SNDBUF; the kernel doubles it): room for the tokens of
 * both directions and for one filling. */
#define FF_SDOOR_SNDBUF (32u << 10)

struct ff_sdoor {
	struct ff_sring *r;
	uint32_t stuff; /* bytes of one filling: half the socket's send buffer */
	/* NULL: always edge-triggered wake-ups (sdoor.c, Edges); else only
	 * once *edges is not 0, and ff_sdoor_took_lazy may defer. */
	const uint32_t *edges;
};

/* The calls take the socket (fd) each time: any fd of the app's file will
 * do, and the number it had at init may be closed or reused since. */

/* d becomes the doorbell of r on fd: 0, or -errno if fd is no socket. */
int ff_sdoor_init(struct ff_sdoor *d, struct ff_sring *r, int fd);
/* We wrote bytes into the ring: the peer becomes readable. */
int ff_sdoor_wrote(struct ff_sdoor *d, int fd);
/* The ring we write had no room: makes fd unwritable until the peer makes
 * room. 1: room came meanwhile (write again); 0: wait for POLLOUT on fd,
 * then write again. */
int ff_sdoor_full(struct ff_sdoor *d, int fd);
/* We read from the ring (any count, 0 too): fd stays readable only while
 * the ring holds bytes, and the peer waiting for room gets it back. */
int ff_sdoor_took(struct ff_sdoor *d, int fd);
/* As ff_sdoor_took, but a read that left the ring empty may leave fd
 * readable, with nothing to read (1: deferred), until ff_sdoor_took comes
 * for it before anyone waits on fd (sdoor.c, Lazy disarm). 0 or -errno. */
int ff_sdoor_took_lazy(struct ff_sdoor *d, int fd);
/* Spinning (FFNET_SPIN_US): the consumer, about to sleep on an empty ring,
 * watches it in memory for up to ns instead; meanwhile the producer sends
 * no token, so a message costs neither side a system call. spin_end must
 * follow, and then one more look at the ring before sleeping. */
void ff_sdoor_spin_begin(struct ff_sdoor *d, uint64_t ns);
void ff_sdoor_spin_end(struct ff_sdoor *d);
