/* The verbs half's own declarations (verbs/ only). libffshim's RDMA verbs:
 * a virtual device whose objects live in the router. Apps see ordinary
 * libibverbs structs; each is the first member of a shim wrapper
 * (to_vX()), so inline infiniband/verbs.h calls that read the structs keep working,
 * and the context's ops table points into the shim.
 *
 * An object is the shim's iff its context is: ffs_is_vctx() checks the
 * context's device. Anything else passes through to the real libibverbs
 * (RTLD_NEXT), so a program with real devices and no router is untouched.
 * Every verbs call that is not a data-path call is one request/reply on
 * the context's socket; data-path calls only touch the rings (vring.h).
 *
 * Names: ffs_v* is the virtual device and its ring data path (the router
 * moves work between the rings and the device), ffs_d* the direct data
 * path (the shim posts to the device's own queues, verbs-direct.c). In
 * the structs, h is the router's handle of an object, dh the device's
 * (direct path), g a ring queue's geometry, prod/cons ring indexes. */
#pragma once

#include <infiniband/verbs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ff/vring.h>
#include <ff/vwire.h>

#include "ff.pb-c.h"
#include "real.h"
#include "sock/sock.h"
#include "verbs.h"

/* An entry point: a libibverbs or librdmacm name the shim interposes. */
#define FFS_EXPORT __attribute__((visibility("default")))

/* GIDs of the virtual port kept from the router's description. */
#define FFS_MAX_GIDS 10

/* The virtual device as the router describes it. */
struct ffs_vinfo {
	char name[IBV_SYSFS_NAME_MAX];
	uint64_t guid;		   /* host order */
	struct ibv_device_attr da; /* device attributes */
	struct ibv_port_attr pa;   /* attributes of port 1, the only one */
	int ngids;
	union ibv_gid gids[FFS_MAX_GIDS];
};

struct ffs_vctx {
	struct verbs_context vc; /* the app's ibv_context is vc.context */
	pthread_mutex_t lock;	 /* one request in flight on sock */
	int sock;		 /* context socket (hidden fd) */
	int dbfd;		 /* doorbell eventfd (hidden fd), ring data path */
	int ufd;		 /* the device context (hidden fd), direct data path */
	uint64_t next_id;	 /* of the last request on sock */
	struct ffs_vinfo info;
	pthread_mutex_t objs_lock; /* the lists below */
	struct ffs_vcq *cqs;
	struct ffs_vqp *qps;
	struct ffs_vsrq *srqs;
};

/* The wrappers of the app's objects: the libibverbs struct first, then
 * the router's handle (h) and what the data path needs. */
struct ffs_vpd {
	struct ibv_pd pd;
	uint32_t h;
};

struct ffs_region;
#define FFS_MR_MAX_REGIONS 8
struct ffs_vmr {
	struct ibv_mr mr;
	uint32_t h;
	int nregs; /* the memfd regions the MR covers (verbs-mr.c) */
	struct ffs_region *regs[FFS_MR_MAX_REGIONS];
};

struct ffs_vchan {
	struct ibv_comp_channel ch;
	uint32_t h;
};

/* A device queue mapped from the context's fd (direct data path):
 * rdma/rdma_user_rxe.h struct rxe_queue_buf and its slots. */
struct rxe_queue_buf;
struct ffs_dq {
	struct rxe_queue_buf *b; /* the mapping, len bytes */
	size_t len;
	uint32_t mask, log2; /* private copies: never read back from b */
};

/* A ring memfd the shim mapped. */
struct ffs_vring {
	struct ff_vring_hdr *hdr;
	size_t len;
};

struct ffs_vcq {
	struct ibv_cq cq;
	uint32_t h;
	struct ffs_vring ring;
	struct ff_vq_geom g;
	pthread_spinlock_t lock; /* cons, polls */
	uint32_t cons;		 /* next completion to read from the ring */
	uint32_t events;	 /* delivered by ibv_get_cq_event */
	uint32_t acked;		 /* by ibv_ack_cq_events */
	uint32_t empty;		 /* polls in a row that found nothing */
	uint32_t dh;		 /* direct: the device's handle */
	struct ffs_dq dq;	 /* direct: the device's completion queue */
	struct ffs_vcq *next;	 /* in the context's list */
};

struct ffs_vsrq {
	struct ibv_srq srq;
	uint32_t h;
	struct ffs_vring ring;
	struct ff_vq_geom g;
	pthread_spinlock_t lock; /* posting */
	uint32_t prod;		 /* next ring slot to post to */
	uint32_t max_sge;	 /* direct */
	struct ffs_dq dq;	 /* direct: the device's receive queue */
	struct ffs_vsrq *next;
};

