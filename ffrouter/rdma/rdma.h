/* RDMA verbs (rdma/): the physical device, and per app process the
 * "verbs contexts" through which containers create PDs, MRs, CQs, QPs and
 * SRQs on it. This header is what other folders may use: the assembly
 * (config, attach), rdma_cm (rdma/cm/: the device, handle tables, QPs it
 * connects) and the unit tests (the ffr_ibv seam). rdma/ depends on the
 * core and on xhost/ (the hosts of the locality map, and their routers,
 * which check the QPs of their containers for it: qp-xhost.c); it never
 * names rdma_cm, which adds itself to the verbs status (ffr_rdma_status_add).
 *
 * Ownership: the router owns struct ffr_rdma (the feature's priv, NULL
 * when no verbs library or device); it owns every context (rd->ctxs); a
 * context owns its socket, its doorbell, its real ibv_context and every
 * object created through it. A container (c->ext[rd->slot]) only counts
 * what its contexts hold, for quotas. Objects are named by handles that
 * index the context's own table, so a container can only ever name its
 * own objects; lkeys and rkeys are the device's, and the device checks
 * them against the PD of the QP that uses them (each context has its own
 * PDs).
 *
 * Names: ffr_v* are objects of the virtual device as the app sees them
 * (ffr_vctx, ffr_vqp...; ffr_vop_* the requests on a context socket);
 * ffr_direct_* are the kernel commands of the direct data path.
 *
 * libibverbs is loaded with dlopen: the router runs without it, and unit
 * tests substitute a fake (struct ffr_ibv, ffr_rdma_attach_ibv). */
#pragma once

#include <infiniband/verbs.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

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

/* How work requests reach the device (ffrouter --verbs-path). */
enum ffr_verbs_path {
	FFR_VPATH_AUTO = 0, /* direct where the device has it, else ring */
	FFR_VPATH_DIRECT,   /* the shim posts and polls the device's queues (rxe) */
	FFR_VPATH_RING,     /* every work request through the router's rings */
};

struct ffr_rdma_config {
	const char *dev;  /* NULL: the first device, if any; "none": no RDMA */
	uint32_t poll_us; /* busy polling after data-path work (0: never) */
	enum ffr_verbs_path path;
};

/* "auto", "direct" or "ring"; -EINVAL otherwise. */
int ffr_verbs_path_parse(const char *s, enum ffr_verbs_path *out);

/* Per-container limits, charged before anything is created. */
struct ffr_rdma_quota {
	uint32_t ctxs, pds, mrs, cqs, qps, srqs, chans, mems;
	uint64_t mem_bytes; /* memfd bytes handed over (pinned when registered) */
};

struct ffr_vctx;
struct ffr_vqp;
TAILQ_HEAD(ffr_vctx_list, ffr_vctx);

/* Handles: an index into v plus a generation, so a stale handle misses. */
struct ffr_htab {
	void **v;
	uint16_t *gen;
	uint32_t cap, hint;
};

/* Adds a part to a verbs status reply; the returned memory (what m now
 * points into) is freed after the reply is sent. */
typedef void *(*ffr_rdma_status_fn)(void *arg, Ff__VerbsStatusReply *m);

struct ffr_rdma {
	struct ffr_router *r;
	int slot; /* the feature's slot: c->ext[slot] is a struct ffr_rdma_use */
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
	uint64_t poll_ns;   /* busy polling after data-path work; 0: never */
	uint64_t hot_until; /* CLOCK_MONOTONIC ns; busy polling until then */
	bool direct; /* containers' queues are theirs to post and poll (direct.c) */
	ffr_rdma_status_fn status_fn;
	void *status_arg;
};

/* Counters of one container (c->ext[rd->slot]). */
struct ffr_rdma_use {
	uint32_t ctxs, pds, mrs, cqs, qps, srqs, chans, mems;
	uint64_t mem_bytes;
};

/* device.c */
/* Registers verbs on r and opens cfg->dev. A router without verbs library
 * or device runs without RDMA (the feature's priv is then NULL): that
 * returns 0 too, unless cfg names a device. -EOPNOTSUPP: the device has
 * no direct data path, which cfg asks for. */
int ffr_rdma_attach(struct ffr_router *r, const struct ffr_rdma_config *cfg);
/* ffr_rdma_attach with a given verbs implementation (tests). */
int ffr_rdma_attach_ibv(struct ffr_router *r, const struct ffr_rdma_config *cfg,
			const struct ffr_ibv *ibv);
/* r's RDMA device, or NULL. */
struct ffr_rdma *ffr_rdma_of(const struct ffr_router *r);
/* Adds fn's part to every verbs status reply (one part only). */
int ffr_rdma_status_add(struct ffr_rdma *rd, ffr_rdma_status_fn fn, void *arg);
/* The physical GID that reaches container t; -EHOSTUNREACH if none. */
int ffr_rdma_peer_gid(struct ffr_rdma *rd, const struct ffr_container *t, union ibv_gid *gid);
/* The physical GID of host h's router (-EHOSTUNREACH: h has no RDMA in
 * the map, or no IPv4 address). */
struct ffr_host;
int ffr_rdma_host_gid(struct ffr_rdma *rd, const struct ffr_host *h, union ibv_gid *gid);

/* context.c: handle tables */
int ffr_htab_add(struct ffr_htab *t, void *p, uint32_t *handle);
void ffr_htab_del(struct ffr_htab *t, uint32_t handle, const void *p);
void *ffr_htab_get(const struct ffr_htab *t, uint32_t handle);
void ffr_htab_free(struct ffr_htab *t);
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

/* qp.c: the QPs rdma_cm connects */
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
/* Whether q may be connected (RESET or INIT). */
bool ffr_vqp_connectable(const struct ffr_vqp *q);
