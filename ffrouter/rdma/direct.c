/* The direct data path (soft-RoCE): a container's CQs, QPs and SRQs are
 * created by the router, through the kernel's uverbs commands, in that
 * container's own device context, and their queues are left unmapped in
 * the router so that the shim maps them from the context's fd (which it
 * receives at VerbsCtxInit) and posts and polls them itself, as the
 * native provider would: no router on the data path.
 *
 * The router still does everything else: which objects exist, every
 * modify_qp (with its address translation and peer checks), destruction,
 * and the async events. libibverbs cannot be used for these objects (its
 * rxe provider maps the queues itself, and the kernel lets each be mapped
 * only once), so this file speaks the kernel's write() command ABI
 * (rdma/ib_user_verbs.h, rdma/rdma_user_rxe.h) on the context's cmd_fd.
 *
 * Invariant: objects made here carry the shim's cookie as their kernel
 * user handle, so completion events (read by the shim from its channel)
 * and async events (read raw here, never through libibverbs, which would
 * take the handle for a pointer) name them by cookie. */
#include "internal.h"

#include <errno.h>
#include <rdma/ib_user_verbs.h>
#include <rdma/rdma_user_rxe.h>
#include <string.h>
#include <unistd.h>

#define RXE_VENDOR_ID 0xffffff

bool ffr_direct_supported(const struct ffr_rdma *rd)
{
	return rd->dattr.vendor_id == RXE_VENDOR_ID;
}

/* One legacy write() command: hdr, then len bytes of cmd (which starts
 * with its response pointer when outlen > 0). 0 or -errno. */
