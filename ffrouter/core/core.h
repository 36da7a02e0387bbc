/* The router core: what the other folders of ffrouter (xhost/, rdma/) may
 * use. The core owns the router object, the containers of the locality map,
 * their control channels, overlay listeners and connections, and the
 * request dispatch. It never names a feature: cross-host and RDMA code
 * register their request handlers and hooks at start-up (struct
 * ffr_feature, ffr_ops_add), the way rdma-core's providers register ops.
 *
 * Ownership: the router owns containers, listeners, conns, the admin
 * channels and the registered features' private data (freed through their
 * free hook); a container owns its shim channels and holds one reference on
 * its stats area; every conn side holds another, so byte counters stay
 * readable after the container is unregistered. */
#pragma once

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <ff/shm.h>
#include <ff/wire.h>

#include "addr.h"
#include "ff.pb-c.h"

#define FFR_NAME_MAX 63
#define FFR_MAX_IPS 8
#define FFR_HOST_MAX 63
#define FFR_FEATURES_MAX 8 /* features one router can register */
#define FFR_OPS_MAX 128    /* request body cases the dispatch table can hold */
#define FFR_PATHS 4        /* values of Ff__Path */

struct ffr_router;
struct ffr_container;
struct ffr_stats;    /* a container's byte-counter page (core/internal.h) */
struct ffr_guard;    /* watchdog, accept deadline, fd budget (core/guard.c) */
struct ffr_listener; /* an overlay listener (core/internal.h) */
struct ffr_metrics;  /* an exposition being written (core/metrics.c) */
struct ffr_mserver;  /* the --metrics HTTP endpoint (core/metrics.c) */

struct ffr_quota {
	uint32_t channels;
	uint32_t listeners;
	uint32_t conns;
	uint32_t pending; /* accept-queue entries held by the router per listener */
	uint32_t inflight; /* connects handed to features, unanswered, per channel (0: 64) */
	uint32_t ring_mib; /* memory of same-host rings per container, MiB (0: 256) */
};

/* One SOCK_SEQPACKET control channel: a shim (c != NULL) or ffctl. */
struct ffr_chan {
	TAILQ_ENTRY(ffr_chan) link;
	struct ffr_router *r;
	struct ffr_container *c;
	int fd;
	struct event *ev;
	bool hello;
	bool keeper;   /* ffexec's keeper: it keeps copies of the listeners' kfds */
	uint64_t caps; /* the shim's Hello.caps (FF_CAP_*) */
	pid_t pid;
	uid_t uid;
	uint32_t bad; /* malformed messages seen */
	uint64_t *inflight; /* ids of connects handed to features, unanswered */
	uint32_t ninflight;
	/* replies go to this function instead of the socket (the seccomp
	 * supervisor's internal channel: ffr_chan_local) */
	void (*deliver)(void *arg, const Ff__Reply *rep, const int *fds, int nfds);
	void *deliver_arg;
	/* While a Connect is being dispatched (never later): it set
	 * answer_here, the asker reads the other router's answer itself. */
	bool answer_here;
};
TAILQ_HEAD(ffr_chan_list, ffr_chan);

struct ffr_conn_side {
	char name[FFR_NAME_MAX + 1];
	struct ffr_container *c; /* NULL once unregistered */
	struct ffr_stats *st;
	uint32_t slot;
	ino_t ino;
	struct ff_sa addr;
	bool own_port; /* addr.port came from the container's allocator */
	struct ffr_conn *cn;	     /* the conn this side is of */
	struct ffr_conn_side *hnext; /* in the router's table by ino */
	bool hashed;
};

struct ffr_conn {
	TAILQ_ENTRY(ffr_conn) link;
	uint64_t id;
	Ff__Path path;
	struct ffr_conn_side cli, srv;
	/* same host over shared memory: the rings' memfd and each end's
	 * own page (end_fd[0]: the client's), kept for the Lookup of an
	 * exec'd shim or of a process the fd went to, and the bytes of each
	 * ring (0: none) */
	int ring_fd, end_fd[2];
	uint32_t ring;
};
TAILQ_HEAD(ffr_conn_list, ffr_conn);

enum ffr_policy {
	FFR_POLICY_CONTAINER = 0, /* outside the overlay: the container's own network */
	FFR_POLICY_HOST,          /* outside the overlay: a host socket from the router */
};

