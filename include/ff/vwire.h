/* Verbs messages and ring slots, read the same way by the shim (replies to
 * the app) and the router (requests from the app): one definition, so the
 * two sides cannot drift apart. */
#pragma once

#include <infiniband/verbs.h>
#include <string.h>

#include "ff.pb-c.h"

/* The work-request opcodes a ring slot may carry on a QP of qp_type. */
static inline int ff_vwr_opcode_ok(unsigned op, unsigned qp_type)
{
	switch (op) {
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_IMM:
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return 1;
	case IBV_WR_RDMA_READ:
	case IBV_WR_ATOMIC_CMP_AND_SWP:
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		return qp_type == IBV_QPT_RC;
	default:
		return 0;
	}
}

/* The scalar fields of a QP attribute message; a is cleared first. The
 * capabilities and the address vector are each side's own business. */
static inline void ff_vqp_attr_scalars(const Ff__VerbsQpAttr *m, struct ibv_qp_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->qp_state = m->qp_state;
	a->cur_qp_state = m->cur_qp_state;
	a->path_mtu = m->path_mtu;
	a->path_mig_state = m->path_mig_state;
	a->qkey = m->qkey;
	a->rq_psn = m->rq_psn;
	a->sq_psn = m->sq_psn;
	a->dest_qp_num = m->dest_qp_num;
	a->qp_access_flags = (int)m->qp_access_flags;
	a->pkey_index = (uint16_t)m->pkey_index;
	a->en_sqd_async_notify = (uint8_t)m->en_sqd_async_notify;
	a->sq_draining = (uint8_t)m->sq_draining;
	a->max_rd_atomic = (uint8_t)m->max_rd_atomic;
	a->max_dest_rd_atomic = (uint8_t)m->max_dest_rd_atomic;
	a->min_rnr_timer = (uint8_t)m->min_rnr_timer;
	a->port_num = (uint8_t)m->port_num;
	a->timeout = (uint8_t)m->timeout;
	a->retry_cnt = (uint8_t)m->retry_cnt;
	a->rnr_retry = (uint8_t)m->rnr_retry;
}