static int ucmd(struct ffr_vctx *x, uint32_t command, const void *cmd, size_t len, size_t outlen)
{
	struct {
		struct ib_uverbs_cmd_hdr h;
		uint8_t body[256];
	} b;
	size_t n = sizeof(b.h) + len;
	ssize_t r;

	if (len > sizeof(b.body) || n % 4 || outlen % 4)
		return -EINVAL;
	b.h.command = command;
	b.h.in_words = (uint16_t)(n / 4);
	b.h.out_words = (uint16_t)(outlen / 4);
	memcpy(b.body, cmd, len);
	do
		r = write(x->ctx->cmd_fd, &b, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == (ssize_t)n ? 0 : -EIO;
}

static void map_from(struct ffr_dmap *m, const struct mminfo *mi)
{
	m->off = mi->offset;
	m->len = mi->size;
}

int ffr_direct_cq_create(struct ffr_vctx *x, struct ffr_vcq *q, uint32_t cqe)
{
	struct ib_uverbs_create_cq c = {0};
	struct {
		struct ib_uverbs_create_cq_resp r;
		struct rxe_create_cq_resp d;
	} resp = {0};
	int err;

	c.response = (uintptr_t)&resp;
	c.user_handle = q->cookie;
	c.cqe = cqe;
	c.comp_channel = q->ch ? q->ch->kcc->fd : -1;
	err = ucmd(x, IB_USER_VERBS_CMD_CREATE_CQ, &c, sizeof(c), sizeof(resp));
	if (err)
		return err;
	q->dh = resp.r.cq_handle;
	q->dcqe = resp.r.cqe;
	map_from(&q->dmap, &resp.d.mi);
	return 0;
}

int ffr_direct_qp_create(struct ffr_vctx *x, struct ffr_vqp *q, struct ibv_qp_cap *cap)
{
	struct ib_uverbs_create_qp c = {0};
	struct {
		struct ib_uverbs_create_qp_resp r;
		struct rxe_create_qp_resp d;
	} resp = {0};
	int err;

	c.response = (uintptr_t)&resp;
	c.user_handle = q->cookie;
	c.pd_handle = q->pd->pd->handle;
	c.send_cq_handle = q->scq->dh;
	c.recv_cq_handle = q->rcq->dh;
	c.srq_handle = q->srq ? q->srq->dh : 0;
	c.is_srq = q->srq != NULL;
	c.max_send_wr = cap->max_send_wr;
	c.max_recv_wr = cap->max_recv_wr;
	c.max_send_sge = cap->max_send_sge;
	c.max_recv_sge = cap->max_recv_sge;
	c.max_inline_data = cap->max_inline_data;
	c.sq_sig_all = q->sq_sig_all;
	c.qp_type = (uint8_t)q->qp_type;
	err = ucmd(x, IB_USER_VERBS_CMD_CREATE_QP, &c, sizeof(c), sizeof(resp));
	if (err)
		return err;
	q->dh = resp.r.qp_handle;
	q->qpn = resp.r.qpn;
	cap->max_send_wr = resp.r.max_send_wr;
	cap->max_recv_wr = resp.r.max_recv_wr;
	cap->max_send_sge = resp.r.max_send_sge;
	cap->max_recv_sge = resp.r.max_recv_sge;
	cap->max_inline_data = resp.r.max_inline_data;
	map_from(&q->dsq, &resp.d.sq_mi);
	map_from(&q->drq, &resp.d.rq_mi);
	return 0;
}

int ffr_direct_srq_create(struct ffr_vctx *x, struct ffr_vsrq *s, struct ibv_srq_attr *a)
{
	struct ib_uverbs_create_srq c = {0};
	struct {
		struct ib_uverbs_create_srq_resp r;
		struct rxe_create_srq_resp d;
	} resp = {0};
	int err;

	c.response = (uintptr_t)&resp;
	c.user_handle = s->cookie;
	c.pd_handle = s->pd->pd->handle;
	c.max_wr = a->max_wr;
	c.max_sge = a->max_sge;
	c.srq_limit = a->srq_limit;
	err = ucmd(x, IB_USER_VERBS_CMD_CREATE_SRQ, &c, sizeof(c), sizeof(resp));
	if (err)
		return err;
	s->dh = resp.r.srq_handle;
	a->max_wr = resp.r.max_wr;
	a->max_sge = resp.r.max_sge;
	map_from(&s->dmap, &resp.d.mi);
	return 0;
}

static void dest_to(struct ib_uverbs_qp_dest *d, const struct ibv_ah_attr *a)
{
	memcpy(d->dgid, a->grh.dgid.raw, 16);
	d->flow_label = a->grh.flow_label;
	d->dlid = a->dlid;
	d->sgid_index = a->grh.sgid_index;
	d->hop_limit = a->grh.hop_limit;
	d->traffic_class = a->grh.traffic_class;
	d->sl = a->sl;
	d->src_path_bits = a->src_path_bits;
	d->static_rate = a->static_rate;
	d->is_global = a->is_global;
	d->port_num = a->port_num;
}

static void dest_from(struct ibv_ah_attr *a, const struct ib_uverbs_qp_dest *d)
{
	memcpy(a->grh.dgid.raw, d->dgid, 16);
	a->grh.flow_label = d->flow_label;
	a->dlid = d->dlid;
	a->grh.sgid_index = d->sgid_index;
	a->grh.hop_limit = d->hop_limit;
	a->grh.traffic_class = d->traffic_class;
	a->sl = d->sl;
	a->src_path_bits = d->src_path_bits;
	a->static_rate = d->static_rate;
	a->is_global = d->is_global;
	a->port_num = d->port_num;
}

int ffr_direct_qp_modify(struct ffr_vqp *q, const struct ibv_qp_attr *a, int mask)
{
	struct ib_uverbs_modify_qp c = {0};

	c.qp_handle = q->dh;
	c.attr_mask = (uint32_t)mask;
	c.qkey = a->qkey;
	c.rq_psn = a->rq_psn;
	c.sq_psn = a->sq_psn;
	c.dest_qp_num = a->dest_qp_num;
	c.qp_access_flags = a->qp_access_flags;
	c.pkey_index = a->pkey_index;
	c.qp_state = (uint8_t)a->qp_state;
	c.cur_qp_state = (uint8_t)a->cur_qp_state;
	c.path_mtu = (uint8_t)a->path_mtu;
	c.path_mig_state = (uint8_t)a->path_mig_state;
	c.en_sqd_async_notify = a->en_sqd_async_notify;
	c.max_rd_atomic = a->max_rd_atomic;
	c.max_dest_rd_atomic = a->max_dest_rd_atomic;
	c.min_rnr_timer = a->min_rnr_timer;
	c.port_num = a->port_num;
	c.timeout = a->timeout;
	c.retry_cnt = a->retry_cnt;
	c.rnr_retry = a->rnr_retry;
	if (mask & IBV_QP_AV)
		dest_to(&c.dest, &a->ah_attr);
	return ucmd(q->o.x, IB_USER_VERBS_CMD_MODIFY_QP, &c, sizeof(c), 0);
}

int ffr_direct_qp_query(struct ffr_vqp *q, struct ibv_qp_attr *a, int mask, struct ibv_qp_init_attr *ia)
{
	struct ib_uverbs_query_qp c = {0};
	struct ib_uverbs_query_qp_resp r = {0};
	int err;

	c.response = (uintptr_t)&r;
	c.qp_handle = q->dh;
	c.attr_mask = (uint32_t)mask;
	err = ucmd(q->o.x, IB_USER_VERBS_CMD_QUERY_QP, &c, sizeof(c), sizeof(r));
	if (err)
		return err;
	dest_from(&a->ah_attr, &r.dest);
	a->cap.max_send_wr = ia->cap.max_send_wr = r.max_send_wr;
	a->cap.max_recv_wr = ia->cap.max_recv_wr = r.max_recv_wr;
	a->cap.max_send_sge = ia->cap.max_send_sge = r.max_send_sge;
	a->cap.max_recv_sge = ia->cap.max_recv_sge = r.max_recv_sge;
	a->cap.max_inline_data = ia->cap.max_inline_data = r.max_inline_data;
	a->qkey = r.qkey;
	a->rq_psn = r.rq_psn;
	a->sq_psn = r.sq_psn;
	a->dest_qp_num = r.dest_qp_num;
	a->qp_access_flags = r.qp_access_flags;
	a->pkey_index = r.pkey_index;
	a->qp_state = r.qp_state;
	a->cur_qp_state = r.cur_qp_state;
	a->path_mtu = r.path_mtu;
	a->path_mig_state = r.path_mig_state;
	a->sq_draining = r.sq_draining;
	a->max_rd_atomic = r.max_rd_atomic;
	a->max_dest_rd_atomic = r.max_dest_rd_atomic;
	a->min_rnr_timer = r.min_rnr_timer;
	a->port_num = r.port_num;
	a->timeout = r.timeout;
	a->retry_cnt = r.retry_cnt;
	a->rnr_retry = r.rnr_retry;
	ia->sq_sig_all = r.sq_sig_all;
	return 0;
}

int ffr_direct_srq_modify(struct ffr_vsrq *s, const struct ibv_srq_attr *a, int mask)
{
	struct {
		struct ib_uverbs_modify_srq c;
		struct rxe_modify_srq_cmd d; /* only for resizing, which is refused */
	} c = {0};

	c.c.srq_handle = s->dh;
	c.c.attr_mask = (uint32_t)mask;
	c.c.max_wr = a->max_wr;
	c.c.srq_limit = a->srq_limit;
	return ucmd(s->o.x, IB_USER_VERBS_CMD_MODIFY_SRQ, &c, sizeof(c), 0);
}

int ffr_direct_srq_query(struct ffr_vsrq *s, struct ibv_srq_attr *a)
{
	struct ib_uverbs_query_srq c = {0};
	struct ib_uverbs_query_srq_resp r = {0};
	int err;

	c.response = (uintptr_t)&r;
	c.srq_handle = s->dh;
	err = ucmd(s->o.x, IB_USER_VERBS_CMD_QUERY_SRQ, &c, sizeof(c), sizeof(r));
	if (err)
		return err;
	a->max_wr = r.max_wr;
	a->max_sge = r.max_sge;
	a->srq_limit = r.srq_limit;
	return 0;
}

/* The three destroy commands share one layout: response, handle, pad. */
int ffr_direct_destroy(struct ffr_vctx *x, uint32_t kind, uint32_t dh)
{
	struct ib_uverbs_destroy_qp c = {0};
	struct ib_uverbs_destroy_cq_resp r = {0}; /* the largest of the three */
	uint32_t command;

	switch (kind) {
	case FF_VOBJ_QP:
		command = IB_USER_VERBS_CMD_DESTROY_QP;
		break;
	case FF_VOBJ_CQ:
		command = IB_USER_VERBS_CMD_DESTROY_CQ;
		break;
	case FF_VOBJ_SRQ:
		command = IB_USER_VERBS_CMD_DESTROY_SRQ;
		break;
	default:
		return -EINVAL;
	}
	c.response = (uintptr_t)&r;
	c.qp_handle = dh;
	return ucmd(x, command, &c, sizeof(c),
		    kind == FF_VOBJ_CQ ? sizeof(r) : sizeof(struct ib_uverbs_destroy_qp_resp));
}

/* Async events of a direct context: element is the object's cookie (or a
 * port number, for device events). */
void ffr_direct_async_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ib_uverbs_async_event_desc d;

	while (read(fd, &d, sizeof(d)) == (ssize_t)sizeof(d))
		ffr_vasync_send(arg, (int)d.event_type,
				ffr_vevent_kind((int)d.event_type) ? d.element : 0);
}
