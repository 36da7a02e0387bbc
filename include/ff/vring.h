/* Verbs data path shared by the shim and the router: the rings in the
 * memfds the router creates for each QP, SRQ and CQ, and the datagrams on
 * completion-channel and async-event sockets.
 *
 * Each queue has one producer and one consumer. Indices are free-running
 * uint32 counters; slot = index & (size - 1), size a power of two. The
 * producer writes slots, then publishes prod (release); the consumer reads
 * prod (acquire), the slots, then publishes cons (release).
 *   send/receive/SRQ queues: the shim produces, the router consumes.
 *   completion queues:       the router produces, the shim consumes.
 * The router never trusts what a shim wrote: it keeps its own cons and
 * geometry, copies each slot before checking it, and rejects a prod more
 * than size ahead of its cons.
 *
 * Doorbell: after publishing prod, the shim swaps need_db to 0 and, if it
 * was 1, writes the context's eventfd. The router sets need_db to 1 only
 * when it is about to sleep, and then looks at prod once more, so no work
 * is left unseen (like virtio's event suppression). */
#pragma once

#include <stdint.h>

#define FF_VRING_MAGIC 0x66667672u /* "ffvr" */
#define FF_VRING_HDR 4096u         /* the header page precedes the slots */

/* VerbsDestroy.kind */
enum {
	FF_VOBJ_PD = 1,
	FF_VOBJ_MR,
	FF_VOBJ_CQ,
	FF_VOBJ_QP,
	FF_VOBJ_SRQ,
	FF_VOBJ_CHANNEL,
};

/* Limits the router applies to one queue. */
#define FF_VRING_MAX_WR 16384u
#define FF_VRING_MAX_SGE 32u
#define FF_VRING_MAX_INLINE 1024u
#define FF_VRING_MAX_CQE 65536u

/* One direction of one queue: the producer's line and the consumer's line. */
struct ff_vq_idx {
	uint32_t prod;
	uint32_t pad0[15];
	uint32_t cons;
	uint32_t need_db;  /* work queues: the router sleeps, ring the doorbell */
	uint32_t arm_seq;  /* CQ: bumped by req_notify_cq (the shim writes it) */
	uint32_t arm_sol;  /* CQ: solicited_only of the last arm */
	uint32_t pad1[12];
};

struct ff_vq_geom {
	uint32_t size;   /* slots, a power of two (0: no such queue) */
	uint32_t stride; /* bytes per slot */
	uint32_t off;    /* offset of slot 0 from the start of the memfd */
	uint32_t max_sge;
	uint32_t max_inline; /* send queue: inline bytes per slot */
	uint32_t pad[3];
};

/* Header page of a QP memfd (sq and rq), an SRQ memfd (rq only) or a CQ
 * memfd (cq only). Geometry is written once by the router before the memfd
 * is handed out. */
struct ff_vring_hdr {
	uint32_t magic;
	uint32_t kind; /* FF_VOBJ_QP, _SRQ or _CQ */
	struct ff_vq_geom sq, rq, cq;
	uint8_t pad[128 - 8 - 3 * sizeof(struct ff_vq_geom)];
	struct ff_vq_idx sqi, rqi, cqi;
};

struct ff_vsge {
	uint64_t addr; /* the app's virtual address (the MR's iova) */
	uint32_t length;
	uint32_t lkey;
};

/* A send queue slot: this header, max_sge ff_vsge, then max_inline bytes
 * of inline data (used when send_flags has IBV_SEND_INLINE). */
struct ff_vwqe {
	uint64_t wr_id;
	uint8_t opcode; /* enum ibv_wr_opcode */
	uint8_t num_sge;
	uint16_t pad0;
	uint32_t send_flags;
	uint32_t imm_data; /* network order; invalidate rkey for SEND_WITH_INV */
	uint32_t inline_len;
	uint64_t remote_addr;
	uint32_t rkey;
	uint32_t pad1;
	uint64_t compare_add;
	uint64_t swap;
	uint64_t pad2;
	struct ff_vsge sge[];
};

/* A receive queue slot: this header then max_sge ff_vsge. */
struct ff_vrqe {
	uint64_t wr_id;
	uint32_t num_sge;
	uint32_t pad;
	struct ff_vsge sge[];
};

/* A completion: struct ibv_wc's fields in a fixed layout. */
struct ff_vcqe {
	uint64_t wr_id;
	uint32_t status;
	uint32_t opcode;
	uint32_t vendor_err;
	uint32_t byte_len;
	uint32_t imm_data; /* network order, or the invalidated rkey */
	uint32_t qp_num;
	uint32_t src_qp;
	uint32_t wc_flags;
	uint16_t pkey_index;
	uint16_t slid;
	uint8_t sl;
	uint8_t dlid_path_bits;
	uint8_t pad[2];
};

/* On a completion channel socket: one datagram per event. */
struct ff_vcq_event {
	uint64_t cookie; /* VerbsCreateCq.cookie */
};

/* On a context's async-event socket: one datagram per event. */
struct ff_vasync_event {
	uint64_t cookie;     /* the object's cookie (0 for device events) */
	uint32_t event_type; /* enum ibv_event_type */
	uint32_t kind;       /* FF_VOBJ_* or 0 */
};

#define FF_VRING_SLOT(base, g, idx) \
	((void *)((uint8_t *)(base) + (g)->off + (size_t)((idx) & ((g)->size - 1)) * (g)->stride))
