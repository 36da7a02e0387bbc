/* ffrouter's RDMA side: the physical device, and per app process the
 * "verbs contexts" through which containers create PDs, MRs, CQs, QPs and
 * SRQs on it.
 *
 * Ownership: the router owns struct ffr_rdma (r->rdma, NULL when no verbs
 * library or device); it owns every context (rd->ctxs); a context owns its
 * socket, its doorbell, its real ibv_context and every object created
 * through it. A container (c->rdma) only counts what its contexts hold,
 * for quotas. Objects are named by handles that index the context's own
 * table, so a container can only ever name its own objects; lkeys and
 * rkeys are the device's, and the device checks them against the PD of the
 * QP that uses them (each context has its own PDs).
 *
 * libibverbs is loaded with dlopen: the router runs without it, and unit
 * tests substitute a fake (struct ffr_ibv). */
#pragma once

#include <infiniband/verbs.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <ff/vring.h>

#include "core.h"

/* The libibverbs entry points the router uses (the data-path calls are
 * inline in verbs.h and go through the objects' own ops). */
struct ffr_ibv {
	struct ibv_device **(*get_device_list)(int *num);
	void (*free_device_list)(struct ibv_device **list);
	const char *(*get_device_name)(struct ibv_device *dev);
	struct ibv_context *(*open_device)(struct ibv_device *dev);
	int (*close_device)(struct ibv_context *ctx);
	int (*query_device)(struct ibv_context *ctx, struct ibv_device_attr *attr);
	int (*query_port)(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr);
	int (*query_gid)(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid);
	int (*query_gid_ex)(struct ibv_context *ctx, uint32_t port, uint32_t index,
			    struct ibv_gid_entry *entry, uint32_t flags, size_t size);
	struct ibv_pd *(*alloc_pd)(struct ibv_context *ctx);
	int (*dealloc_pd)(struct ibv_pd *pd);
	struct ibv_mr *(*reg_mr_iova2)(struct ibv_pd *pd, void *addr, size_t len, uint64_t iova,
				       unsigned int access);
	int (*dereg_mr)(struct ibv_mr *mr);
	struct ibv_comp_channel *(*create_comp_channel)(struct ibv_context *ctx);
	int (*destroy_comp_channel)(struct ibv_comp_channel *ch);
	struct ibv_cq *(*create_cq)(struct ibv_context *ctx, int cqe, void *cq_context,
				    struct ibv_comp_channel *ch, int comp_vector);
	int (*destroy_cq)(struct ibv_cq *cq);
	int (*get_cq_event)(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **cq_context);
	void (*ack_cq_events)(struct ibv_cq *cq, unsigned int n);
	struct ibv_qp *(*create_qp)(struct ibv_pd *pd, struct ibv_qp_init_attr *attr);
	int (*modify_qp)(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask);
	int (*query_qp)(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask,
			struct ibv_qp_init_attr *init);
	int (*destroy_qp)(struct ibv_qp *qp);
	struct ibv_srq *(*create_srq)(struct ibv_pd *pd, struct ibv_srq_init_attr *attr);
	int (*modify_srq)(struct ibv_srq *srq, struct ibv_srq_attr *attr, int mask);
	int (*query_srq)(struct ibv_srq *srq, struct ibv_srq_attr *attr);
	int (*destroy_srq)(struct ibv_srq *srq);
	int (*get_async_event)(struct ibv_context *ctx, struct ibv_async_event *ev);
	void (*ack_async_event)(struct ibv_async_event *ev);
};

#define FFR_VDEV_NAME "ffnet0" /* the device containers see */

/* Per-container limits, charged before anything is created. */
struct ffr_rdma_quota {
	uint32_t ctxs, pds, mrs, cqs, qps, srqs, chans, mems;
	uint64_t mem_bytes; /* memfd bytes handed over (pinned when registered) */
};

struct ffr_vctx;
TAILQ_HEAD(ffr_vctx_list, ffr_vctx);

