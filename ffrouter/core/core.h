/* ffrouter internals: the objects one router owns and the functions that
 * pass them between files. Ownership: the router owns containers, listeners,
 * conns and the admin channels; a container owns its shim channels and holds
 * one reference on its stats area; every conn side holds another, so byte
 * counters stay readable after the container is unregistered. */
#pragma once

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <ff/shm.h>
#include <ff/wire.h>

#include "addr.h"
#include "ff.pb-c.h"

#define FFR_NAME_MAX 63
#define FFR_MAX_IPS 8
#define FFR_HOST_MAX 63

struct ffr_router;
struct ffr_container;

struct ffr_quota {
	uint32_t channels;
	uint32_t listeners;
	uint32_t conns;
	uint32_t pending; /* accept-queue entries held by the router per listener */
};

/* Per-container byte-counter page, shared read-write with its shims. */
struct ffr_stats {
	int refs;
	int fd;
	struct ff_stat_hdr *hdr;
	uint32_t next;
	uint8_t used[FF_STAT_SLOTS / 8];
};

/* One SOCK_SEQPACKET control channel: a shim (c != NULL) or ffctl. */
struct ffr_chan {
	TAILQ_ENTRY(ffr_chan) link;
	struct ffr_router *r;
	struct ffr_container *c;
	int fd;
	struct event *ev;
	bool hello;
	pid_t pid;
	uid_t uid;
	uint32_t bad; /* malformed messages seen */
};
TAILQ_HEAD(ffr_chan_list, ffr_chan);

struct ffr_pending {
	STAILQ_ENTRY(ffr_pending) link;
	int fd;       /* connection socket, owned */
	uint8_t *msg; /* packed Accepted */
	size_t len;
};
STAILQ_HEAD(ffr_pending_list, ffr_pending);

/* An overlay listener: the router end of a container's accept queue plus the
 * container's kernel listening socket, whose connections it forwards. */
struct ffr_listener {
	TAILQ_ENTRY(ffr_listener) link;
	struct ffr_router *r;
	struct ffr_container *c;
	uint64_t id;
	struct ff_sa addr;
	bool v6only;
	int qfd;       /* router end of the accept queue */
	ino_t shim_ino; /* inode of the app's end, for Lookup */
	ino_t q_ino;    /* inode of the router's end: the queue's identity */
	struct event *qev; /* EOF from the app */
	struct event *wev; /* room in the queue for the pending list */
	int kfd; /* kernel listener */
	struct event *kev;
	struct ffr_pending_list pending;
	uint32_t npending;
	uint32_t max_pending;
	uint64_t accepted;
};
TAILQ_HEAD(ffr_listener_list, ffr_listener);

struct ffr_conn_side {
	char name[FFR_NAME_MAX + 1];
	struct ffr_container *c; /* NULL once unregistered */
	struct ffr_stats *st;
	uint32_t slot;
	ino_t ino;
	struct ff_sa addr;
	bool own_port; /* addr.port came from the container's allocator */
};

struct ffr_conn {
	TAILQ_ENTRY(ffr_conn) link;
	uint64_t id;
	Ff__Path path;
	struct ffr_conn_side cli, srv;
};
TAILQ_HEAD(ffr_conn_list, ffr_conn);

enum ffr_policy {
	FFR_POLICY_CONTAINER = 0, /* outside the overlay: the container's own network */
	FFR_POLICY_HOST,          /* outside the overlay: a host socket from the router */
};

/* A host of the cluster other than this router's (the locality map). */
struct ffr_host {
	TAILQ_ENTRY(ffr_host) link;
	char name[FFR_HOST_MAX + 1];
	struct ff_sa addr; /* its router's ingress */
	bool rdma;
	bool from_store;
	bool stale;
};
TAILQ_HEAD(ffr_host_list, ffr_host);

/* A published port: host_port on this host goes to container:port. */
struct ffr_publish {
	TAILQ_ENTRY(ffr_publish) link;
	struct ffr_router *r;
	char container[FFR_NAME_MAX + 1];
	uint16_t host_port, port;
	int fd;
	struct event *ev;
	uint64_t accepted;
};
TAILQ_HEAD(ffr_publish_list, ffr_publish);