struct ffr_container {
	TAILQ_ENTRY(ffr_container) link;
	struct ffr_router *r;
	char name[FFR_NAME_MAX + 1];
	struct ff_ip ips[FFR_MAX_IPS];
	int nips;
	char host[FFR_HOST_MAX + 1];
	bool remote; /* lives on another host: only its addresses are known here */
	bool from_store; /* learned from the cluster store (not saved in the state file) */
	bool stale;      /* during a store resync: not seen yet */
	enum ffr_policy policy;
	bool tcp_only; /* transport tcp: across hosts never over RDMA */
	dev_t ns_dev; /* registered netns, 0 if none */
	ino_t ns_ino;
	char *dir; /* RUNDIR/c/NAME */
	int lfd;   /* shims connect here */
	struct event *lev;
	struct ffr_stats *st;
	struct ffr_chan_list chans;
	uint32_t nchans, nlisteners, nconns;
	uint32_t nconnecting; /* its channels' connects in flight (count against conns) */
	uint16_t next_port;
	uint8_t *ports; /* bitmap of client ports held by accelerated conns */
	uint64_t ring_bytes; /* of the rings of its same-host connections */
	void *ext[FFR_FEATURES_MAX]; /* each feature's per-container data, by its slot */
};
TAILQ_HEAD(ffr_container_list, ffr_container);
TAILQ_HEAD(ffr_listener_list, ffr_listener);

struct ffr_config {
	const char *rundir;
	struct ffr_quota quota;
	int sockbuf; /* send/receive buffer of same-host connections, bytes (0: kernel's) */
	uint32_t ring; /* bytes of each ring of a same-host connection (0: no rings) */
	const char *host_id; /* this host's name in the locality map (NULL: hostname) */
	unsigned watchdog_ms; /* a loop that has not turned this long is stuck (0: 5 s) */
	unsigned fd_reserve; /* fds kept below RLIMIT_NOFILE for what is under way and
			      * ffctl (0: a 16th of the limit, 16 to 1024) */
	const char *metrics; /* IP:PORT of the Prometheus endpoint (NULL: none) */
};

/* A request handler: ch's request req with nfds fds it now owns. */
typedef void (*ffr_handler)(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);

/* An entry of the dispatch table: the request with body case body. */
struct ffr_op {
	uint32_t body;
	ffr_handler fn;
	int nfds;       /* exactly this many fds come with it */
	bool shim, ctl; /* who may send it: a container's shim, ffctl */
};

/* What a feature plugs into the core. Every hook is optional; priv is what
 * the feature registered. Hooks run in registration order, free in reverse. */
struct ffr_feature {
	const char *name;
	/* The router stops: free priv and everything of the feature. Runs
	 * before the core frees its containers, conns and channels. */
	void (*free)(void *priv);
	/* Container c goes away while the router runs (unregistered, or
	 * expired from the cluster store). When the router stops, the
	 * features are freed first: free must release per-container data. */
	void (*container_free)(void *priv, struct ffr_container *c);
	/* A control channel closes. */
	void (*chan_free)(void *priv, struct ffr_chan *ch);
	/* c was registered by ffctl: keep it (state file, cluster store).
	 * A negative errno undoes the registration. */
	int (*registered)(void *priv, struct ffr_container *c);
	/* The container named name (remote: of another host) is gone. */
	void (*unregistered)(void *priv, const char *name, bool remote);
	/* host is another host of the cluster, so containers may live there. */
	bool (*host_known)(void *priv, const char *host);
	/* A shim connects to container t of another host, or (t NULL, policy
	 * host) to dst outside the overlay; src is the client's overlay
	 * address (NULL outside). Returns false if the feature cannot; else it
	 * answers request id on ch, now or later. */
	bool (*connect)(void *priv, struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
			const struct ff_sa *src, const struct ff_sa *dst);
	/* Adds its part to the first piece of a status reply; the returned
	 * memory (what sr now points into) is freed after the reply is sent. */
	void *(*status)(void *priv, Ff__StatusReply *sr);
	/* Busy polling: hot says the loop should poll instead of sleeping,
	 * poll does one pass and returns whether to keep polling. */
	bool (*hot)(void *priv);
	bool (*poll)(void *priv);
	/* Writes its metric families (ffr_metrics_family/_sample) after the
	 * core's, for the --metrics endpoint. */
	void (*metrics)(void *priv, struct ffr_metrics *m);
};

struct ffr_feature_reg {
	const struct ffr_feature *f;
	void *priv;
};

