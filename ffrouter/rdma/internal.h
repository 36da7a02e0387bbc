/* What the files of rdma/ share and no other folder may use: the objects
 * of the virtual device, and the functions that pass them between files. */
#pragma once

#include <ff/vring.h>

#include "rdma.h"

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
	bool broken; /* its ring's index went out of range: no longer served */
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
	char dest_host[FFR_HOST_MAX + 1]; /* dest_qpn's host: "" for this one */
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
	/* A modify_qp waiting for the peer's router (qp-xhost.c): the context
	 * reads no more requests until it is answered. */
	struct ffr_vqp_ask *ask;
};

/* device.c */
/* The virtual GIDs of a container, in table order. Returns how many. */
int ffr_vgids(const struct ffr_container *c, uint8_t gids[][16], int max);
/* The overlay address a virtual GID stands for; -EINVAL if none. */
int ffr_vgid_ip(const uint8_t gid[16], struct ff_ip *ip);
/* What container c's contexts hold (NULL until its first context). */
static inline struct ffr_rdma_use *ffr_rdma_use(const struct ffr_rdma *rd,
						 const struct ffr_container *c)
{
	return c ? c->ext[rd->slot] : NULL;
}

/* context.c */
int ffr_vctx_new(struct ffr_rdma *rd, struct ffr_container *c, pid_t pid, int *shim_fd,
		 int *async_fd);
void ffr_vctx_free(struct ffr_vctx *x);
/* x's request that waited for another router is answered: x reads
 * requests again, or, if it died meanwhile, is freed. */
void ffr_vctx_resume(struct ffr_vctx *x);
/* Object table: charge-free insertion and lookup by handle and kind. */
int ffr_vobj_add(struct ffr_vctx *x, struct ffr_vobj *o, uint32_t kind);
void ffr_vobj_del(struct ffr_vobj *o);
void *ffr_vobj_get(struct ffr_vctx *x, uint32_t handle, uint32_t kind);
/* Replies on the context socket (fds not consumed). */
int ffr_vreply(struct ffr_vctx *x, Ff__Reply *rep, const int *fds, int nfds);
int ffr_vreply_status(struct ffr_vctx *x, uint64_t id, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The kind (FF_VOBJ_*) of object an async event names; 0: the device. */
uint32_t ffr_vevent_kind(int type);
/* Hands an async event to the app's async socket (dropped when full). */
void ffr_vasync_send(struct ffr_vctx *x, int type, uint64_t cookie);
/* Quota check and charge: -ENOBUFS when over. */
int ffr_vcharge(struct ffr_vctx *x, uint32_t kind, int n);
void ffr_vuncharge(struct ffr_vctx *x, uint32_t kind, int n);

/* objects.c: handlers on the context socket */
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

/* qp.c */
void ffr_vop_create_qp(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_modify_qp(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
void ffr_vop_query_qp(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds);
int ffr_vqp_destroy(struct ffr_vqp *q);
struct ffr_vqp *ffr_vqp_by_num(struct ffr_rdma *rd, uint32_t qpn);
/* An app's modify_qp, checked and translated, before the device sees it. */
struct ffr_vqp_mod {
	struct ibv_qp_attr a; /* the device's view: physical GID, its port */
	int mask;
	uint8_t vgid[16];     /* the app's view of the address, for query_qp */
	uint8_t sgid_index;
	struct ff_ip peer_ip; /* IBV_QP_AV: the overlay address the app named */
	char peer_host[FFR_HOST_MAX + 1]; /* its container's host ("": this one) */
};
/* Hands m to the device and records what it changed; 0 or -errno. */
int ffr_vqp_apply(struct ffr_vqp *q, const struct ffr_vqp_mod *m);
/* QP qpn of host (NULL: this one) now talks to keep (NULL: to a QP of
 * another host): a QP here still connected to it from before is moved to
 * the error state, so that only the chosen one reaches it. */
void ffr_vqp_cut_off(struct ffr_rdma *rd, const char *host, uint32_t qpn,
		     const struct ffr_vqp *keep, const char *who);

/* qp-xhost.c: the QP check across hosts */
/* Asks the router of m->peer_host whether q may talk to QP
 * m->a.dest_qp_num; the reply to request id comes when it answers (or
 * not), and x reads no more requests meanwhile. 0: asked; -errno: not
 * asked (the app's error). */
int ffr_vqp_ask(struct ffr_vqp *q, uint64_t id, const struct ffr_vqp_mod *m);
/* The context goes: its question is dropped, unanswered. */
void ffr_vqp_ask_cancel(struct ffr_vctx *x);
/* The ingress's handler of QP checks (FFR_PREAMBLE_QP). */
void ffr_vqp_check_incoming(struct ffr_router *r, Ff__XPreamble *p, int fd, const uint8_t *tag);

/* direct.c: kernel commands for the direct data path */
bool ffr_direct_supported(const struct ffr_rdma *rd);
int ffr_direct_cq_create(struct ffr_vctx *x, struct ffr_vcq *q, uint32_t cqe);
/* cap: asked for, then what the device gave */
int ffr_direct_qp_create(struct ffr_vctx *x, struct ffr_vqp *q, struct ibv_qp_cap *cap);
int ffr_direct_srq_create(struct ffr_vctx *x, struct ffr_vsrq *s, struct ibv_srq_attr *a);
int ffr_direct_qp_modify(struct ffr_vqp *q, const struct ibv_qp_attr *a, int mask);
int ffr_direct_qp_query(struct ffr_vqp *q, struct ibv_qp_attr *a, int mask, struct ibv_qp_init_attr *ia);
int ffr_direct_srq_modify(struct ffr_vsrq *s, const struct ibv_srq_attr *a, int mask);
int ffr_direct_srq_query(struct ffr_vsrq *s, struct ibv_srq_attr *a);
int ffr_direct_destroy(struct ffr_vctx *x, uint32_t kind, uint32_t dh);
/* The device context's async events, on the direct path. */
void ffr_direct_async_cb(evutil_socket_t fd, short what, void *arg);

/* ring.c: the data path */
/* Takes the work the shim queued on every ring of x, drains stalled CQs. */
void ffr_vctx_run(struct ffr_vctx *x);
/* Moves completions from the device's CQ into its ring; signals the
 * channel. Returns how many it moved. */
uint32_t ffr_vcq_drain(struct ffr_vcq *q);
/* The context's completion channel has an event: drain its CQs. */
void ffr_ring_comp_event_cb(evutil_socket_t fd, short what, void *arg);
/* The shim rang the context's doorbell: take the work it queued. */
void ffr_ring_doorbell_cb(evutil_socket_t fd, short what, void *arg);
/* An error completion for a work request the device never saw. */
void ffr_vcq_push_err(struct ffr_vcq *q, uint64_t wr_id, uint32_t qpn, int opcode, int status);


/* The verbs requests from shims and ffctl (device.c, status.c). */
void ffr_op_verbs_status(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);
/* The feature's metrics hook (status.c): nothing without a device. */
void ffr_rdma_metrics(void *priv, struct ffr_metrics *m);
/* Busy polling (ring.c): the feature's hot and poll hooks. */
bool ffr_rdma_hot(void *priv);
bool ffr_rdma_poll(void *priv);
/* The data path: 0 or -EOPNOTSUPP (the device has no direct path). */
int ffr_rdma_set_path(struct ffr_rdma *rd, enum ffr_verbs_path path);
