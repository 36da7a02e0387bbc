/* What the files of rdma/sock/ share: QP pairs between routers, the
 * connections they carry, and the messages on them.
 *
 * Wire (router to router, on the RC QP; little-endian): every SEND is one
 * message, at most the other router's buffer size: a struct rs_hdr, then
 * nrec records, each a struct rs_rec and len bytes of payload. Record ids
 * are the receiver's own connection ids (OPEN: the sender's, which the
 * receiver's ACCEPT or REFUSE carries back). Every field is checked
 * against the message's length and the receiver's state before use; a
 * message that does not parse ends the pair.
 *
 * Flow control, two levels:
 *  - messages: each SEND takes one of the receive buffers the other router
 *    posted ("credits", learned at set-up and returned in every header's
 *    credits field as buffers are reposted). Data needs more than
 *    RS_RESERVE credits, control records more than one; the last credit
 *    only ever carries a credit-only message, which a router sends when
 *    half its buffers were reposted unreported. So neither side can be left
 *    without credits while the other owes it some.
 *  - bytes: a connection may have at most `window` bytes unacknowledged;
 *    the receiver acknowledges bytes once its app's socket took them. What
 *    the app's socket cannot take at once waits in the connection's
 *    staging ring (at most a window), so receive buffers are reposted at
 *    once and one slow reader never stalls the other connections. */
#pragma once

#include <infiniband/verbs.h>

#include "rdma.h"
#include "sock.h"
#include "xhost.h"

#define RS_MAGIC 0x31726666u /* "ffr1" */
#define RS_BUF_SIZE (64u << 10)
#define RS_NBUF 32         /* receive buffers, and as many send buffers */
#define RS_WINDOW (256u << 10)
#define RS_RESERVE 4       /* credits data leaves for control records */
#define RS_MIN_ROOM 2048   /* a message with less room left is sent as it is */
#define RS_READS_PER_TURN 4 /* records one connection adds per wake-up */
#define RS_SIGNAL_EVERY 16 /* sends between two signaled ones, while buffers last */

enum rs_type {
	RS_OPEN = 1, /* payload: struct rs_open; id: the opener's */
	RS_ACCEPT,   /* id: the opener's; arg: the acceptor's */
	RS_REFUSE,   /* id: the opener's; arg: an Ff__Status */
	RS_DATA,     /* payload: the bytes */
	RS_ACK,      /* arg: bytes the receiver's app took */
	RS_FIN,      /* the sender's app will send no more */
	RS_RST,      /* the connection is gone: drop it */
};

struct rs_hdr {
	uint32_t magic;
	uint32_t credits; /* receive buffers reposted since the last report */
	uint32_t len;     /* of the whole message */
	uint32_t nrec;
};

struct rs_rec {
	uint8_t type;
	uint8_t pad[3];
	uint32_t id;
	uint32_t len; /* of the payload that follows */
	uint32_t arg;
};

struct rs_open {
	uint8_t family;
	uint8_t pad[3];
	uint16_t sport, dport;
	uint8_t pad2[4];
	uint8_t sip[16], dip[16];
};

struct rs;
struct rs_pair;

enum rs_conn_state {
	RC_WAIT,    /* client: the pair is not up yet */
	RC_OPENING, /* client: OPEN queued or sent, no answer yet */
	RC_UP,
};

struct rs_conn {
	struct rs_pair *p;
	TAILQ_ENTRY(rs_conn) ctl_link;   /* p->ctl: has control records to send */
	TAILQ_ENTRY(rs_conn) block_link; /* p->blocked: waits for a buffer or credits */
	TAILQ_ENTRY(rs_conn) wait_link;  /* p->waiting: RC_WAIT */
	bool in_ctl, in_blocked, in_wait;
	enum rs_conn_state state;
	uint32_t id, peer_id;
	int fd; /* the router's end of the app's socketpair */
	struct event *rev, *wev;
	bool reading;
	/* a client's connect until answered */
	struct ffr_chan *ch;
	uint64_t req_id;
	char cname[FFR_NAME_MAX + 1]; /* the container of this host */
	char tname[FFR_NAME_MAX + 1];
	pid_t pid;      /* the app process that asked (client), 0: unknown */
	ino_t app_ino;  /* the app's end of the socketpair */
	char peer[FFR_NAME_MAX + FFR_HOST_MAX + 2];
	struct ff_sa src, dst, asked_src;
	bool own_port; /* src.port came from the container's allocator */
	/* control records to send */
	bool need_open, need_accept, need_fin, need_rst;
	uint32_t refuse; /* an Ff__Status to send as REFUSE, 0: none */
	/* bytes */
	uint64_t unacked;    /* sent, not acknowledged */
	uint64_t rx_held;    /* received and not acknowledged yet (staged or ack_pending) */
	uint64_t ack_pending; /* taken by the app, not acknowledged yet */
	uint8_t *stage;      /* a ring of p->window bytes, NULL until needed */
	uint32_t shead, slen;
	bool rd_eof;   /* the app's end said EOF (FIN queued) */
	bool fin_sent;
	bool peer_fin; /* FIN came: shut the app's writing side once staging is empty */
	bool wr_shut;
	uint64_t tx_bytes, rx_bytes;
};

enum rs_pair_state {
	RP_CONNECTING, /* the lifeline is being set up */
	RP_UP,
	RP_DOWN,
};

TAILQ_HEAD(rs_conn_list, rs_conn);