struct ffr_router {
	struct event_base *base;
	char *rundir;
	char host_id[FFR_HOST_MAX + 1];
	struct ffr_quota quota;
	int sockbuf;
	uint32_t ring; /* as ffr_config */
	uint64_t rings_total, ring_bytes; /* connections given rings; their memory now */
	int afd; /* admin socket */
	struct event *aev;
	struct ffr_chan_list admin;
	struct ffr_container_list containers;
	struct ffr_listener_list listeners;
	struct ffr_conn_list conns;
	uint32_t nconns;
	/* the conns' sides by socket inode (ffr_conn_by_ino: every call the
	 * seccomp supervisor serves looks one up; dead conns linger until a
	 * sweep, so a list walk grew with the connection rate) */
	struct ffr_conn_side **ino_tab;
	uint32_t ino_cap, ino_n;
	int map_fd, map_rofd;
	struct ff_map_hdr *map;
	struct event *sweep_ev;
	uint64_t next_id;
	uint64_t conns_total, fallbacks, bad_messages;
	uint64_t quota_refusals; /* connects refused: a container's quota, a channel's cap */
	uint64_t conns_path[FFR_PATHS]; /* conns_total by Ff__Path */
	struct ffr_op ops[FFR_OPS_MAX];
	struct ffr_feature_reg feats[FFR_FEATURES_MAX];
	int nfeats;
	struct ffr_guard *guard;
	struct ffr_mserver *metrics; /* NULL: no --metrics */
};

/* router.c */
struct ffr_router *ffr_router_new(struct event_base *base, const struct ffr_config *cfg,
				  int *err);
/* Frees the features (their free hooks), then everything of the core. */
void ffr_router_free(struct ffr_router *r);
/* Writes the registered containers' addresses into the map page. */
int ffr_map_publish(struct ffr_router *r);
/* Starts the sweep of dead conns if it is not running. */
void ffr_sweep_arm(struct ffr_router *r);
/* NULL, "", "local" or this router's host id. */
bool ffr_is_self(const struct ffr_router *r, const char *host);

/* feature.c */
/* Registers f with priv; returns its slot (the index of c->ext the feature
 * may use), -EEXIST if f is registered already, or -ENOSPC. */
int ffr_feature_add(struct ffr_router *r, const struct ffr_feature *f, void *priv);
/* The priv f registered, or NULL if f is not registered. */
void *ffr_feature_priv(const struct ffr_router *r, const struct ffr_feature *f);
/* Adds n request handlers; -EEXIST if a body case has one, -EINVAL if out
 * of the table. Nothing is added on failure. */
int ffr_ops_add(struct ffr_router *r, const struct ffr_op *ops, size_t n);
/* Whether a registered feature wants the loop to poll, and one pass. */
bool ffr_features_hot(const struct ffr_router *r);
bool ffr_features_poll(struct ffr_router *r);

/* guard.c: I/O on a file a container shares with the router (one open
 * file description in both, so its O_NONBLOCK and socket options are the
 * container's to change): none of these blocks, whatever the file's
 * flags; the router never sets flags on such a file. */
/* accept4 on a listening socket; -EAGAIN when nothing is (still) queued. */
int ffr_shared_accept(struct ffr_router *r, int fd, struct sockaddr *sa, socklen_t *len, int flags);
/* One datagram with nfds fds (not consumed); 0 or -errno (-EAGAIN: full). */
int ffr_shared_send_fds(int fd, const void *buf, size_t len, const int *fds, int nfds);
/* read(2) of an eventfd or a pipe; the length or -errno (-EAGAIN: empty). */
ssize_t ffr_shared_read(int fd, void *buf, size_t len);
/* Marks the step the loop is in, for the watchdog's report: what (a static
 * string), on behalf of who (a container's name, or NULL) and pid. */
void ffr_doing(struct ffr_router *r, const char *what, const char *who, pid_t pid);
/* Stalls of the loop the watchdog saw; the last one's description in
 * last[len] (if last). */
uint64_t ffr_loop_stalls(const struct ffr_router *r, char *last, size_t len);
/* The router's fds are one budget for every container of the host: 0 if n
 * more fit below RLIMIT_NOFILE (read at start) minus the reserve, else
 * -EMFILE (counted; logged at most once a second). New work (a shim's
 * Hello, a listen, a connect) asks before it starts, so that the router
 * refuses it cleanly instead of failing somewhere in the middle. */
int ffr_fd_budget(struct ffr_router *r, unsigned n);
/* accept4 on a listener only the router holds; the fd or -errno. Out of
 * fds, it closes the queued connection at once (counted) and returns
 * -EAGAIN, so that the listener does not stay readable for ever. */
