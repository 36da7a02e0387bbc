/* Layouts of the two memfds a router hands a shim at Hello.
 *
 * Map page (read-only for shims): the set of overlay addresses. Written only
 * by the router under a seqlock: seq is odd while an update is in progress.
 * Entries are sorted (family, ip) so readers can bsearch. The memfd is
 * sealed against writes other than through the router's own mapping, so a
 * shim cannot reopen it writable; readers still bound every index by
 * FF_MAP_CAP, never by cap or count.
 *
 * Stats page (one per container, read-write for that container's shims):
 * per-connection byte counters. A shim only adds to the slot the router gave
 * it for a connection; the router only reads them, and treats them as
 * untrusted numbers. */
#pragma once

#include <stdint.h>

#define FF_MAP_MAGIC 0x66666d61u /* "ffma" */
#define FF_MAP_CAP 65536u

struct ff_map_ent {
	uint8_t family; /* AF_INET / AF_INET6 */
	uint8_t flags;  /* FF_MAPF_* */
	uint8_t pad[2];
	uint8_t ip[16]; /* IPv4 in the first 4 bytes */
};

#define FF_MAPF_LOCAL 0x01 /* container on this host */

struct ff_map_hdr {
	uint32_t magic;
	uint32_t cap;
	uint32_t seq;   /* seqlock; odd while the router writes */
	uint32_t count; /* valid entries */
	uint64_t generation;
	uint8_t pad[40];
	struct ff_map_ent ent[];
};

#define FF_MAP_SIZE (sizeof(struct ff_map_hdr) + FF_MAP_CAP * sizeof(struct ff_map_ent))

#define FF_STAT_MAGIC 0x66667374u /* "ffst" */
#define FF_STAT_SLOTS 65536u

struct ff_stat_slot {
	uint64_t tx; /* bytes this side sent */
	uint64_t rx; /* bytes this side received */
};

struct ff_stat_hdr {
	uint32_t magic;
	uint32_t slots;
	uint8_t pad[56];
	struct ff_stat_slot slot[];
};

#define FF_STAT_SIZE (sizeof(struct ff_stat_hdr) + FF_STAT_SLOTS * sizeof(struct ff_stat_slot))