struct rs_pair {
	TAILQ_ENTRY(rs_pair) link;
	struct rs *rs;
	char host[FFR_HOST_MAX + 1];
	enum rs_pair_state state;
	bool active;
	struct ffr_xline l;
	struct event *lrev, *lwev;
	/* the device's part */
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_mr *mr;
	struct event *ccev;
	uint8_t *mem; /* RS_NBUF send buffers, then RS_NBUF receive buffers */
	size_t memlen;
	uint32_t psn, peer_qpn, peer_psn, peer_rq, peer_buf;
	uint32_t window; /* the smaller of the two sides' */
	/* sending */
	uint32_t txfree[RS_NBUF];
	uint32_t ntxfree;
	/* posted send buffers in order: an RC QP completes them in order, so
	 * one signaled completion frees every buffer posted before it */
	uint32_t posted[RS_NBUF];
	uint32_t phead, npost, unsignaled;
	int cur; /* the send buffer being filled, -1: none */
	uint32_t curlen, currec;
	uint32_t credits;    /* the other side's receive buffers we may fill */
	uint32_t unreported; /* ours reposted, not reported yet */
	struct event *flush_ev;
	bool flushing;
	/* connections by id: index in the low 20 bits, generation above */
	struct rs_conn **tab;
	uint16_t *gen;
	uint32_t cap, nconns;
	struct rs_conn_list ctl, blocked, waiting;
	/* accounting */
	uint64_t tx_bytes, rx_bytes, tx_msgs, rx_msgs, staged, copies;
	const char *bad; /* the check the last malformed message failed */
};
TAILQ_HEAD(rs_pair_list, rs_pair);

/* A message from the other router failed the check what: -EPROTO, and
 * what is kept for the log line that ends the pair. */
#define RS_BAD(p, what) ((p)->bad = (what), -EPROTO)

/* The feature's priv. */
struct rs {
	struct ffr_router *r;
	struct ffr_rdma *rd;
	bool enabled;
	struct rs_pair_list pairs;
	uint64_t conns_total, fallbacks, refused, pairs_total, pair_failures, copies;
	uint32_t conns;
	int64_t port_checked_ms; /* when the port was last found active */
	int64_t fallback_log_ms; /* the last fallback logged (one a second) */
	uint64_t hot_until;      /* CLOCK_MONOTONIC ns: poll instead of sleeping until then */
	uint64_t fallback_quiet; /* fallbacks not logged since */
};

/* sock.c */
struct rs *ffr_rsock_of(const struct ffr_router *r);
/* Data moved: the router polls the pairs' queues and the apps' sockets
 * for --rdma-poll-us before it sleeps again (a wake-up costs more than a
 * message). */
void rs_heat(struct rs *rs);

/* pair.c */
/* An up or coming pair with host, or a new one asked for (active). NULL
 * with *why if none can be made. */
struct rs_pair *rs_pair_get(struct rs *rs, const struct ffr_host *h, const char **why);
/* The other router asks for a pair (the ingress's preamble kind). */
void rs_pair_incoming(struct ffr_router *r, Ff__XPreamble *p, int fd, const uint8_t *tag);
/* Ends p: its connections end (or, not yet opened, go over TCP). */
void rs_pair_down(struct rs_pair *p, const char *why);
void rs_pair_free(struct rs_pair *p);
/* Takes what p's completion queue holds: how many completions, or -1 if
 * the pair went down (p is freed then). */
int rs_cq_drain(struct rs_pair *p);
/* Wakes the flush at the end of this turn of the loop. */
void rs_flush_soon(struct rs_pair *p);
/* Room for a record of at least want payload bytes (0: control) in the
 * message being filled: a pointer to its payload, *room its size, or NULL
 * (no buffer, or no credits for it). */
uint8_t *rs_rec_begin(struct rs_pair *p, uint32_t want, bool data, uint32_t *room);
/* Ends the record begun: type, id, arg, len bytes of payload. */
void rs_rec_end(struct rs_pair *p, uint8_t type, uint32_t id, uint32_t arg, uint32_t len);

/* conn.c */
struct rs_conn *rs_conn_new(struct rs_pair *p);
void rs_conn_free(struct rs_conn *c);
struct rs_conn *rs_conn_get(struct rs_pair *p, uint32_t id);
/* Starts reading the app's end fd (consumed) of an up connection. */
int rs_conn_attach(struct rs_conn *c, int fd);
/* Queues c's control records for the next flush. */
void rs_conn_ctl(struct rs_conn *c);
/* Writes the queued control records; false when out of room. */
bool rs_conn_ctl_emit(struct rs_conn *c);
/* A blocked connection may read again. */
void rs_conn_unblock(struct rs_conn *c);
/* The pair came up: a waiting client sends its OPEN. */
void rs_conn_open(struct rs_conn *c);
/* One record for c (not OPEN): 0, or -EPROTO (the pair is broken). */
int rs_conn_record(struct rs_conn *c, const struct rs_rec *rec, const uint8_t *payload);
/* An OPEN from the other router. */
void rs_conn_incoming(struct rs_pair *p, uint32_t peer_id, const struct rs_open *o);
/* The pair is gone: c ends, or, before the app saw a result, falls back
 * to TCP. Frees c. */
void rs_conn_pair_lost(struct rs_conn *c);
/* reset.c: gives the app of container cname whose end of a socketpair is
 * the socket ino ECONNRESET at the close of the router's end (pid: where
 * to look first). false if its end was not found: it reads EOF then. */
bool rs_reset_app(struct rs *rs, const char *cname, pid_t pid, ino_t ino);

/* sock.c: counts a connect from cname to t that goes over TCP instead,
 * and logs why (at most once a second: containers make connects at will). */
void rs_fallback_log(struct rs *rs, const char *cname, const struct ffr_container *t,
		     const char *why);
/* A client's connect that cannot go over RDMA: to TCP. */
void rs_connect_fallback(struct rs *rs, struct ffr_chan *ch, uint64_t id, const char *tname,
			 const struct ff_sa *src, const struct ff_sa *dst, const char *why);
