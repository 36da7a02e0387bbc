/* Verbs structures to and from their messages (vconv.h). Field by field,
 * with the widths of the verbs structures: a value too wide for its field
 * is cut as the C conversion cuts it; the router checks ranges where they
 * matter (modify_qp, rdma_cm's depths), never here. */
#include "vconv.h"

#include <errno.h>
#include <string.h>

void ff_vqp_cap_to_msg(const struct ibv_qp_cap *c, Ff__VerbsQpCaps *m)
{
	ff__verbs_qp_caps__init(m);
	m->max_send_wr = c->max_send_wr;
	m->max_recv_wr = c->max_recv_wr;
	m->max_send_sge = c->max_send_sge;
	m->max_recv_sge = c->max_recv_sge;
	m->max_inline_data = c->max_inline_data;
}

void ff_vqp_cap_from_msg(const Ff__VerbsQpCaps *m, struct ibv_qp_cap *c)
{
	c->max_send_wr = m->max_send_wr;
	c->max_recv_wr = m->max_recv_wr;
	c->max_send_sge = m->max_send_sge;
	c->max_recv_sge = m->max_recv_sge;
	c->max_inline_data = m->max_inline_data;
}

void ff_vqp_attr_to_msg(const struct ibv_qp_attr *a, Ff__VerbsQpAttr *m)
{
	ff__verbs_qp_attr__init(m);
	m->qp_state = a->qp_state;
	m->cur_qp_state = a->cur_qp_state;
	m->path_mtu = a->path_mtu;
	m->path_mig_state = a->path_mig_state;
	m->qkey = a->qkey;
	m->rq_psn = a->rq_psn;
	m->sq_psn = a->sq_psn;
	m->dest_qp_num = a->dest_qp_num;
	m->qp_access_flags = (uint32_t)a->qp_access_flags;
	m->pkey_index = a->pkey_index;
	m->en_sqd_async_notify = a->en_sqd_async_notify;
	m->sq_draining = a->sq_draining;
	m->max_rd_atomic = a->max_rd_atomic;
	m->max_dest_rd_atomic = a->max_dest_rd_atomic;
	m->min_rnr_timer = a->min_rnr_timer;
	m->port_num = a->port_num;
	m->timeout = a->timeout;
	m->retry_cnt = a->retry_cnt;
	m->rnr_retry = a->rnr_retry;
}

void ff_vqp_attr_from_msg(const Ff__VerbsQpAttr *m, struct ibv_qp_attr *a)
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

void ff_vah_to_msg(const struct ibv_ah_attr *ah, Ff__VerbsAh *m)
{
	ff__verbs_ah__init(m);
	m->dgid.data = (uint8_t *)ah->grh.dgid.raw;
	m->dgid.len = 16;
	m->flow_label = ah->grh.flow_label;
	m->sgid_index = ah->grh.sgid_index;
	m->hop_limit = ah->grh.hop_limit;
	m->traffic_class = ah->grh.traffic_class;
	m->dlid = ah->dlid;
	m->sl = ah->sl;
	m->src_path_bits = ah->src_path_bits;
	m->static_rate = ah->static_rate;
	m->is_global = ah->is_global;
	m->port_num = ah->port_num;
}

int ff_vah_from_msg(const Ff__VerbsAh *m, struct ibv_ah_attr *ah)
{
	if (!m || m->dgid.len != 16)
		return -EINVAL;
	memcpy(ah->grh.dgid.raw, m->dgid.data, 16);
	ah->grh.flow_label = m->flow_label;
	ah->grh.sgid_index = (uint8_t)m->sgid_index;
	ah->grh.hop_limit = (uint8_t)m->hop_limit;
	ah->grh.traffic_class = (uint8_t)m->traffic_class;
	ah->dlid = (uint16_t)m->dlid;
	ah->sl = (uint8_t)m->sl;
	ah->src_path_bits = (uint8_t)m->src_path_bits;
	ah->static_rate = (uint8_t)m->static_rate;
	ah->is_global = (uint8_t)m->is_global;
	ah->port_num = (uint8_t)m->port_num;
	return 0;
}

void ff_vconn_param_to_msg(const struct rdma_conn_param *p, Ff__RdmaConnParam *m)
{
	ff__rdma_conn_param__init(m);
	m->private_data.data = (uint8_t *)p->private_data;
	m->private_data.len = p->private_data ? p->private_data_len : 0;
	m->responder_resources = p->responder_resources;
	m->initiator_depth = p->initiator_depth;
	m->flow_control = p->flow_control;
	m->retry_count = p->retry_count;
	m->rnr_retry_count = p->rnr_retry_count;
	m->srq = p->srq;
	m->qp_num = p->qp_num;
}

int ff_vconn_param_from_msg(const Ff__RdmaConnParam *m, struct rdma_conn_param *p)
{
	if (m->private_data.len > UINT8_MAX)
		return -EMSGSIZE;
	memset(p, 0, sizeof(*p));
	p->private_data = m->private_data.len ? m->private_data.data : NULL;
	p->private_data_len = (uint8_t)m->private_data.len;
	p->responder_resources = (uint8_t)m->responder_resources;
	p->initiator_depth = (uint8_t)m->initiator_depth;
	p->flow_control = (uint8_t)m->flow_control;
	p->retry_count = (uint8_t)m->retry_count;
	p->rnr_retry_count = (uint8_t)m->rnr_retry_count;
	p->srq = (uint8_t)m->srq;
	p->qp_num = m->qp_num;
	return 0;
}