struct ffs_vqp {
	struct ibv_qp qp;
	uint32_t h;
	struct ffs_vring ring;
	struct ff_vq_geom sq, rq;	     /* send and receive rings */
	pthread_spinlock_t sq_lock, rq_lock; /* posting to each queue */
	uint32_t sq_prod, rq_prod;	     /* next ring slot to post to */
	bool sq_sig_all;
	uint32_t dh; /* direct: the device's handle, queues, limits */
	struct ffs_dq dsq, drq;
	struct ibv_qp_cap cap; /* what the QP was granted */
	struct ffs_vqp *next;
};

#define FFS_CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

static inline struct ffs_vctx *to_vctx(struct ibv_context *c)
{
	return FFS_CONTAINER_OF(c, struct ffs_vctx, vc.context);
}
/* The shim's wrapper of an app object (its first member). */
#define to_vpd(p)   ((struct ffs_vpd *)(p))
#define to_vmr(p)   ((struct ffs_vmr *)(p))
#define to_vcq(p)   ((struct ffs_vcq *)(p))
#define to_vqp(p)   ((struct ffs_vqp *)(p))
#define to_vsrq(p)  ((struct ffs_vsrq *)(p))
#define to_vchan(p) ((struct ffs_vchan *)(p))

/* verbs-ctx.c */
/* The virtual device ("ffnet0"), the only one the shim lists. */
extern struct ibv_device ffs_vdev;
/* Whether ctx is a context of the virtual device: all its objects are then
 * the shim's. */
bool ffs_is_vctx(const struct ibv_context *ctx);
/* Logs once per name that an app used a verb the virtual device lacks. */
void ffs_vunsupported(const char *what);
/* ffs_sockcall() on x's socket. */
int ffs_vcall(struct ffs_vctx *x, Ff__Request *req, const int *fds, int nfds, Ff__Reply **rep,
	      int *rfd);
/* The same for requests whose reply has no body worth keeping. */
int ffs_vcall0(struct ffs_vctx *x, Ff__Request *req, const int *fds, int nfds);
/* ffs_call() of req, which opens something at the router (a context, an
 * rdma_cm channel): 0 with the nfds fds of the reply in fds (the caller's)
 * and the reply in *rep (the caller frees it; rep NULL: freed here). Else
 * -errno: -ENODEV while the shim is disabled, the router's refusal, or
 * -EPROTO for a reply with another body than body (FF__REPLY__BODY__NOT_SET:
 * any) or another number of fds. */
int ffs_open_call(Ff__Request *req, Ff__Reply__BodyCase body, int nfds, Ff__Reply **rep, int *fds);
/* Destroys object h of kind (FF_VOBJ_*) at the router. 0 or -errno. */
int ffs_vdestroy(struct ffs_vctx *x, uint32_t kind, uint32_t h);
/* Maps a ring memfd (consumed) whose header says kind. 0 or -errno. */
int ffs_vring_map(int fd, uint32_t kind, struct ffs_vring *rg);
void ffs_vring_unmap(struct ffs_vring *rg);
/* Where a new CQ, SRQ or QP keeps the queues the router granted it: its
 * ring on the ring data path; on the direct path the device's handle
 * (dh NULL: the object keeps none) and its device queues (dq2 NULL: it
 * has only one). */
struct ffs_vqueues {
	struct ffs_vring *ring;
	uint32_t *dh;
	struct ffs_dq *dq, *dq2;
};
/* Maps the queues of object h of kind (FF_VOBJ_*) that rep, its create
 * reply (consumed), describes, and on the ring path the ring memfd fd
 * (consumed) that came with it. On failure unmaps what it mapped and
 * destroys h at the router. 0 or -errno. */
int ffs_vqueues_map(struct ffs_vctx *x, uint32_t kind, uint32_t h, Ff__Reply *rep, int fd,
		    const struct ffs_vqueues *qs);
/* A context's object lists (events name objects by cookie, which is the
 * object's address), under x->objs_lock. */

#define FFS_VLINK(x, head, o)                                                                      \
	do {                                                                                       \
		pthread_mutex_lock(&(x)->objs_lock);                                               \
		(o)->next = (x)->head;                                                             \
		(x)->head = (o);                                                                   \
		pthread_mutex_unlock(&(x)->objs_lock);                                             \
	} while (0)
#define FFS_VUNLINK(x, head, o, type)                                                              \
	do {                                                                                       \
		pthread_mutex_lock(&(x)->objs_lock);                                               \
		for (type **pp_ = &(x)->head; *pp_; pp_ = &(*pp_)->next)                           \
			if (*pp_ == (o)) {                                                         \
				*pp_ = (o)->next;                                                  \
				break;                                                             \
			}                                                                          \
		pthread_mutex_unlock(&(x)->objs_lock);                                             \
	} while (0)