/* Handles: an index into v plus a generation, so a stale handle misses. */
struct ffr_htab {
	void **v;
	uint16_t *gen;
	uint32_t cap, hint;
};

struct ffr_cmchan;
struct ffr_cmid;
struct ffr_cmx;
struct ffr_qp_conn;
TAILQ_HEAD(ffr_cmchan_list, ffr_cmchan);
TAILQ_HEAD(ffr_cmid_list, ffr_cmid);

struct ffr_rdma {
	struct ffr_router *r;
	const struct ffr_ibv *ibv;
	void *dl;
	struct ibv_device **list;
	struct ibv_device *dev;
	char devname[IBV_SYSFS_NAME_MAX];
	struct ibv_context *probe; /* kept open for attributes */
	struct ibv_device_attr dattr;
	uint8_t port;
	int gid_index;     /* the RoCE v2 IPv4 GID of that port */
	union ibv_gid gid; /* this host's physical GID */
	enum ibv_mtu active_mtu;
	struct ffr_rdma_quota quota;
	struct ffr_vctx_list ctxs;
	uint32_t nctxs;
	uint64_t ctxs_total, bad_wqes;
	struct ffr_cmchan_list cmchans;
	struct ffr_cmid_list listens; /* rdma_cm ids in the listening state */
	uint64_t poll_ns;             /* busy polling after data-path work; 0: never */
	uint64_t hot_until;           /* CLOCK_MONOTONIC ns; busy polling until then */
	uint16_t next_port;
	uint64_t cm_conns_total;
	bool direct; /* containers' queues are theirs to post and poll (rdma-direct.c) */
};

/* Counters of one container (c->rdma). */
struct ffr_rdma_use {
	uint32_t ctxs, pds, mrs, cqs, qps, srqs, chans, mems;
	uint64_t mem_bytes;
};

struct ffr_vobj {
	uint32_t kind; /* FF_VOBJ_* */
	uint32_t handle;
	struct ffr_vctx *x;
	TAILQ_ENTRY(ffr_vobj) link; /* x->objs[kind] */
	uint32_t refs;              /* other objects that use this one */
};
TAILQ_HEAD(ffr_vobj_list, ffr_vobj);

/* A memfd range the app handed over: [addr, addr+len) of its address space.
 * The router keeps only its mapping of the memfd, not the fd. */
struct ffr_vmem {
	TAILQ_ENTRY(ffr_vmem) link;
	uint64_t addr, len;
	uint8_t *map; /* the router's mapping of the whole memfd range */
	uint32_t refs; /* MRs, plus one while the shim holds it */
	bool held;
};
#define FFR_VMEM_KIND 0 /* for quotas: memfd ranges have no handle */
TAILQ_HEAD(ffr_vmem_list, ffr_vmem);

struct ffr_vpd {
	struct ffr_vobj o;
	struct ibv_pd *pd;
};

#define FFR_MR_MAX_MEMS 8
struct ffr_vmr {
	struct ffr_vobj o;
	struct ffr_vpd *pd;
	struct ibv_mr *mr;
	uint64_t addr, len;
	uint8_t *map; /* own contiguous mapping when the MR spans several mems */
	size_t maplen;
	int nmems;
	struct ffr_vmem *mems[FFR_MR_MAX_MEMS];
};

/* A ring memfd the router created and mapped. */
struct ffr_vring {
	int fd;
	struct ff_vring_hdr *hdr;
	size_t len;
	struct ff_vq_geom sq, rq, cq; /* private copies: never read back from hdr */
};

struct ffr_vchan {
	struct ffr_vobj o;
	int fd;                      /* router end (-1: direct) */
	struct ibv_comp_channel *kcc; /* direct: the kernel's channel, the app has its fd */
};

/* A queue the shim maps from its context's fd (direct data path). */
struct ffr_dmap {
	uint64_t off;
	uint32_t len;
};