int ffr_accept(struct ffr_router *r, int lfd, struct sockaddr *sa, socklen_t *len, int flags);
uint64_t ffr_accepts_shed(const struct ffr_router *r);
/* The fds open now, the limit, the refusals so far. */
void ffr_fd_usage(struct ffr_router *r, unsigned *open, unsigned *limit, uint64_t *refusals);

/* chan.c */
/* Takes ownership of fd. c is NULL for an admin channel. */
int ffr_chan_new(struct ffr_router *r, struct ffr_container *c, int fd);
/* The channel of fd (the last made for c), NULL if none. */
struct ffr_chan *ffr_chan_of_fd(struct ffr_container *c, int fd);
/* An in-process peer of ch (the seccomp supervisor) skips the socket once
 * ch said Hello: requests by ffr_chan_request, replies to deliver (fds not
 * consumed; NULL: back to the socket). The socket stays, for its end. */
void ffr_chan_local(struct ffr_chan *ch,
		    void (*deliver)(void *arg, const Ff__Reply *rep, const int *fds, int nfds),
		    void *arg);
/* Handles req as if read from ch (fds consumed); a reply may be delivered
 * before this returns. -EPIPE if ch is dead. */
int ffr_chan_request(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_chan_free(struct ffr_chan *ch);
/* Ends ch from anywhere (a handler, a timer, a feature's callback): stops
 * reading it, closes its fd (ch->fd becomes -1) and frees it at the next
 * turn of the loop, so the caller may still use ch until it returns. why
 * (NULL: nothing) is logged. */
void ffr_chan_kill(struct ffr_chan *ch, const char *why);
/* Sends a reply on ch (fds not consumed). A failure kills ch
 * (ffr_chan_kill): a dead channel takes no more replies (-EPIPE). */
int ffr_reply(struct ffr_chan *ch, Ff__Reply *rep, const int *fds, int nfds);
/* One piece of a long answer (no fds) on a channel whose reader may be
 * slower than the router: waits for room in the socket, at most *budget_ms
 * over all the pieces of the answer (decremented), then fails as
 * ffr_reply does. Only for admin channels (root's ffctl): the loop waits. */
int ffr_reply_piece(struct ffr_chan *ch, Ff__Reply *rep, int *budget_ms);
int ffr_reply_status(struct ffr_chan *ch, uint64_t id, Ff__Status st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The status a negative errno maps to on the wire. */
Ff__Status ffr_errno_status(int err);

/* container.c */
/* host NULL/empty/"local"/this router's id: a container here; else one on
 * that host, of which only the addresses are kept. */
int ffr_container_new(struct ffr_router *r, const char *name, const struct ff_ip *ips, int nips,
		      const char *host, enum ffr_policy policy, dev_t ns_dev, ino_t ns_ino,
		      struct ffr_container **out);
void ffr_container_free(struct ffr_container *c);
struct ffr_container *ffr_container_find(struct ffr_router *r, const char *name);
struct ffr_container *ffr_container_by_ip(struct ffr_router *r, const struct ff_ip *ip);
bool ffr_container_owns_ip(const struct ffr_container *c, const struct ff_ip *ip);
/* The container's address of the given family, or NULL. */
const struct ff_ip *ffr_container_ip(const struct ffr_container *c, int family);
int ffr_name_valid(const char *name);
/* Whether the task pid (the router's pid namespace) lives in c's registered
 * network namespace (true when none was registered). */
bool ffr_container_has_pid(const struct ffr_container *c, pid_t pid);
/* A client port from c's range for an overlay connection (0: none left),
 * and its return. A conn side with own_port returns it when it goes. */
uint16_t ffr_port_get(struct ffr_container *c);
void ffr_port_put(struct ffr_container *c, uint16_t port);
/* "container" (or empty) / "host"; -EINVAL otherwise. */
int ffr_policy_parse(const char *s, enum ffr_policy *out);
/* The transport across hosts: "auto" (or empty: *tcp_only false) / "tcp";
 * -EINVAL otherwise. */
int ffr_transport_parse(const char *s, bool *tcp_only);

/* sockets.c: what the router knows of a container's socket by the inode of
 * the app's file (its end of a conn, or of a listener's accept queue), for
 * a feature that answers for the app (the seccomp supervisor). 0 or
 * -ENOENT (not the container's, or not the router's). */
struct ffr_sock_info {
	int kind;                 /* FF_KIND_CONN or FF_KIND_LISTENER */
	struct ff_sa local, peer; /* peer: conns only */
	Ff__Path path;            /* conns only */
	int kfd;                  /* listeners: the kernel listener (not owned) */
	struct ffr_listener *l;   /* listeners */
};
int ffr_sock_lookup(struct ffr_container *c, ino_t ino, struct ffr_sock_info *out);

/* listener.c */
struct ffr_listener *ffr_listener_find(struct ffr_container *c, const struct ff_sa *dst);
/* Queues one connection (fd consumed in every case). -EAGAIN: queue full. */
int ffr_listener_push(struct ffr_listener *l, const Ff__Accepted *a, int fd);
/* The same with nfds (1 or 2) fds: the socket, and its rings' memfd. */
int ffr_listener_push_fds(struct ffr_listener *l, const Ff__Accepted *a, int *fds, int nfds);
/* Hands ffexec's keeper (ch) what it needs to keep listener id of ch's
 * container alive across a router crash and hand it back (Relisten): an
 * unasked Reply (id 0, body keep: the listener's fields) with a stash, a
 * socket holding a copy of the kernel listener in flight, and a copy of
 * the router's end of the queue. The copy in the stash frees the port the
 * moment this router drains it, when the app closes its listener: a copy
 * in the keeper's fd table would hold the port until the keeper noticed.
 * 0 or -errno. */
int ffr_listener_keep(struct ffr_chan *ch, uint64_t id);
/* Ends every listener of c whose app end is closed, at once: its event may
 * not have run yet when the app binds or listens again on the same port. */
void ffr_listeners_reap(struct ffr_container *c);

/* router.c: a non-blocking TCP listener at addr (SO_REUSEADDR; v6only: an
 * IPv6 address takes no IPv4); fd or -errno. */
int ffr_listen_tcp(const struct ff_sa *addr, int backlog, bool v6only);

/* conn.c */
struct ffr_conn *ffr_conn_new(struct ffr_router *r, Ff__Path path);
/* cn's rings (ring_fd, ring set) count against both its containers until
 * it is freed. */
void ffr_conn_ring_charge(struct ffr_router *r, struct ffr_conn *cn);
void ffr_conn_free(struct ffr_router *r, struct ffr_conn *cn);
/* What side s's app sent (tx) or received, from its shim's counter page
 * (0 without one). */
uint64_t ffr_conn_side_bytes(const struct ffr_conn_side *s, bool tx);
/* cn is handed to the apps: counts it (in total and by path) and watches it. */
void ffr_conn_established(struct ffr_router *r, const struct ffr_conn *cn);
/* Binds one side of cn to container c. -ENOBUFS when out of slots. */
int ffr_conn_side_set(struct ffr_conn_side *s, struct ffr_container *c, const struct ff_sa *addr,
		      ino_t ino);

/* sockets.c: the inode of fd's file (0 if fstat fails): how the router
 * names a socket it handed out. */
ino_t ffr_fd_ino(int fd);
/* sockets.c: the AF_UNIX stream pair of a connection the router hands
 * out, with the router's --sockbuf on both ends; 0 or -errno. */
int ffr_conn_pair(struct ffr_router *r, int sv[2]);
/* sockets.c: the reply that hands the client end of cn to the app (fd not consumed) */
void ffr_connect_reply(struct ffr_chan *ch, uint64_t id, const struct ffr_conn *cn, int fd);
/* The same, the asker to read answer[len] from fd itself within ms (see
 * Connect.answer_here). */
void ffr_connect_reply_answer(struct ffr_chan *ch, uint64_t id, const struct ffr_conn *cn, int fd,
			      const uint8_t *answer, size_t len, uint32_t ms);

/* metrics.c: the Prometheus text exposition of GET /metrics. The core
 * writes its families, then each feature's metrics hook adds its own. */
struct evbuffer;
struct ffr_metrics {
	struct evbuffer *out; /* where the text goes */
	const char *family;   /* the family being written */
};
/* "IP:PORT" or "[IPv6]:PORT" (port 0: any free one); 0 or -EINVAL. */
int ffr_metrics_parse(const char *s, struct ff_sa *out);
/* Starts family ffnet_NAME of type "counter" (NAME ends in _total) or
 * "gauge"; help is one line. Its samples follow, before the next family. */
void ffr_metrics_family(struct ffr_metrics *m, const char *name, const char *type,
			const char *help);
/* One sample of the current family: value v, then label name/value pairs,
 * NULL-terminated. Values are escaped (backslash, quote, newline). */
void ffr_metrics_sample(struct ffr_metrics *m, uint64_t v, ...) __attribute__((sentinel));