struct ffr_xconn;
TAILQ_HEAD(ffr_xconn_list, ffr_xconn);
struct ffr_ingress;
TAILQ_HEAD(ffr_ingress_list, ffr_ingress);

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
	dev_t ns_dev; /* registered netns, 0 if none */
	ino_t ns_ino;
	char *dir; /* RUNDIR/c/NAME */
	int lfd;   /* shims connect here */
	struct event *lev;
	struct ffr_stats *st;
	struct ffr_chan_list chans;
	uint32_t nchans, nlisteners, nconns;
	uint16_t next_port;
	uint8_t *ports; /* bitmap of client ports held by accelerated conns */
	struct ffr_rdma_use *rdma; /* rdma-*.c: what its verbs contexts hold */
};
TAILQ_HEAD(ffr_container_list, ffr_container);

struct ffr_config {
	const char *rundir;
	const char *state;
	struct ffr_quota quota;
	int sockbuf; /* send/receive buffer of same-host connections, bytes (0: kernel's) */
	const char *host_id;     /* this host's name in the locality map */
	const char *ingress;     /* "IP:PORT" other routers connect to, or NULL */
	const char *secret_file; /* the cluster secret */
	int xconnect_ms;         /* connect timeout to another router */
	const char *store;       /* "etcd://HOST:PORT", or NULL: the state file only */
	const char *advertise;   /* "IP:PORT" other routers reach us at (default: ingress) */
};

struct ffr_router {
	struct event_base *base;
	char *rundir;
	char *state;
	struct ffr_quota quota;
	int sockbuf;
	int afd; /* admin socket */
	struct event *aev;
	struct ffr_chan_list admin;
	struct ffr_container_list containers;
	struct ffr_listener_list listeners;
	struct ffr_conn_list conns;
	char host_id[FFR_HOST_MAX + 1];
	struct ffr_host_list hosts;
	struct ffr_publish_list publishes;
	struct ffr_xconn_list xconns;     /* connects in progress to other routers */
	struct ffr_ingress_list ingresses; /* preambles being read */
	int ifd;                          /* ingress listener, -1 if none */
	struct event *iev;
	uint8_t *secret;
	size_t secret_len;
	int xconnect_ms;
	struct ffr_etcd *etcd; /* the cluster store, NULL with the state file only */
	uint32_t nconns;
	int map_fd, map_rofd;
	struct ff_map_hdr *map;
	struct event *sweep_ev;
	uint64_t next_id;
	uint64_t conns_total, fallbacks, bad_messages;
	struct ffr_rdma *rdma; /* rdma-*.c: NULL without an RDMA device */
};

/* router.c */
struct ffr_router *ffr_router_new(struct event_base *base, const struct ffr_config *cfg,
				  int *err);
void ffr_router_free(struct ffr_router *r);
int ffr_map_publish(struct ffr_router *r);
void ffr_sweep_arm(struct ffr_router *r);
/* Binds a non-blocking SOCK_SEQPACKET listener at path (mode applied). */
int ffr_listen_unix(const char *path, mode_t mode);