struct ffr_vcq {
	struct ffr_vobj o;
	struct ibv_cq *cq;
	struct ffr_vring ring;
	struct ffr_vchan *ch;
	uint64_t cookie;
	uint32_t prod;     /* next completion index */
	uint32_t arm_done; /* last arm_seq answered with an event */
	bool stalled;      /* ring full with completions left in the device */
	bool unarmed;      /* busy polling: no completion event requested */
	uint64_t cqes;
	uint32_t dh, dcqe; /* direct: the kernel's handle and size */
	struct ffr_dmap dmap;
};

struct ffr_vsrq {
	struct ffr_vobj o;
	struct ffr_vpd *pd;
	struct ibv_srq *srq;
	struct ffr_vring ring;
	uint32_t cons;
	uint64_t cookie;
	uint64_t posted;
	uint32_t dh, max_wr, max_sge; /* direct: the kernel's handle, its size */
	struct ffr_dmap dmap;
};

struct ffr_vqp {
	struct ffr_vobj o;
	struct ffr_vpd *pd;
	struct ffr_vcq *scq, *rcq;
	struct ffr_vsrq *srq;
	struct ibv_qp *qp;
	struct ffr_vring ring;
	uint32_t sq_cons, rq_cons;
	bool sq_full; /* the device's send queue was full: retry after completions */
	bool broken;  /* a bad ring entry: nothing more is taken from this QP */
	uint64_t cookie;
	uint32_t state;
	uint32_t qp_type;
	bool sq_sig_all;
	bool connected;    /* RTR or later since its last RESET, towards dest_qpn */
	bool dest_local;   /* dest_qpn is a QP of this host */
	uint32_t dest_qpn;
	uint8_t vgid[16]; /* the destination GID the app gave (for query_qp) */
	uint8_t sgid_index;
	uint64_t posted, completions;
	uint32_t qpn;
	uint32_t dh; /* direct: the kernel's handle */
	struct ffr_dmap dsq, drq;
};

struct ffr_vctx {
	TAILQ_ENTRY(ffr_vctx) link;
	struct ffr_rdma *rd;
	struct ffr_container *c; /* NULL once its container is unregistered */
	char name[FFR_NAME_MAX + 1]; /* the container's */
	pid_t pid;
	int fd; /* context socket */
	struct event *ev;
	int afd; /* router end of the async-event socket */
	int dbfd;
	struct event *dbev;
	struct ibv_context *ctx;
	struct ibv_comp_channel *cc;
	struct event *ccev;
	struct event *asev; /* the device's async events */
	struct ffr_htab objtab;
	struct ffr_vobj_list objs[FF_VOBJ_CHANNEL + 1];
	struct ffr_vmem_list mems;
	struct ffr_rdma_use use;
	uint32_t bad;
	bool dead;
	bool direct; /* the shim posts and polls the device's queues itself */
};

/* rdma-dev.c (and router.h: ffr_rdma_attach, _free, _container_free, ffr_op_verbs_open) */
/* ffr_rdma_attach with a given verbs implementation (tests). */
int ffr_rdma_attach_ibv(struct ffr_router *r, const char *name, const struct ffr_ibv *ibv);
/* The virtual GIDs of a container, in table order. Returns how many. */
int ffr_vgids(const struct ffr_container *c, uint8_t gids[][16], int max);
/* The overlay address a virtual GID stands for; -EINVAL if none. */
int ffr_vgid_ip(const uint8_t gid[16], struct ff_ip *ip);
/* The physical GID that reaches container t; -EHOSTUNREACH if none. */
int ffr_rdma_peer_gid(struct ffr_rdma *rd, const struct ffr_container *t, union ibv_gid *gid);

/* rdma-ctx.c */
int ffr_vctx_new(struct ffr_rdma *rd, struct ffr_container *c, pid_t pid, int *shim_fd,
		 int *async_fd);
