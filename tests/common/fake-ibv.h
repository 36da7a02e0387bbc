/* A fake RDMA device for unit tests of rdma/ (struct ffr_ibv): one device
 * "fake0", port 1 active, a RoCE v2 IPv4 GID (::ffff:FAKE_IBV_IP) at
 * index 1. Not soft-RoCE, so the router picks the ring data path.
 *
 * It records what the router does to it, so a test can assert on it:
 * every object it hands out is live until destroyed (live counts per
 * kind); every destroy is logged in order, with what the object held;
 * QPs and SRQs keep the attributes the router set. Like a real device it
 * refuses to destroy an object another object still uses (a PD with MRs,
 * a CQ with QPs, a channel with CQs, a context with anything): EBUSY, the
 * object stays, and the refusal counts as a misuse. Any call can be made
 * to fail once with a given errno (fake_ibv_fail).
 *
 * Contexts have real fds (eventfds) for async events and completion
 * channels, so the router's event loop can watch them, and the data-path
 * ops of verbs.h (poll_cq, req_notify_cq, post_send, post_recv,
 * post_srq_recv) count what they are given. Single-threaded, global. */
#pragma once

#include "rdma.h"

#include <stdbool.h>
#include <stdint.h>

#define FAKE_IBV_NAME "fake0"
#define FAKE_IBV_IP {192, 0, 2, 1} /* TEST-NET-1: the host's RoCE address */
#define FAKE_IBV_GID_INDEX 1

extern const struct ffr_ibv fake_ibv;

enum fake_kind {
	FAKE_CTX,
	FAKE_PD,
	FAKE_MR,
	FAKE_CHAN,
	FAKE_CQ,
	FAKE_QP,
	FAKE_SRQ,
	FAKE_NKINDS,
};

/* The calls that can be counted and made to fail. */
enum fake_op {
	FAKE_OPEN_DEVICE,
	FAKE_CLOSE_DEVICE,
	FAKE_ALLOC_PD,
	FAKE_DEALLOC_PD,
	FAKE_REG_MR,
	FAKE_DEREG_MR,
	FAKE_CREATE_CHAN,
	FAKE_DESTROY_CHAN,
	FAKE_CREATE_CQ,
	FAKE_DESTROY_CQ,
	FAKE_REQ_NOTIFY_CQ,
	FAKE_CREATE_QP,
	FAKE_MODIFY_QP,
	FAKE_QUERY_QP,
	FAKE_DESTROY_QP,
	FAKE_CREATE_SRQ,
	FAKE_MODIFY_SRQ,
	FAKE_QUERY_SRQ,
	FAKE_DESTROY_SRQ,
	FAKE_POST_SEND,
	FAKE_POST_RECV,
	FAKE_POST_SRQ_RECV,
	FAKE_POLL_CQ,
	FAKE_NOPS,
};

#define FAKE_MAX_HELD 5

/* What every fake object has besides its verbs struct. */
struct fake_obj {
	enum fake_kind kind;
	uint32_t id;                          /* unique, counts up from 1 */
	struct fake_obj *held[FAKE_MAX_HELD]; /* what it uses: context, PD, CQs... */
	uint32_t users;                       /* live objects that hold this one */
	struct fake_obj *prev, *next;         /* all live objects */
	void *mem;                            /* the allocation it is in */
};

struct fake_pd {
	struct ibv_pd pd;
	struct fake_obj o;
};

struct fake_mr {
	struct ibv_mr mr; /* addr: the router's mapping */
	struct fake_obj o;
	uint64_t iova;
	unsigned int access;
};

#define FAKE_MAX_EVENTS 64

struct fake_chan {
	struct ibv_comp_channel ch; /* fd: an eventfd, one count per queued event */
	struct fake_obj o;
	struct ibv_cq *ev[FAKE_MAX_EVENTS];
	unsigned int nev;
};

#define FAKE_MAX_WC 256

struct fake_cq {
	struct ibv_cq cq;
	struct fake_obj o;
	bool armed;
	unsigned int events, acked; /* completion events delivered, acknowledged */
	struct ibv_wc wc[FAKE_MAX_WC];
	unsigned int nwc;
};

#define FAKE_MAX_WR 256

struct fake_qp {
	struct ibv_qp qp;
	struct fake_obj o;
	struct ibv_qp_init_attr init; /* as the router asked for it */
	struct ibv_qp_attr attr;      /* every field modify_qp set so far */
	int mask;                     /* union of the masks modify_qp got */
	unsigned int modifies;
	uint64_t sends, recvs; /* work requests posted */
	/* what was posted and not yet taken by fake_ibv_wire (first SGE only) */
	struct fake_wr {
		uint64_t wr_id;
		uint64_t addr;
		uint32_t len;
		unsigned int flags;
	} sq[FAKE_MAX_WR], rq[FAKE_MAX_WR];
	unsigned int nsq, nrq;
};

struct fake_srq {
	struct ibv_srq srq;
	struct fake_obj o;
	struct ibv_srq_attr attr;
	uint64_t recvs;
};

/* One destroy, in the order the router did them. */
struct fake_logent {
	enum fake_kind kind;
	uint32_t id;
	uint32_t held[FAKE_MAX_HELD]; /* ids of what it held (0: none) */
};

/* Forgets the destroy log, the call counts, the misuse count and any
 * pending failure. Live objects stay. */
void fake_ibv_reset(void);
/* Frees every live object, as if the router had destroyed them all: what
 * a test that found leftovers calls so that the next test starts clean. */
void fake_ibv_clear(void);
/* Live objects of kind k (contexts include the router's probe context). */
int fake_ibv_live(enum fake_kind k);
/* Live objects of every kind but contexts. */
int fake_ibv_live_objs(void);
/* Calls of op since the last reset (failed ones included). */
unsigned int fake_ibv_calls(enum fake_op op);
/* After skip more calls of op succeed, the next one fails with err. */
void fake_ibv_fail(enum fake_op op, int err, unsigned int skip);
/* Destroys refused because the object was in use, and other misuse
 * (destroying a CQ with unacknowledged events), since the last reset. */
unsigned int fake_ibv_misuse(void);

/* The destroy log since the last reset. */
const struct fake_logent *fake_ibv_log(unsigned int *n);
/* Position of object id in the log, or -1. */
int fake_ibv_log_pos(uint32_t id);
/* True if objects a and b were both destroyed, a first. */
bool fake_ibv_log_before(uint32_t a, uint32_t b);

/* Live objects, found by what the router knows of them (NULL if none). */
struct fake_qp *fake_ibv_qp(uint32_t qpn);
struct fake_mr *fake_ibv_mr(uint32_t lkey);
/* The newest live object of kind k. */
struct fake_obj *fake_ibv_last(enum fake_kind k);
#define FAKE_OF(type, ptr) ((struct type *)((char *)(ptr) - __builtin_offsetof(struct type, o)))

/* The device reports an async event on qp (its context's async fd). */
int fake_ibv_qp_event(uint32_t qpn, enum ibv_event_type type);
/* A completion arrives on cq: polled by poll_cq; if the CQ is armed, an
 * event goes to its channel. */
int fake_ibv_cq_push(struct fake_cq *cq, const struct ibv_wc *wc);
/* A wire between two RC QPs: each send posted on from, in order, lands in
 * the next receive posted on to (its bytes copied), with a RECV completion
 * on to's receive CQ and, if signaled, a SEND completion on from's send
 * CQ. Stops when to has no receive posted (the send waits, as after an
 * RNR NAK). Returns how many sends crossed. */
int fake_ibv_wire(struct fake_qp *from, struct fake_qp *to);
