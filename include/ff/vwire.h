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
