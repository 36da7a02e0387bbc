/* The cluster (xhost/): the other hosts of the locality map, the stores
 * that keep it (the state file, etcd), and everything that crosses hosts:
 * the sealed preamble routers authenticate each other with, connects to
 * containers on other hosts, the ingress other routers reach, published
 * ports. This header is what other folders (rdma/cm, the assembly) may
 * use. xhost depends on the core and never names RDMA: rdma_cm registers
 * the preamble kind it serves (ffr_ingress_handle). */
#pragma once

#include "core.h"
#include "mac.h"

#define FFR_HOST_ALLOW_MAX 64

struct ffr_xhost_config {
	const char *state;       /* the state file (NULL: RUNDIR/state) */
	const char *ingress;     /* "IP:PORT" other routers connect to, or NULL */
	const char *secret_file; /* the cluster secret */
	int xconnect_ms;         /* connect timeout to another router (0: 3000) */
	const char *store;       /* "etcd://HOST:PORT", or NULL: the state file only */
	const char *advertise;   /* "IP:PORT" other routers reach us at (default: ingress) */
	/* The ingress against connections that never send a preamble (0: default) */
	int preamble_ms;             /* from accept to a whole preamble (5000) */
	uint32_t ingress_pending;    /* connections waiting for one, in all (4096) */
	uint32_t ingress_per_source; /* ... and from one address (256) */
	/* "on" (NULL) or "off": whether a preamble must come from the address
	 * the locality map has for its host, over the very connection it was
	 * sealed for (ffr_preamble_accept). Off only where routers reach each
	 * other through NAT; a copy raced onto another connection within the
	 * replay window is then no longer refused. */
	const char *addr_check;
	/* Policy host: destinations the router connects containers to even
	 * though they are the host's own or the cluster's (outside.c), as
	 * "CIDR[:PORT]" (ffr_host_allow_add). */
	const char *host_allow[FFR_HOST_ALLOW_MAX];
	int nhost_allow;
	/* Warm connections kept ready to each host this router connects to
	 * (warm.c), if warm_set; else FFR_WARM_CONNS. 0: none. */
	int warm_conns;
	bool warm_set;
};

#define FFR_WARM_CONNS 4	 /* default warm connections per host */
#define FFR_WARM_CONNS_MAX 64	 /* ... at most (also what one host may park here) */
#define FFR_WARM_IDLE_MS 30000 /* the ingress keeps an unused warm connection this long */

/* Adds s to cfg's --host-allow list (s is kept, not copied): -EINVAL if it
 * is no CIDR[:PORT], -ENOSPC past FFR_HOST_ALLOW_MAX. */
int ffr_host_allow_add(struct ffr_xhost_config *cfg, const char *s);

/* What the cluster part counted (refusals are also logged, at most once a
 * second for each kind). */
struct ffr_xhost_stats {
	uint64_t ingress_timeouts; /* no whole preamble in time */
	uint64_t ingress_overcap;  /* closed at accept: too many waiting for a preamble */
	uint64_t preambles_refused; /* not authenticated, or not for this router, connection
				     * or source container */
	uint64_t replies_refused;   /* answers to our preambles that failed their MAC */
	uint64_t outside_refused;   /* policy host: connects to the host's or the cluster's own */
	uint64_t warm_taken;   /* connects that took a warm connection */
	uint64_t warm_cold;    /* ... that found none ready */
	uint64_t warm_stale;   /* ... that took one the other router had closed (retried cold) */
	uint64_t warm_refused; /* warm connections the ingress would not keep */
	uint64_t answered_early; /* handed over before the answer: the app's shim reads it */
};

/* A host of the cluster other than this router's (the locality map). */
struct ffr_host {
	TAILQ_ENTRY(ffr_host) link;
	char name[FFR_HOST_MAX + 1];
	struct ff_sa addr; /* its router's ingress */
	bool rdma;
	bool from_store;
	bool stale;
	struct ffr_warm_pool *warm; /* warm connections to it (warm.c), NULL until needed */
};

