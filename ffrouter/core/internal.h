/* What the files of the core share and no other folder may use: the
 * stats page, listeners' insides, the core's own request handlers. */
#pragma once

#include "core.h"

/* Per-container byte-counter page, shared read-write with its shims. */
struct ffr_stats {
	int refs;
	int fd;
	struct ff_stat_hdr *hdr;
	uint32_t next;
	uint8_t used[FF_STAT_SLOTS / 8];
};

struct ffr_pending {
	STAILQ_ENTRY(ffr_pending) link;
	int fds[3];   /* connection socket, its rings' memfd and end page; owned */
	int nfds;
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
	int qfd;           /* router end of the accept queue */
	ino_t shim_ino;    /* inode of the app's end, for Lookup */
	bool rings;        /* its shim reads rings (FF_CAP_RINGS) */
	ino_t q_ino;       /* inode of the router's end: the queue's identity */
	struct event *qev; /* EOF from the app */
	struct event *wev; /* room in the queue for the pending list */
	int kfd;           /* kernel listener */
	int stash;         /* -1, or a socket holding a copy of kfd in flight (keeps) */
	int32_t backlog;
	struct event *kev;
	struct ffr_pending_list pending;
	uint32_t npending;
	uint32_t max_pending;
	uint64_t accepted;
};

/* guard.c: the router's part (the watchdog thread starts here) */
int ffr_guard_new(struct ffr_router *r, const struct ffr_config *cfg);
void ffr_guard_free(struct ffr_guard *g);

/* metrics.c: the endpoint of cfg->metrics (none: nothing), on r's loop */
int ffr_mserver_new(struct ffr_router *r, const char *addr);
void ffr_mserver_free(struct ffr_mserver *s);

/* router.c */
/* Binds a non-blocking SOCK_SEQPACKET listener at path (mode applied). */
int ffr_listen_unix(const char *path, mode_t mode);

/* feature.c: the hooks, run over every registered feature */
void ffr_features_free(struct ffr_router *r);
void ffr_features_container_free(struct ffr_container *c);
void ffr_features_chan_free(struct ffr_chan *ch);
int ffr_features_registered(struct ffr_container *c);
void ffr_features_unregistered(struct ffr_router *r, const char *name, bool remote);
bool ffr_features_host_known(struct ffr_router *r, const char *host);
bool ffr_features_connect(struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
			  const struct ff_sa *src, const struct ff_sa *dst);
/* Each feature's part of a status reply, in sr; *mem[i] to free after. */
void ffr_features_status(struct ffr_router *r, Ff__StatusReply *sr, void *mem[FFR_FEATURES_MAX]);
void ffr_features_metrics(struct ffr_router *r, struct ffr_metrics *m);

/* chan.c */
/* A container's socket is readable: accepts its shims. */
void ffr_accept_cb(evutil_socket_t fd, short what, void *arg);
/* Connects handed to features and not answered yet, per channel: the
 * core counts them (in ch and in its container's nconnecting) from the
 * hand-over to the reply with that id (ffr_reply), or to the channel's
 * end. -ENOBUFS at the channel's cap (quota.inflight). */
int ffr_chan_inflight_add(struct ffr_chan *ch, uint64_t id);
void ffr_chan_inflight_del(struct ffr_chan *ch, uint64_t id);

/* container.c */
/* Reserves a client port; returns it, or 0 when the range is exhausted. */
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
struct ffr_listener *ffr_listener_by_id(struct ffr_container *c, uint64_t id);
/* True once every copy of the app's end of the queue is closed. */
bool ffr_listener_orphaned(const struct ffr_listener *l);
/* The app closed it: drain the stash, then free. */
void ffr_listener_end(struct ffr_listener *l);

/* conn.c */
/* Drops conns whose sockets are gone. */
void ffr_conn_sweep(struct ffr_router *r);
void ffr_conn_detach_container(struct ffr_router *r, struct ffr_container *c);
/* The conn with a side whose socket is ino (0: none), found by hash. */
struct ffr_conn *ffr_conn_by_ino(struct ffr_router *r, ino_t ino, struct ffr_conn_side **side,
				 struct ffr_conn_side **other);
/* Frees the inode table (all conns freed first). */
void ffr_conn_ino_free(struct ffr_router *r);
/* Collects the inodes of live AF_UNIX sockets (sorted). Caller frees *out. */
int ffr_unix_inodes(ino_t **out, size_t *n);

/* The core's own requests: sockets.c (from shims) and admin.c (ffctl). */
extern const struct ffr_op ffr_sock_ops[];
extern const size_t ffr_sock_nops;
extern const struct ffr_op ffr_admin_ops[];
extern const size_t ffr_admin_nops;
