/* QPs and SRQs on rdma_cm ids of the virtual device: rdma_create_qp makes
 * a QP on the id's context (and, like librdmacm, its CQs and completion
 * channels when the app gave none) and moves it to INIT; the rest of the
 * QP's life follows the id's events (cm-event.c).
 * Invariant: the CQs and channels made here are the id's (own_cqs) and go
 * with its QP. */
#include "real.h"
#include "cm.h"

#include <errno.h>
#include <rdma/rdma_verbs.h>

/* ---- QPs on ids ---- */

/* The PD of ids whose app gave none: one per process, like librdmacm's. */
static struct ibv_pd *default_pd(struct ibv_context *verbs)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct ibv_pd *pd;

	pthread_mutex_lock(&lock);
	if (!pd)
		pd = ibv_alloc_pd(verbs);
	pthread_mutex_unlock(&lock);
	return pd;
}

/* Like librdmacm: an id without CQs gets one CQ and channel per direction. */
static int own_cqs(struct rdma_cm_id *id, struct ibv_qp_init_attr *a)
{
	id->send_cq_channel = ibv_create_comp_channel(id->verbs);
	id->recv_cq_channel = ibv_create_comp_channel(id->verbs);
	if (!id->send_cq_channel || !id->recv_cq_channel)
		return -errno;
	id->send_cq = ibv_create_cq(id->verbs, (int)(a->cap.max_send_wr ? a->cap.max_send_wr : 1),
				    id, id->send_cq_channel, 0);
	id->recv_cq = ibv_create_cq(id->verbs, (int)(a->cap.max_recv_wr ? a->cap.max_recv_wr : 1),
				    id, id->recv_cq_channel, 0);
	if (!id->send_cq || !id->recv_cq)
		return -errno;
	a->send_cq = id->send_cq;
	a->recv_cq = id->recv_cq;
	to_cmid(id)->own_cqs = true;
	return 0;
}

/* Destroys the CQs and channels own_cqs() made, if it made them. */
static void drop_cqs(struct rdma_cm_id *id)
{
	if (!to_cmid(id)->own_cqs)
		return;
	if (id->send_cq)
		ibv_destroy_cq(id->send_cq);
	if (id->recv_cq)
		ibv_destroy_cq(id->recv_cq);
	if (id->send_cq_channel)
		ibv_destroy_comp_channel(id->send_cq_channel);
	if (id->recv_cq_channel)
		ibv_destroy_comp_channel(id->recv_cq_channel);
	id->send_cq = id->recv_cq = NULL;
	id->send_cq_channel = id->recv_cq_channel = NULL;
	to_cmid(id)->own_cqs = false;
}

/* RESET -> INIT with every access right, as librdmacm leaves a new QP. */
static int qp_init(struct ibv_qp *qp)
{
	struct ibv_qp_attr a = {
	    .qp_state = IBV_QPS_INIT,
	    .pkey_index = 0,
	    .port_num = 1,
	    .qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			       IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC,
	};

	return ibv_modify_qp(qp, &a,
			     IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
}

FFS_EXPORT int rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd,
			      struct ibv_qp_init_attr *attr)
{
	struct ibv_qp *qp;
	int err = 0;

	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_create_qp)(id, pd, attr);
	if (!id->verbs || (pd && pd->context != id->verbs))
		return ffs_cm_err(-EINVAL);
	if (!pd)
		pd = id->pd ? id->pd : default_pd(id->verbs);
	if (!pd)
		return -1;
	if (!attr->send_cq || !attr->recv_cq)
		err = own_cqs(id, attr);
	qp = err ? NULL : ibv_create_qp(pd, attr);
	if (!qp) {
		err = err ? err : -errno;
		drop_cqs(id);
		return ffs_cm_err(err);
	}
	err = qp_init(qp);
	if (err) {
		ibv_destroy_qp(qp);
		drop_cqs(id);
		return ffs_cm_err(-err);
	}
	id->qp = qp;
	id->pd = pd;
	return 0;
}

FFS_EXPORT int rdma_create_qp_ex(struct rdma_cm_id *id, struct ibv_qp_init_attr_ex *ax)
{
	struct ibv_qp_init_attr a;
	int ret;

	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_create_qp_ex)(id, ax);
	if (!ffs_qp_init_attr_from_ex(ax, &a))
		return ffs_cm_fail("rdma_create_qp_ex with these attributes");
	ret = rdma_create_qp(id, (ax->comp_mask & IBV_QP_INIT_ATTR_PD) ? ax->pd : NULL, &a);
	if (!ret)
		ax->cap = a.cap;
	return ret;
}

FFS_EXPORT void rdma_destroy_qp(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel)) {
		CMREAL(rdma_destroy_qp)(id);
		return;
	}
	if (id->qp)
		ibv_destroy_qp(id->qp);
	id->qp = NULL;
	drop_cqs(id);
}

FFS_EXPORT int rdma_create_srq(struct rdma_cm_id *id, struct ibv_pd *pd,
			       struct ibv_srq_init_attr *attr)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_create_srq)(id, pd, attr);
	return ffs_cm_fail("rdma_create_srq (an SRQ on the id: use ibv_create_srq)");
}

FFS_EXPORT int rdma_create_srq_ex(struct rdma_cm_id *id, struct ibv_srq_init_attr_ex *attr)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_create_srq_ex)(id, attr);
	return ffs_cm_fail("rdma_create_srq_ex (an SRQ on the id: use ibv_create_srq)");
}

/* Only ever an SRQ the app put on the id itself: the shim makes none. */
FFS_EXPORT void rdma_destroy_srq(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel)) {
		CMREAL(rdma_destroy_srq)(id);
		return;
	}
	if (id->srq)
		ibv_destroy_srq(id->srq);
	id->srq = NULL;
}