/* chan.c */
/* Takes ownership of fd. c is NULL for an admin channel. */
int ffr_chan_new(struct ffr_router *r, struct ffr_container *c, int fd);
void ffr_chan_free(struct ffr_chan *ch);
/* Sends a reply on ch (fds not consumed). Closes nothing on failure. */
int ffr_reply(struct ffr_chan *ch, Ff__Reply *rep, const int *fds, int nfds);
int ffr_reply_status(struct ffr_chan *ch, uint64_t id, Ff__Status st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void ffr_accept_cb(evutil_socket_t fd, short what, void *arg);

/* container.c */
/* host NULL/empty/"local"/this router's id: a container here; else one on
 * that (declared) host, of which only the addresses are kept. */
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
/* "container" (or empty) / "host"; -EINVAL otherwise. */
int ffr_policy_parse(const char *s, enum ffr_policy *out);
/* Reserves a client port; returns it, or 0 when the range is exhausted. */
uint16_t ffr_port_get(struct ffr_container *c);
void ffr_port_put(struct ffr_container *c, uint16_t port);

struct ffr_stats *ffr_stats_new(void);
struct ffr_stats *ffr_stats_ref(struct ffr_stats *st);
void ffr_stats_unref(struct ffr_stats *st);
/* Returns a free slot index or UINT32_MAX. The slot's counters are zeroed. */
uint32_t ffr_stats_alloc(struct ffr_stats *st);
void ffr_stats_release(struct ffr_stats *st, uint32_t slot);

/* listener.c */
struct ffr_listen_args {
	struct ff_sa addr;
	bool v6only;
	int backlog;
	ino_t shim_ino; /* the app's end, when the queue is handed back */
};
/* Consumes kfd and qfd. qfd < 0: a new queue, whose app end is returned in
 * *shim_fd; else qfd is the router end of an existing queue a shim hands
 * back after a restart (*shim_fd = -1). */
int ffr_listener_new(struct ffr_container *c, const struct ffr_listen_args *a, int kfd, int qfd,
		     int *shim_fd, struct ffr_listener **out);
struct ffr_listener *ffr_listener_by_queue(struct ffr_router *r, ino_t q_ino);
void ffr_listener_free(struct ffr_listener *l);
struct ffr_listener *ffr_listener_find(struct ffr_container *c, const struct ff_sa *dst);
struct ffr_listener *ffr_listener_by_id(struct ffr_container *c, uint64_t id);
/* True once every copy of the app's end of the queue is closed. */
bool ffr_listener_orphaned(const struct ffr_listener *l);
/* Queues one connection (fd consumed in every case). -EAGAIN: queue full. */
int ffr_listener_push(struct ffr_listener *l, const Ff__Accepted *a, int fd);

/* conn.c */
struct ffr_conn *ffr_conn_new(struct ffr_router *r, Ff__Path path);
void ffr_conn_free(struct ffr_router *r, struct ffr_conn *cn);
/* Binds one side of cn to container c. -ENOBUFS when out of slots. */
int ffr_conn_side_set(struct ffr_conn_side *s, struct ffr_container *c, const struct ff_sa *addr,
		      ino_t ino);
/* Drops conns whose sockets are gone. */
void ffr_conn_sweep(struct ffr_router *r);
void ffr_conn_detach_container(struct ffr_router *r, struct ffr_container *c);
struct ffr_conn *ffr_conn_by_ino(struct ffr_router *r, ino_t ino, struct ffr_conn_side **side,
				 struct ffr_conn_side **other);
/* Collects the inodes of live AF_UNIX sockets (sorted). Caller frees *out. */
int ffr_unix_inodes(ino_t **out, size_t *n);

/* host.c */
int ffr_host_add(struct ffr_router *r, const char *name, const struct ff_sa *addr, bool rdma,
		 struct ffr_host **out);
void ffr_host_free(struct ffr_router *r, struct ffr_host *h);
struct ffr_host *ffr_host_find(struct ffr_router *r, const char *name);
bool ffr_host_is_self(const struct ffr_router *r, const char *name);
/* Parses "IP:PORT" / "[IPv6]:PORT"; -EINVAL if malformed or port 0. */
int ffr_parse_hostport(const char *s, struct ff_sa *out);
int ffr_read_secret(struct ffr_router *r, const char *path);

/* xauth.c: the preamble one router sends another, sealed with the secret */
#define FFR_XFRAME_MAX 1024
/* Reads a length-prefixed frame (2-byte big-endian length, then at most
 * FFR_XFRAME_MAX bytes) into in[cap], never a byte past it. *inwant starts
 * at 2. Returns 1 when the frame is complete, 0 when more is to come,
 * -EPROTO for a length out of range, -ECONNRESET at EOF, or -errno. */
int ffr_xframe_read(int fd, uint8_t *in, size_t cap, size_t *inlen, size_t *inwant);
/* Fills version, time and nonce of p and writes the length-prefixed,
 * MAC'd frame into buf. Returns its length or -errno. */
int ffr_preamble_seal(struct ffr_router *r, Ff__XPreamble *p, uint8_t *buf, size_t cap);
/* Checks a received frame body (after the length): MAC first, then
 * version, freshness and replay. On success *out must be freed with
 * ff__xpreamble__free_unpacked. -EACCES: bad MAC or no secret. */
int ffr_preamble_open(struct ffr_router *r, const uint8_t *msg, size_t len, Ff__XPreamble **out);
void ffr_nonces_free(struct ffr_router *r);
/* Writes a length-prefixed XReply frame; returns its length. */
size_t ffr_xreply_frame(Ff__Status st, const char *err, uint8_t *buf, size_t cap);

/* shimops.c: the reply that hands the client end of cn to the app (fd not consumed) */
void ffr_connect_reply(struct ffr_chan *ch, uint64_t id, const struct ffr_conn *cn, int fd);

/* xconn.c: a connect to a container on another host (t), or, for a
 * container whose policy is host, to a destination outside (t NULL) */
void ffr_xconn_start(struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
		     const struct ff_sa *src, const struct ff_sa *dst);
void ffr_xconn_cancel_chan(struct ffr_chan *ch);
void ffr_xconn_free_all(struct ffr_router *r);
/* Records an established TCP-path connection of local container c. */
struct ffr_conn *ffr_conn_tcp(struct ffr_router *r, struct ffr_container *c, bool client,
			      const struct ff_sa *local, const struct ff_sa *remote,
			      const char *remote_name, int fd);

/* ingress.c: other routers' connections, and published ports */
int ffr_ingress_open(struct ffr_router *r, const char *hostport);
void ffr_ingress_close(struct ffr_router *r);
int ffr_publish_add(struct ffr_router *r, const char *container, uint16_t host_port,
		    uint16_t port, struct ffr_publish **out);
void ffr_publish_free(struct ffr_publish *p);
struct ffr_publish *ffr_publish_find(struct ffr_router *r, uint16_t host_port);
void ffr_op_host_add(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_host_remove(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_list_hosts(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_publish(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_host_to_proto(struct ffr_router *r, const struct ffr_host *h, Ff__Host *m, Ff__Addr *a,
		       uint8_t ab[16]);
/* rdma-cmx.c: an rdma_cm connect request another router sent to the
 * ingress (p->cm set). Consumes p and fd; tag: the preamble's MAC. */
void ffr_cmx_incoming(struct ffr_router *r, Ff__XPreamble *p, int fd, const uint8_t *tag);

/* map-etcd.c: the cluster store */
int ffr_etcd_open(struct ffr_router *r, const char *url, const char *advertise);
void ffr_etcd_close(struct ffr_router *r);
/* Publishes a local registration (no-op without etcd). */
void ffr_etcd_put_container(struct ffr_router *r, const struct ffr_container *c);
void ffr_etcd_delete_container(struct ffr_router *r, const char *name);

/* map-file.c: the state file, and the record format the etcd store shares */
enum ffr_rec_kind { FFR_REC_HOST = 1, FFR_REC_CONTAINER, FFR_REC_PUBLISH };
struct ffr_record {
	enum ffr_rec_kind kind;
	char name[FFR_NAME_MAX + 1];
	char host[FFR_HOST_MAX + 1];
	struct ff_ip ips[FFR_MAX_IPS];
	int nips;
	enum ffr_policy policy;
	dev_t ns_dev;
	ino_t ns_ino;
	struct ff_sa addr; /* host */
	bool rdma;
	uint16_t host_port, port; /* publish */
};
/* 1 and *rec for a record, 0 for a blank or comment line, -EINVAL. */
int ffr_record_parse(const char *line, struct ffr_record *rec);
/* The container's record line; its length or -ENAMETOOLONG. */
int ffr_record_format(const struct ffr_router *r, const struct ffr_container *c, char *buf,
		      size_t len);
int ffr_state_load(struct ffr_router *r);
int ffr_state_save(struct ffr_router *r);

/* shimops.c and ctl.c: request handlers, dispatched by chan.c */
typedef void (*ffr_handler)(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_hello(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_listen(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_connect(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_lookup(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_unlisten(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_relisten(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_register(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_unregister(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_list(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_status(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);

/* rdma-*.c (RDMA verbs; the rest is in rdma.h) */
struct ffr_rdma;
struct ffr_rdma_use;
/* Opens RDMA device name (NULL: the first one, "none": no RDMA). A router
 * without verbs library or device runs without RDMA: that returns 0 too. */
int ffr_rdma_attach(struct ffr_router *r, const char *name);
/* Busy polling of the verbs data path (rdma-ring.c): after work arrives the
 * router polls every ring and completion queue itself for poll_us before it
 * sleeps on doorbells and completion events again. ffr_rdma_hot says whether
 * the main loop should poll rather than sleep; ffr_rdma_poll does one pass
 * and returns whether to keep polling. */
void ffr_rdma_set_poll(struct ffr_router *r, uint32_t poll_us);
/* "direct" (the shim posts and polls the device's queues: rxe only),
 * "ring" (every work request through the router) or "auto" (direct when
 * the device has it). 0, -EINVAL (no such path) or -EOPNOTSUPP. */
int ffr_rdma_set_path(struct ffr_router *r, const char *path);
bool ffr_rdma_hot(const struct ffr_router *r);
bool ffr_rdma_poll(struct ffr_router *r);
void ffr_rdma_free(struct ffr_rdma *rd);
/* Destroys everything the container's verbs contexts hold. */
void ffr_rdma_container_free(struct ffr_container *c);
void ffr_op_verbs_open(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_verbs_status(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
void ffr_op_rdma_cm_open(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