#define FFS_VFIND(x, head, cookie, o)                                                              \
	do {                                                                                       \
		pthread_mutex_lock(&(x)->objs_lock);                                               \
		for ((o) = (x)->head; (o) && (uintptr_t)(o) != (cookie); (o) = (o)->next)          \
			;                                                                          \
		pthread_mutex_unlock(&(x)->objs_lock);                                             \
	} while (0)

/* Wakes the router up to look at x's rings. */
void ffs_vdoorbell(struct ffs_vctx *x);
/* Describes the virtual device (VerbsOpen probe); -errno without one. */
int ffs_vprobe(struct ffs_vinfo *info);
/* Opens a context on the virtual device; NULL + errno. */
struct ibv_context *ffs_vopen(void);
/* Closes x and frees it; the router drops what it held for it. */
void ffs_vclose(struct ffs_vctx *x);
/* The device description in a VerbsOpen reply. */
void ffs_vinfo_from_reply(const Ff__VerbsOpenReply *m, struct ffs_vinfo *info);

/* verbs-dev.c */
/* Exported by libibverbs without a prototype in infiniband/verbs.h. */
int ibv_query_gid_type(struct ibv_context *ctx, uint8_t port, unsigned int index, int *type);
/* Its type values (rdma-core's enum ibv_gid_type_sysfs). */
#define FFS_GID_TYPE_SYSFS_ROCE_V2 1
/* The context ops (struct verbs_context) for the extended queries. */
int ffs_vquery_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr, size_t len);
int ffs_vquery_device_ex(struct ibv_context *ctx, const struct ibv_query_device_ex_input *in,
			 struct ibv_device_attr_ex *attr, size_t len);

/* verbs-mr.c */
/* Drops the regions' records of x (its router side is gone). */
void ffs_regions_forget_ctx(struct ffs_vctx *x);

/* verbs-cq.c: the context's CQ ops on the ring data path */
int ffs_vpoll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc);
int ffs_vreq_notify_cq(struct ibv_cq *cq, int solicited_only);

/* What both data paths refuse in a send work request (EINVAL) before its
 * SGEs: an opcode the QP type lacks, unknown flags, a negative SGE count,
 * inline data for a READ or an atomic. */
#define FFS_SEND_FLAGS (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE)
static inline bool ffs_send_wr_ok(const struct ibv_send_wr *wr, unsigned qp_type)
{
	bool fetches = wr->opcode == IBV_WR_RDMA_READ || wr->opcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
		       wr->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD;

	return ff_vwr_opcode_ok(wr->opcode, qp_type) && !(wr->send_flags & ~FFS_SEND_FLAGS) &&
	       wr->num_sge >= 0 && !((wr->send_flags & IBV_SEND_INLINE) && fetches);
}

/* verbs-direct.c: the direct data path (the router's VerbsObjReply.direct) */
static inline bool ffs_vdirect(const struct ffs_vctx *x)
{
	return x->ufd >= 0;
}
/* Maps [off, off+len) of x's device fd as a queue; 0 or -errno. */
int ffs_dq_map(struct ffs_vctx *x, uint64_t off, uint32_t len, struct ffs_dq *q);
void ffs_dq_unmap(struct ffs_dq *q);
/* The context's data-path ops on the direct path (positive errno,
 * *bad set, as a provider's). */
int ffs_dpoll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc);
int ffs_dreq_notify_cq(struct ibv_cq *cq, int solicited_only);
int ffs_dpost_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);
int ffs_dpost_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);
int ffs_dpost_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);

/* verbs-qp.c: the context's post ops on the ring data path, and its
 * create_qp_ex op */
int ffs_vpost_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);
int ffs_vpost_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);
int ffs_vpost_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);
struct ibv_qp *ffs_vcreate_qp_ex(struct ibv_context *ctx, struct ibv_qp_init_attr_ex *attr);
/* The plain attributes ax amounts to, in *a; false (a untouched) if ax
 * asks for what they cannot say: more than a PD and create flags in its
 * comp_mask, or any create flag (rdma_create_qp_ex uses it too). */
bool ffs_qp_init_attr_from_ex(const struct ibv_qp_init_attr_ex *ax, struct ibv_qp_init_attr *a);
/* Cookie -> object, for events; NULL when it no longer exists. */
struct ffs_vqp *ffs_vqp_find(struct ffs_vctx *x, uint64_t cookie);
struct ffs_vsrq *ffs_vsrq_find(struct ffs_vctx *x, uint64_t cookie);
struct ffs_vcq *ffs_vcq_find(struct ffs_vctx *x, uint64_t cookie);