void ffr_vctx_free(struct ffr_vctx *x);
int ffr_htab_add(struct ffr_htab *t, void *p, uint32_t *handle);
void ffr_htab_del(struct ffr_htab *t, uint32_t handle, const void *p);
void *ffr_htab_get(const struct ffr_htab *t, uint32_t handle);
void ffr_htab_free(struct ffr_htab *t);
/* Object table: charge-free insertion and lookup by handle and kind. */
int ffr_vobj_add(struct ffr_vctx *x, struct ffr_vobj *o, uint32_t kind);
void ffr_vobj_del(struct ffr_vobj *o);
void *ffr_vobj_get(struct ffr_vctx *x, uint32_t handle, uint32_t kind);
/* Replies on the context socket (fds not consumed). */
int ffr_vreply(struct ffr_vctx *x, Ff__Reply *rep, const int *fds, int nfds);
/* A status reply (a VerbsObjReply with err) in one piece, for the verbs
 * context and the rdma_cm channel alike; fills it and logs a failure at
 * debug level as "WHO: message". */
struct ffr_status_reply {
	Ff__Reply rep;
	Ff__VerbsObjReply ob;
	char msg[256];
};
void ffr_status_fill(struct ffr_status_reply *s, uint64_t id, int err, const char *who,
		     const char *fmt, va_list ap);
