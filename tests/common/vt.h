/* What the rdma/ unit tests share: one in-process router (host "A") on the
 * fake device (fake-ibv.h), driven from the test's own thread the way
 * ffctl and a shim drive it: requests on the admin socket, Hello and
 * VerbsOpen on a container's socket, verbs requests on the context socket;
 * the router's loop runs between a request and its reply. */
#pragma once

#include "fake-ibv.h"
#include "inproc.h"
#include "rdma/internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tests name a count by its offset in either struct. */
_Static_assert(offsetof(struct ffr_rdma_quota, pds) == offsetof(struct ffr_rdma_use, pds) &&
		       offsetof(struct ffr_rdma_quota, mems) == offsetof(struct ffr_rdma_use, mems) &&
		       offsetof(struct ffr_rdma_quota, mem_bytes) ==
			       offsetof(struct ffr_rdma_use, mem_bytes),
	       "quota and use count the same things in the same order");

extern struct event_base *vt_base;
extern struct ffr_router *vt_r;
extern struct ffr_rdma *vt_rd;

/* A fresh router on the fake device, the fake's log and counts reset. */
void vt_up(void);
/* Frees the router; asserts that the fake device has nothing live left. */
void vt_down(void);
/* Runs a few non-blocking turns of the router's loop: enough for all that
 * a request or a device event sets off. */
void vt_loop(void);
/* Open fds of this process. */
int vt_nfds(void);

/* Mappings of this process of memfds named name: the router's of the
 * rings it made ("ffnet-vring"), of the app memory handed to it (VT_MEM). */
int vt_nmaps(const char *name);
#define VT_MEM "vt-mem"
/* A sealable memfd of len bytes named VT_MEM (the caller closes it). */
int vt_memfd(size_t len);
/* Asserts that every count of u is zero. */
void vt_assert_use_zero(const struct ffr_rdma_use *u);
/* Asserts that every object the device destroyed since the last reset
 * went before everything it held. */
void vt_assert_destroy_order(void);

/* ffctl requests; each returns the reply's status (-1: no reply). */
int vt_register(const char *name, const char *ip, const char *host);
int vt_unregister(const char *name);
int vt_host_add(const char *name, const char *addr, bool rdma);
/* What container name's contexts hold (NULL: none yet, or unknown). */
struct ffr_rdma_use *vt_use(const char *name);

/* A verbs context as a shim holds it. */
struct vt_ctx {
	int ch; /* the container's channel */
	int fd; /* the context socket */
	int afd; /* the app's async-event socket */
};
/* Hello and VerbsOpen on name's socket, then VerbsCtxInit: the reply's
 * status (ST_OK: x is open). */
int vt_open(const char *name, struct vt_ctx *x);
/* Closes the context as an exiting app does, and lets the router see it. */
void vt_close(struct vt_ctx *x);

/* Sends req (fds not consumed) and runs the loop until its reply. The
 * reply (ff__reply__free_unpacked) or NULL; received fds go to rfds. */
Ff__Reply *vt_call(int fd, Ff__Request *req, const int *fds, int nfds, int *rfds, int *nrfds);

/* Verbs requests on a context. Each returns the errno the app's verbs
 * call would get (0: done) and leaves the reply's status in vt_status;
 * fds that come with a reply are closed unless asked for. */
extern int vt_status; /* -1: no reply */
int vt_alloc_pd(struct vt_ctx *x, uint32_t *pd);
int vt_mem_add(struct vt_ctx *x, uint64_t addr, uint64_t len, int memfd);
int vt_mem_remove(struct vt_ctx *x, uint64_t addr, uint64_t len);
int vt_reg_mr(struct vt_ctx *x, uint32_t pd, uint64_t addr, uint64_t len, uint32_t access,
	      uint32_t *mr, uint32_t *lkey, uint32_t *rkey);
int vt_create_chan(struct vt_ctx *x, uint32_t *ch, int *fd);
int vt_create_cq(struct vt_ctx *x, uint32_t cqe, uint32_t chan, uint64_t cookie, uint32_t *cq,
		 uint32_t *got_cqe);
/* vt_create_cq that also hands over the CQ's ring memfd in *ring. */
int vt_create_cq_ring(struct vt_ctx *x, uint32_t cqe, uint32_t chan, uint64_t cookie,
		      uint32_t *cq, int *ring);
int vt_create_srq(struct vt_ctx *x, uint32_t pd, uint32_t max_wr, uint32_t limit, uint32_t *srq);
/* vt_create_srq that also hands over the SRQ's ring memfd in *ring. */
int vt_create_srq_ring(struct vt_ctx *x, uint32_t pd, uint32_t max_wr, uint32_t *srq, int *ring);
/* mask: IBV_SRQ_LIMIT (limit), IBV_SRQ_MAX_WR (max_wr), or 0 (a query);
 * *got_limit: the limit the reply reports. */
int vt_modify_srq(struct vt_ctx *x, uint32_t srq, uint32_t mask, uint32_t max_wr, uint32_t limit,
		  uint32_t *got_limit);
int vt_create_qp(struct vt_ctx *x, uint32_t pd, uint32_t scq, uint32_t rcq, uint32_t srq,
		 uint32_t type, uint32_t *qp, uint32_t *qpn);
int vt_destroy(struct vt_ctx *x, uint32_t kind, uint32_t handle);

/* A PD, one CQ and an RC QP on them. */
struct vt_qp {
	uint32_t pd, cq, qp, qpn;
};
int vt_qp_new(struct vt_ctx *x, struct vt_qp *q);

/* modify_qp with m as the app's attributes (m->mask says which). */
int vt_modify_qp(struct vt_ctx *x, uint32_t qp, Ff__VerbsQpAttr *m);
/* RESET -> INIT, INIT -> RTR towards (gid, dest_qpn), RTR -> RTS, with
 * the attributes an RC QP needs. */
int vt_qp_init(struct vt_ctx *x, uint32_t qp);
int vt_qp_rtr(struct vt_ctx *x, uint32_t qp, const uint8_t gid[16], uint32_t dest_qpn);
int vt_qp_rts(struct vt_ctx *x, uint32_t qp);
/* query_qp: the reply's attributes, or NULL with *err. *rep is the reply
 * they live in, to be freed (ff__reply__free_unpacked) if not NULL. */
Ff__VerbsQpAttr *vt_query_qp(struct vt_ctx *x, uint32_t qp, Ff__Reply **rep, int *err);

/* The virtual GIDs of IPv4 address ip: ::ffff:ip and fe80::ff:ip. */
void vt_gid_v4(uint8_t gid[16], const char *ip);
void vt_gid_ll(uint8_t gid[16], const char *ip);
/* ::ffff:ip, the RoCE v2 GID of a host at ip. */
#define vt_gid_host vt_gid_v4