/* Registers the cluster part on r: loads the state file, opens the ingress
 * and the cluster store. 0 or -errno (r is then to be freed). */
int ffr_xhost_attach(struct ffr_router *r, const struct ffr_xhost_config *cfg);
/* The state file's path (for the start-up log). */
const char *ffr_xhost_state(const struct ffr_router *r);

/* host.c */
struct ffr_host *ffr_host_find(struct ffr_router *r, const char *name);
/* The timeout of a connect to another router, in ms. */
int ffr_xconnect_ms(const struct ffr_router *r);
/* Whether the router has the cluster secret, so cross-host is on. */
bool ffr_xhost_sealed(const struct ffr_router *r);
const struct ffr_xhost_stats *ffr_xhost_stats(const struct ffr_router *r);

/* auth.c: the preamble one router sends another, sealed with the secret */
#define FFR_XFRAME_MAX 1024
#define FFR_MAC_LEN FF_MAC_LEN
/* Reads a length-prefixed frame (2-byte big-endian length, then at most
 * FFR_XFRAME_MAX bytes) into in[cap], never a byte past it. *inwant starts
 * at 2. Returns 1 when the frame is complete, 0 when more is to come,
 * -EPROTO for a length out of range, -ECONNRESET at EOF, or -errno. */
int ffr_xframe_read(int fd, uint8_t *in, size_t cap, size_t *inlen, size_t *inwant);
/* A non-blocking TCP connect to the ingress to of another router, from
 * this router's own address (the --advertise or else --ingress IP, when it
 * is a specific one): the address the other routers' maps have for this
 * host, which their ingress checks. The fd or -errno. */
int ffr_xsocket(struct ffr_router *r, const struct ff_sa *to);
/* What binds a preamble to one connection: storage for its fields. */
struct ffr_xbind {
	Ff__Addr src, dst;
	uint8_t sb[16], db[16];
};
/* Binds p, before it is sealed, to the connection fd (connect in progress
 * or done) to the ingress to of host dst_host; p points into b. 0 or
 * -errno. */
int ffr_preamble_bind(Ff__XPreamble *p, struct ffr_xbind *b, const char *dst_host, int fd,
		      const struct ff_sa *to);
/* Fills version, time and nonce of p and writes the length-prefixed,
 * MAC'd frame into buf. Returns its length or -errno. */
int ffr_preamble_seal(struct ffr_router *r, Ff__XPreamble *p, uint8_t *buf, size_t cap);
/* The TCP connection a preamble came on, as the ingress sees it. */
struct ffr_xvia {
	struct ff_sa peer, local;
};
/* Checks a received frame body (after the length): MAC first, then
 * version and freshness; then, with via, that it is for this router
 * (-EXDEV) and, unless the address check is off, that it comes from the
 * address the locality map has for its host (-EADDRNOTAVAIL) over the
 * connection it was sealed for (-ENOTCONN); the replay check last, so that
 * a copy on the wrong connection burns nothing. On success *out must be
 * freed with ff__xpreamble__free_unpacked. -EACCES: bad MAC or no secret
 * (any other error: the MAC held). */
int ffr_preamble_accept(struct ffr_router *r, const uint8_t *msg, size_t len,
			const struct ffr_xvia *via, Ff__XPreamble **out);
/* The same without a connection (nothing of the binding is checked): for
 * tests that open what they sealed. */
int ffr_preamble_open(struct ffr_router *r, const uint8_t *msg, size_t len, Ff__XPreamble **out);
/* What a MAC is for: each purpose has its own key (ff_kdf id: purpose + 1),
 * so a MAC made for one can never pass for another. */
