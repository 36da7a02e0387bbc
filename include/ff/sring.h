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
 * Doorbells (the socketpair): a consumer about to sleep sets cons_wait and
 * looks at head once more; a producer, after publishing head, swaps
 * cons_wait to 0 and writes a doorbell byte if it was 1. The same for a
 * producer waiting for space (prod_wait, tail). A fence on each side
 * between its store and its load makes a missed wake-up impossible (one of
 * them sees the other's store). */
#pragma once

#include <stdint.h>

#define FF_SRING_MAGIC 0x66667372u /* "ffsr" */
#define FF_SRING_VERSION 1u
#define FF_SRING_HDR 4096u            /* the header page precedes ring 0 */
#define FF_SRING_MIN (4u << 10)       /* bytes of one ring */
#define FF_SRING_MAX (64u << 20)
#define FF_SRING_DEFAULT (256u << 10)

/* One direction: the producer's cache line and the consumer's. */
struct ff_sring_idx {
	uint64_t head;      /* bytes the producer has written */
	uint32_t prod_shut; /* the producer writes no more: EOF after head */
	uint32_t prod_wait; /* the producer sleeps until there is space */
	uint32_t pad0[12];
	uint64_t tail;      /* bytes the consumer has taken */
	uint32_t cons_shut; /* the consumer reads no more: writes fail (EPIPE) */
	uint32_t cons_wait; /* the consumer sleeps until there are bytes */
	uint32_t pad1[12];
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