int ffr_vreply_status(struct ffr_vctx *x, uint64_t id, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The kind (FF_VOBJ_*) of object an async event names; 0: the device. */
uint32_t ffr_vevent_kind(int type);
/* Hands an async event to the app's async socket (dropped when full). */
void ffr_vasync_send(struct ffr_vctx *x, int type, uint64_t cookie);
/* Quota check and charge: -ENOBUFS when over. */
int ffr_vcharge(struct ffr_vctx *x, uint32_t kind, int n);
void ffr_vuncharge(struct ffr_vctx *x, uint32_t kind, int n);
Ff__Status ffr_errno_status(int err);

/* rdma-obj.c: handlers on the context socket */
typedef void (*ffr_vhandler)(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_alloc_pd(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_mem_add(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_reg_mr(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_create_channel(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_create_cq(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_create_srq(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_modify_srq(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_destroy(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
/* Destroys o (and what only it held); -EBUSY while others use it. */
int ffr_vobj_destroy(struct ffr_vobj *o);
void ffr_vmem_put(struct ffr_vctx *x, struct ffr_vmem *m);
/* A sealed memfd ring of total len bytes, mapped; 0 or -errno. */
int ffr_vring_new(struct ffr_vring *rg, uint32_t kind, size_t len);
void ffr_vring_free(struct ffr_vring *rg);
/* Slots of a queue of at least n entries of stride bytes, at *off. */
void ffr_vq_geom(struct ff_vq_geom *g, uint32_t n, uint32_t stride, size_t *off);

/* rdma-qp.c */
void ffr_vop_create_qp(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_modify_qp(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_query_qp(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
int ffr_vqp_destroy(struct ffr_vqp *q);
struct ffr_vqp *ffr_vqp_by_num(struct ffr_rdma *rd, uint32_t qpn);

/* rdma-direct.c: kernel commands for the direct data path */
bool ffr_direct_supported(const struct ffr_rdma *rd);
int ffr_dcq_create(struct ffr_vctx *x, struct ffr_vcq *q, uint32_t cqe);
/* cap: asked for, then what the device gave */
int ffr_dqp_create(struct ffr_vctx *x, struct ffr_vqp *q, struct ibv_qp_cap *cap);
int ffr_dsrq_create(struct ffr_vctx *x, struct ffr_vsrq *s, struct ibv_srq_attr *a);
int ffr_dqp_modify(struct ffr_vqp *q, const struct ibv_qp_attr *a, int mask);
int ffr_dqp_query(struct ffr_vqp *q, struct ibv_qp_attr *a, int mask, struct ibv_qp_init_attr *ia);
int ffr_dsrq_modify(struct ffr_vsrq *s, const struct ibv_srq_attr *a, int mask);
int ffr_dsrq_query(struct ffr_vsrq *s, struct ibv_srq_attr *a);
int ffr_ddestroy(struct ffr_vctx *x, uint32_t kind, uint32_t dh);
void ffr_dasync_cb(evutil_socket_t fd, short what, void *arg);

/* rdma-ring.c: the data path */
/* Takes the work the shim queued on every ring of x, drains stalled CQs. */
void ffr_vctx_run(struct ffr_vctx *x);
/* Moves completions from the device's CQ into its ring; signals the
 * channel. Returns how many it moved. */
uint32_t ffr_vcq_drain(struct ffr_vcq *q);
void ffr_vcc_cb(evutil_socket_t fd, short what, void *arg);
void ffr_vdb_cb(evutil_socket_t fd, short what, void *arg);
/* An error completion for a work request the device never saw. */
void ffr_vcq_push_err(struct ffr_vcq *q, uint64_t wr_id, uint32_t qpn, int opcode, int status);


/* ---- rdma_cm ---- */

enum ffr_cm_state {
	CM_IDLE,
	CM_BOUND,
	CM_LISTEN,
	CM_ADDR,       /* address resolved */
	CM_ROUTE,      /* route resolved */
	CM_CONNECTING, /* active side, request sent */
	CM_REQ,        /* passive side (a listener's child), request received */
	CM_CONNECTED,
	CM_DISCONNECTED,
};

/* What one side asked for at connect or accept. */
struct ffr_cm_param {
	uint8_t pdata[256];
	uint32_t pdata_len;
	uint8_t responder_resources, initiator_depth, retry_count, rnr_retry_count;
	uint8_t flow_control;
	bool srq;
	uint32_t qp_num;
};

struct ffr_cmid {
	TAILQ_ENTRY(ffr_cmid) link;  /* ch->ids */
	TAILQ_ENTRY(ffr_cmid) llink; /* rd->listens, while listening */
	struct ffr_cmchan *ch;
	uint32_t h;
	enum ffr_cm_state state;
	uint32_t ps, qp_type;
	struct ff_sa local, peer;
	int backlog;
	uint32_t pending;          /* a listener's children not yet accepted or rejected */
	struct ffr_cmid *parent;   /* a child: its listener, until it answers */
	struct ffr_cmid *peer_id;  /* the other end, while connecting or connected */
	struct ffr_cmx *x;         /* or: the lifeline to the other end's router */
	struct ffr_cm_param param; /* this side's connect or accept */
	uint32_t psn;
};

/* An app's rdma_event_channel: a request socket and an event socket. */
struct ffr_cmchan {
	TAILQ_ENTRY(ffr_cmchan) link;
	struct ffr_rdma *rd;
	struct ffr_container *c; /* NULL once unregistered */
	char name[FFR_NAME_MAX + 1];
	pid_t pid;
	int fd;  /* requests */
	int efd; /* events, router end */
	struct event *ev;
	struct ffr_htab ids_tab;
	struct ffr_cmid_list ids;
	uint32_t bad;
	bool dead;
};

/* rdma-cm.c (and router.h: ffr_op_rdma_cm_open) */
void ffr_cmchan_free(struct ffr_cmchan *ch);
int ffr_cm_reply_status(struct ffr_cmchan *ch, uint64_t id, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A new id of ch (a listener's child for a connect request). */
struct ffr_cmid *ffr_cmid_new(struct ffr_cmchan *ch);
void ffr_cmid_free(struct ffr_cmid *id);
/* Writes one event for id (param and peer_gid may be NULL). */
void ffr_cm_event(struct ffr_cmid *id, uint32_t type, int status, const struct ffr_cm_param *param,
		  bool swap_rd, const uint8_t *peer_gid);

/* rdma-cmconn.c: connection set-up between two ids */
#define FFR_REJ_NO_RESOURCES 3       /* IB CM reject reasons (the event's status) */
#define FFR_REJ_INVALID_SERVICE_ID 8 /* no listener */
#define FFR_REJ_INVALID_GID 12
#define FFR_REJ_CONSUMER_DEFINED 28
int ffr_cm_connect(struct ffr_cmid *id, const Ff__RdmaConnParam *p);
int ffr_cm_accept(struct ffr_cmid *id, const Ff__RdmaConnParam *p);
int ffr_cm_reject(struct ffr_cmid *id, const uint8_t *pdata, size_t len);
int ffr_cm_disconnect(struct ffr_cmid *id);
/* id goes away: its peer learns it as a reject or a disconnect. */
void ffr_cm_detach(struct ffr_cmid *id);
/* A connect's or accept's parameters from a message: -EINVAL if too much
 * private data; the rest clamped to what the fields can hold. */
int ffr_cm_param_from(const Ff__RdmaConnParam *m, struct ffr_cm_param *p);
/* Resolves p's responder resources and initiator depth (255: as many as
 * allowed) against this device and, for an accept, the request (other). */
int ffr_cm_depths(struct ffr_rdma *rd, struct ffr_cm_param *p, const struct ffr_cm_param *other);
/* The QP attributes of one side (active or not) of a connection between
 * the active side's act/act_psn and the passive side's acc/acc_psn. */
void ffr_cm_qp_conn(struct ffr_rdma *rd, const struct ffr_cm_param *act, uint32_t act_psn,
		    const struct ffr_cm_param *acc, uint32_t acc_psn, bool active,
		    struct ffr_qp_conn *out);
/* A new child of t's listener for dst (state CM_REQ), or NULL: none, or
 * its backlog is full. */
struct ffr_cmid *ffr_cm_request(struct ffr_rdma *rd, const struct ffr_container *t,
				const struct ff_sa *dst, const struct ff_sa *src);
void ffr_cm_leave_listener(struct ffr_cmid *child);
/* The QP id's connect or accept named, if it is still its container's. */
struct ffr_vqp *ffr_cm_qp(struct ffr_cmid *id);
void ffr_cm_qp_error(struct ffr_cmid *id);
void ffr_cm_vgid(const struct ff_ip *ip, uint8_t g[16]);

/* rdma-cmx.c: connections with an id on another host, over a TCP
 * connection between the two routers (proto/ff.proto XCmRequest). */
/* Sends id's connect request to t's host; id goes to CM_CONNECTING, or
 * its app sees UNREACHABLE at once. */
int ffr_cmx_connect(struct ffr_cmid *id, struct ffr_container *t);
/* The request a passive id received from the other router. */
const struct ffr_cm_param *ffr_cmx_peer_param(const struct ffr_cmx *x);
/* Moves the passive id's QP q and answers ACCEPT; ESTABLISHED follows
 * when the other router says its QP is ready. */
int ffr_cmx_accept(struct ffr_cmid *id, struct ffr_vqp *q);
/* Sends a REJECT (best effort; x stays). */
void ffr_cmx_reject(struct ffr_cmx *x, int reason, const uint8_t *pdata, size_t len);
/* Closes the lifeline and unlinks it from its id. NULL is a no-op. */
void ffr_cmx_free(struct ffr_cmx *x);

/* rdma-qp.c, for rdma_cm */
struct ffr_qp_conn {
	uint32_t dest_qpn, rq_psn, sq_psn;
	uint8_t max_rd_atomic, max_dest_rd_atomic, retry_cnt, rnr_retry;
};
/* Moves q (of container c) to RTS, connected to QP dest_qpn of the
 * container that owns peer_ip. */
int ffr_vqp_connect(struct ffr_vqp *q, const struct ff_ip *peer_ip, const struct ffr_qp_conn *p);
int ffr_vqp_set_error(struct ffr_vqp *q);
/* The QP numbered qpn if it belongs to container c. */
struct ffr_vqp *ffr_vqp_of(struct ffr_rdma *rd, const struct ffr_container *c, uint32_t qpn);