enum ffr_key {
	FFR_KEY_PREAMBLE = 0, /* preambles (auth.c) */
	FFR_KEY_REPLY,        /* the ingress's answers to them (XReply) */
	FFR_KEY_CM,           /* rdma_cm frames on a lifeline (rdma/cm/xhost.c) */
	FFR_KEY_SOCK,         /* sockets over RDMA: a pair's lifeline (rdma/sock) */
	FFR_KEYS,
};
/* The cluster MAC of len bytes of msg with key k; -EACCES without a secret. */
int ffr_xmac(const struct ffr_router *r, enum ffr_key k, const void *msg, size_t len,
	     uint8_t out[FFR_MAC_LEN]);
/* Constant-time comparison of two MACs; true if equal. */
bool ffr_xmac_equal(const uint8_t a[FFR_MAC_LEN], const uint8_t b[FFR_MAC_LEN]);
/* Writes a length-prefixed XReply frame, MAC'd for the preamble whose MAC
 * is tag (NULL: that preamble was not authenticated, the MAC is zeros);
 * returns its length. */
size_t ffr_xreply_seal(struct ffr_router *r, const uint8_t *tag, Ff__Status st, const char *err,
		       uint8_t *buf, size_t cap);
/* Reads a reply frame body (after the length) to our preamble whose MAC is
 * tag. 0: its MAC holds and *st is the other router's answer; -EACCES: it
 * does not (a forgery, or the other router could not authenticate us);
 * -EBADMSG: malformed. why gets the reply's text in every case, marked
 * unverified unless 0. */
int ffr_xreply_open(struct ffr_router *r, const uint8_t *tag, const uint8_t *msg, size_t len,
		    Ff__Status *st, char *why, size_t whylen);

/* Sends, without blocking, an XReply frame (ffr_xreply_seal) on fd, a
 * connection whose preamble's MAC is tag (fd not consumed): a few bytes
 * into an empty socket buffer, so they fit. */
void ffr_xreply_send(struct ffr_router *r, int fd, const uint8_t *tag, Ff__Status st,
		     const char *err);

/* ingress.c: kinds of preamble another part serves */
enum ffr_preamble_kind {
	FFR_PREAMBLE_CM = 0, /* an rdma_cm connect request (p->cm set) */
	FFR_PREAMBLE_QP,     /* a remote QP check (p->qp set): answered, then closed */
	FFR_PREAMBLE_SOCK,   /* a QP pair for sockets over RDMA (p->sock set) */
	FFR_PREAMBLE_KINDS,
};
/* Takes p and fd (both consumed); tag: the preamble's MAC, which the
 * answer (ffr_xreply_send, or rdma_cm's frames) is bound to. The preamble
 * is authenticated and bound to this router and connection; whether its
 * source speaks for a container of its host is fn's to check. */
typedef void (*ffr_preamble_fn)(struct ffr_router *r, Ff__XPreamble *p, int fd,
				const uint8_t *tag);
/* Serves preambles of kind with fn. -EEXIST if served already. */
int ffr_ingress_handle(struct ffr_router *r, enum ffr_preamble_kind kind, ffr_preamble_fn fn);

/* ask.c: one question to another router and its one answer (a preamble
 * with what a served kind reads, then an XReply) */
struct ffr_xask;
/* The answer: err 0 and st, the other router's verified answer, why its
 * text; or err: -EACCES it failed its MAC (a forgery, or bound to another
 * preamble; counted in replies_refused), -EBADMSG malformed, -ETIMEDOUT no
 * answer in time, -ECONNRESET closed without one, or the connect's -errno. */
typedef void (*ffr_xask_fn)(void *arg, int err, Ff__Status st, const char *why);
/* Asks the router of host: p carries the question (src, dst, the kind's
 * field); the binding, src_host and the seal are filled here, and p is not
 * kept. cb runs exactly once, from the loop, never from here, unless the
 * ask is cancelled first. 0 and *out, or -ENOKEY (no cluster secret),
 * -EHOSTUNREACH (unknown host), -errno. */
int ffr_xask_start(struct ffr_router *r, const char *host, Ff__XPreamble *p, ffr_xask_fn cb,
		   void *arg, struct ffr_xask **out);
