/* Same-host connections over shared memory (issue 14): the layout of the
 * memfd the router creates for one connection and hands to both shims with
 * the socketpair, which stays the doorbell and the fallback.
 *
 * A header page, then two byte rings of the same size, one per direction:
 * ring d carries what side d writes (side 0 is the connecting app's).
 * Counters are free-running uint64 byte counts; position = count & (size -
 * 1), size a power of two. The producer copies bytes, then publishes head
 * (release); the consumer reads head (acquire), copies, then publishes tail
 * (release).
 *
 * Neither side trusts the other: the memfd is shared by two containers. An
 * end reads magic and size once, when it attaches, and never again; every
 * position is masked, so no value in the shared page can move a copy out
 * of the ring; a head more than size ahead of tail, or behind it, is a
 * corrupt ring, and the connection ends with ECONNRESET (common/sring.c).
 *
 * Readiness (common/sdoor.c has the protocol and its proof): the
 * socketpair carries no data, only bytes whose presence the kernel turns
 * into the app's poll, select and epoll answers. The consumer's socket
 * holds at least one byte whenever its ring holds bytes (a token, sent by
 * the producer when it arms tokens) and none once it took everything;
 * a producer whose ring is full fills its socket's send buffer (stuffed),
 * so that the kernel says it is not writable until the consumer, having
 * made room, takes that filling off. tokens and drained count the bytes
 * put into and taken off the socket, so that a consumer takes only what
 * was there before it last looked. */
#pragma once

#include <pthread.h>
#include <stdint.h>

#define FF_SRING_MAGIC 0x66667372u /* "ffsr" */
#define FF_SRING_VERSION 3u
#define FF_SRING_HDR 4096u            /* the header page precedes ring 0 */
#define FF_SRING_MIN (4u << 10)       /* bytes of one ring */
#define FF_SRING_MAX (64u << 20)
#define FF_SRING_DEFAULT (512u << 10) /* the router's --same-host-rings */
#define FF_SRING_STEP (16u << 10)     /* a copy longer than this is published in pieces */

/* One direction: the producer's cache line and the consumer's. */
struct ff_sring_idx {
	uint64_t head;      /* bytes the producer has written */
	uint64_t tokens;    /* bytes the producer put into the socket, times 2; + 1 while
			     * armed: a token went to the consumer since it last found
			     * the ring empty (one word: both change in one atomic step) */
	uint32_t prod_shut; /* the producer writes no more: EOF after head */
	uint32_t stuffed;   /* the producer filled the socket: ring full */
	uint32_t pad0[10];
	uint64_t tail;      /* bytes the consumer has taken */
	uint64_t drained;   /* bytes the consumer has taken off its socket */
	uint32_t cons_shut; /* the consumer reads no more: writes fail (EPIPE) */
	uint32_t seen;      /* the consumer took bytes since the last token: the next bytes
			     * are an arrival of their own (an edge for EPOLLET) */
	uint64_t spin_until; /* CLOCK_MONOTONIC ns: till then the consumer watches the ring
			      * in memory and the producer sends no token (0: none) */
	uint32_t pad1[8];
};

struct ff_sring_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t size; /* bytes of each ring */
	uint32_t pad[13];
	struct ff_sring_idx dir[2]; /* dir[d]: what side d writes */
};

_Static_assert(sizeof(struct ff_sring_idx) == 128, "two cache lines");
_Static_assert(sizeof(struct ff_sring_hdr) <= FF_SRING_HDR, "one page");

/* One end's own page, in a memfd of its own that the router hands to that
 * end's holders only (the app that connected or accepted, and whoever gets
 * the end later through a Lookup: an exec'd image, a process the fd was
 * passed to), never to the peer, which could otherwise hold our locks.
 * The locks serialise the end's threads and processes (one producer and
 * one consumer per ring); holders counts the processes that mapped it, so
 * that the last one to close it ends the rings; inflight counts holds
 * taken for an fd on its way through SCM_RIGHTS, which its receiver
 * takes over; edges, once set, asks the doorbell for an edge at every
 * arrival. The router formats it (robust, process-shared mutexes). */
#define FF_SRING_END_MAGIC 0x66667365u /* "ffse" */

struct ff_sring_end {
	uint32_t magic;
	uint32_t holders;
	uint32_t inflight;
	uint32_t edges; /* a holder registered the end with EPOLLET (sdoor.c) */
	pthread_mutex_t rx, tx;
};

_Static_assert(sizeof(struct ff_sring_end) <= FF_SRING_HDR, "one page");