/* Drops an ask that has not called back yet (NULL: no-op); cb never runs. */
void ffr_xask_cancel(struct ffr_xask *a);

/* line.c: a lifeline, the TCP connection a sealed preamble opened and that
 * stays open between two routers, carrying frames both ways: 2-byte
 * big-endian length, a protobuf message, then the HMAC (key) of the
 * preamble's MAC, the direction ('A' from the side that sent the preamble,
 * 'P' from the other) and the frame's 8-byte index in its direction, so
 * that only these two routers, on this connection, in this order, can
 * speak on it. Closing it is how either side ends what it carries. */
#define FFR_XLINE_OUT (2 * (FFR_XFRAME_MAX + 2))
struct ffr_xline {
	struct ffr_router *r;
	int fd;
	enum ffr_key key;
	bool active; /* this side sent the preamble */
	uint8_t tag[FFR_MAC_LEN]; /* the preamble's MAC: names this connection */
	uint64_t tx_n, rx_n;
	uint8_t out[FFR_XLINE_OUT];
	size_t outlen;
	uint8_t in[FFR_XFRAME_MAX + 2];
	size_t inlen, inwant;
};
/* A line on fd (not consumed): TCP keepalive on it, so that a dead host
 * ends it within about 25 s. */
void ffr_xline_init(struct ffr_xline *l, struct ffr_router *r, int fd, enum ffr_key key,
		    bool active);
/* Queues frame m and sends what it can. 0: all sent; 1: some waits for
 * room (call ffr_xline_flush when fd is writable); -EMSGSIZE: m does not
 * fit; -errno: the connection failed. */
int ffr_xline_send(struct ffr_xline *l, const ProtobufCMessage *m);
int ffr_xline_flush(struct ffr_xline *l);
/* Reads the next frame, never a byte past it: 1 when complete, 0 when more
 * is to come, -ECONNRESET at EOF, -EPROTO for a bad length, -errno. */
int ffr_xline_read(struct ffr_xline *l);
/* The complete frame, unpacked with d, if its MAC holds (NULL otherwise,
 * or if it is malformed); the line is then ready for the next frame. */
ProtobufCMessage *ffr_xline_open(struct ffr_xline *l, const ProtobufCMessageDescriptor *d);

/* connect.c: what carries a connect to a container on another host. A
 * transport other than host TCP (rdma/sock: sockets over RDMA) may take a
 * connect first: fn returns true if it answers request id on ch (now or
 * later; it may still hand it to ffr_xconn_tcp), false to leave it to TCP. */
typedef bool (*ffr_xpath_fn)(void *arg, struct ffr_chan *ch, uint64_t id,
			     struct ffr_container *t, const struct ffr_host *h,
			     const struct ff_sa *src, const struct ff_sa *dst);
/* Sets the transport tried first (fn NULL: none); -EEXIST if one is set. */
int ffr_xpath_set(struct ffr_router *r, ffr_xpath_fn fn, void *arg);
/* The host-TCP path of a connect to container t of another host (src's
 * port 0: the host socket's). Answers request id on ch, now or later. */
void ffr_xconn_tcp(struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
		   const struct ff_sa *src, const struct ff_sa *dst);
/* Records a connection between container c of this host and remote_name
 * (a container of another host, "name@host") over path, c's end of it
 * being fd: the client side if client. NULL if out of memory or slots. */
struct ffr_conn *ffr_conn_remote(struct ffr_router *r, struct ffr_container *c, bool client,
				 const struct ff_sa *local, const struct ff_sa *remote,
				 const char *remote_name, int fd, Ff__Path path);
/* ingress.c: queues fd (consumed in every case), a connection from peer
 * (remote_name) over path, on container c's listener at local. 0, or
 * -ECONNREFUSED (no listener), -EAGAIN (its queue is full). */
int ffr_ingress_queue(struct ffr_router *r, struct ffr_container *c, const struct ff_sa *local,
		      const struct ff_sa *peer, const char *peer_name, int fd, Ff__Path path);
