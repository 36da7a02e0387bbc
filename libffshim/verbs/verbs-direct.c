/* The direct data path (soft-RoCE): the router created this context's
 * CQs, QPs and SRQs in a device context of their own and handed its fd
 * over (VerbsCtxInit); their queues are mapped from that fd, and
 * post_send, post_recv, post_srq_recv, poll_cq and req_notify_cq work on
 * them as rdma-core's rxe provider would: write a work request into the
 * queue, publish the producer index, and for sends ring the device with
 * an empty POST_SEND command (through ioctl: see invoke()). The formats are the kernel's ABI
 * (rdma/rdma_user_rxe.h, rdma/ib_user_verbs.h).
 *
 * Checks: a work request is refused (EINVAL) as in the ring data path
 * when its opcode, flags, SGE count or inline size exceed what the QP
 * was created with; a mapping is only used after its geometry was found
 * to fit in it. lkeys, rkeys and addresses are the kernel's to check,
 * against the PD the router chose. */
#include "real.h"
#include "verbs-internal.h"

#include <ff/vwire.h>

#include <errno.h>
#include <rdma/ib_user_ioctl_cmds.h>
#include <rdma/ib_user_ioctl_verbs.h>
#include <rdma/ib_user_verbs.h>
#include <rdma/rdma_user_ioctl_cmds.h>
#include <rdma/rdma_user_rxe.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- queues ---- */

int ffs_dq_map(struct ffs_vctx *x, uint64_t off, uint32_t len, struct ffs_dq *q)
{
	struct rxe_queue_buf *b;
	uint64_t slots;

	memset(q, 0, sizeof(*q));
	if (len < sizeof(*b))
		return -EPROTO;
	b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, x->ufd, (off_t)off);
	if (b == MAP_FAILED)
		return -errno;
	q->b = b;
	q->len = len;
	q->mask = b->index_mask;
	q->log2 = b->log2_elem_size;
	slots = (uint64_t)q->mask + 1;
	if (q->log2 > 16 || (slots & (slots - 1)) || (slots << q->log2) > len - sizeof(*b)) {
		ffs_dq_unmap(q);
		return -EPROTO;
	}
	return 0;
}

void ffs_dq_unmap(struct ffs_dq *q)
{
	if (q->b)
		munmap(q->b, q->len);
	q->b = NULL;
}

/* Slot idx of q (any index: it wraps). */
static void *slot(const struct ffs_dq *q, uint32_t idx)
{
	return q->b->data + ((size_t)(idx & q->mask) << q->log2);
}

static size_t slot_size(const struct ffs_dq *q)
{
	return (size_t)1 << q->log2;
}

/* The next free slot's index, or -1 when the queue is full. Lock held. */
static int64_t prod_next(const struct ffs_dq *q)
{
	uint32_t prod = __atomic_load_n(&q->b->producer_index, __ATOMIC_RELAXED);
	uint32_t cons = __atomic_load_n(&q->b->consumer_index, __ATOMIC_ACQUIRE);

	return ((prod + 1 - cons) & q->mask) == 0 ? -1 : (int64_t)(prod & q->mask);
}

/* Makes the slot at idx visible to the device. Lock held. */
static void prod_publish(struct ffs_dq *q, uint32_t idx)
{
	__atomic_store_n(&q->b->producer_index, (idx + 1) & q->mask, __ATOMIC_RELEASE);
}

/* ---- sends ---- */

/* The gather/scatter list into the device's format; the bytes it spans. */
static uint32_t sge_put(struct rxe_dma_info *d, const struct ibv_sge *sg, int n)
{
	uint32_t len = 0;

	for (int i = 0; i < n; i++) {
		d->sge[i].addr = sg[i].addr;
		d->sge[i].length = sg[i].length;
		d->sge[i].lkey = sg[i].lkey;
		len += sg[i].length;
	}
	d->num_sge = (uint32_t)n;
	return len;
}

/* wr as the rxe send queue element w, refused (EINVAL) as a device
 * would. 0 or a positive errno. */
static int dwqe_fill(const struct ffs_vqp *q, struct rxe_send_wqe *w, const struct ibv_send_wr *wr)
{
	bool atomic =
	    wr->opcode == IBV_WR_ATOMIC_CMP_AND_SWP || wr->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD;
	size_t room = slot_size(&q->dsq) - sizeof(*w);
	uint32_t len = 0;

	if (!ffs_send_wr_ok(wr, q->qp.qp_type))
		return EINVAL;
	memset(w, 0, sizeof(*w));
	w->wr.wr_id = wr->wr_id;
	w->wr.opcode = wr->opcode;
	w->wr.send_flags = wr->send_flags;
	w->wr.ex.imm_data = wr->imm_data;
	if (atomic) {
		w->wr.wr.atomic.remote_addr = wr->wr.atomic.remote_addr;
		w->wr.wr.atomic.compare_add = wr->wr.atomic.compare_add;
		w->wr.wr.atomic.swap = wr->wr.atomic.swap;
		w->wr.wr.atomic.rkey = wr->wr.atomic.rkey;
		w->iova = wr->wr.atomic.remote_addr;
	} else if (wr->opcode != IBV_WR_SEND && wr->opcode != IBV_WR_SEND_WITH_IMM) {
		w->wr.wr.rdma.remote_addr = wr->wr.rdma.remote_addr;
		w->wr.wr.rdma.rkey = wr->wr.rdma.rkey;
		w->iova = wr->wr.rdma.remote_addr;
	}
	if (wr->send_flags & IBV_SEND_INLINE) {
		for (int i = 0; i < wr->num_sge; i++) {
			uint32_t n = wr->sg_list[i].length;

			if (n > q->cap.max_inline_data - len || n > room - len)
				return EINVAL;
			memcpy(w->dma.inline_data + len, (void *)(uintptr_t)wr->sg_list[i].addr, n);
			len += n;
		}
		w->dma.num_sge = (uint32_t)wr->num_sge;
	} else {
		if ((uint32_t)wr->num_sge > q->cap.max_send_sge ||
		    (size_t)wr->num_sge * sizeof(struct rxe_sge) > room)
			return EINVAL;
		len = sge_put(&w->dma, wr->sg_list, wr->num_sge);
	}
	w->dma.length = len;
	w->dma.resid = len;
	return 0;
}

/* One uverbs command through the ioctl interface: the kernel refuses
 * write() commands on a device fd from any process but its opener (the
 * router), ioctl() it allows. Returns 0 or an errno. */
static int invoke(struct ffs_vctx *x, uint32_t command, const void *in, uint16_t inlen, void *out,
		  uint16_t outlen)
{
	struct {
		struct ib_uverbs_ioctl_hdr h;
		struct ib_uverbs_attr a[3];
	} c;
	int n = 0;

	memset(&c, 0, sizeof(c));
	c.h.object_id = UVERBS_OBJECT_DEVICE;
	c.h.method_id = UVERBS_METHOD_INVOKE_WRITE;
	c.h.driver_id = RDMA_DRIVER_RXE;
	c.a[n].attr_id = UVERBS_ATTR_WRITE_CMD;
	c.a[n].len = sizeof(uint64_t);
	c.a[n].flags = UVERBS_ATTR_F_MANDATORY;
	c.a[n++].data = command;
	c.a[n].attr_id = UVERBS_ATTR_CORE_IN;
	c.a[n].len = inlen;
	c.a[n].flags = UVERBS_ATTR_F_MANDATORY;
	if (inlen <= sizeof(c.a[n].data)) /* small inputs travel inline */
		memcpy(&c.a[n++].data, in, inlen);
	else
		c.a[n++].data = (uintptr_t)in;
	if (outlen) {
		c.a[n].attr_id = UVERBS_ATTR_CORE_OUT;
		c.a[n].len = outlen;
		c.a[n].flags = UVERBS_ATTR_F_MANDATORY;
		c.a[n++].data = (uintptr_t)out;
	}
	c.h.num_attrs = (uint16_t)n;
	c.h.length = (uint16_t)(sizeof(c.h) + (size_t)n * sizeof(c.a[0]));
	return syscall(SYS_ioctl, x->ufd, RDMA_VERBS_IOCTL, &c) ? errno : 0;
}

/* An empty POST_SEND: the kernel's requester takes what is queued. */
static int ring_device(struct ffs_vctx *x, uint32_t qp_handle)
{
	struct ib_uverbs_post_send c = {0};
	struct ib_uverbs_post_send_resp resp = {0};

	c.qp_handle = qp_handle;
	c.wqe_size = sizeof(struct ib_uverbs_send_wr);
	return invoke(x, IB_USER_VERBS_CMD_POST_SEND, &c, sizeof(c), &resp, sizeof(resp));
}

int ffs_dpost_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	struct ffs_vqp *q = to_vqp(qp);
	int posted = 0, err = 0;

	if (qp->state < IBV_QPS_RTS) {
		*bad = wr;
		return EINVAL;
	}
	pthread_spin_lock(&q->sq_lock);
	for (; wr; wr = wr->next) {
		int64_t idx = prod_next(&q->dsq);

		if (idx < 0) {
			err = ENOMEM;
			break;
		}
		err = dwqe_fill(q, slot(&q->dsq, (uint32_t)idx), wr);
		if (err)
			break;
		prod_publish(&q->dsq, (uint32_t)idx);
		posted++;
	}
	pthread_spin_unlock(&q->sq_lock);
	if (posted) {
		int e = ring_device(to_vctx(qp->context), q->dh);

		if (!err)
			err = e;
	}
	if (err)
		*bad = wr;
	return err;
}

/* ---- receives ---- */

/* Queues receive requests on a device receive queue (a QP's or an SRQ's).
 * 0, or a positive errno with *bad set. Lock held. */
static int rq_put(struct ffs_dq *q, uint32_t max_sge, struct ibv_recv_wr *wr,
		  struct ibv_recv_wr **bad)
{
	int err = 0;

	for (; wr; wr = wr->next) {
		int64_t idx = prod_next(q);
		struct rxe_recv_wqe *w;

		if (idx < 0) {
			err = ENOMEM;
			break;
		}
		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > max_sge ||
		    sizeof(*w) + (size_t)wr->num_sge * sizeof(struct rxe_sge) > slot_size(q)) {
			err = EINVAL;
			break;
		}
		w = slot(q, (uint32_t)idx);
		memset(w, 0, sizeof(*w));
		w->wr_id = wr->wr_id;
		w->dma.length = w->dma.resid = sge_put(&w->dma, wr->sg_list, wr->num_sge);
		prod_publish(q, (uint32_t)idx);
	}
	if (err)
		*bad = wr;
	return err;
}

int ffs_dpost_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct ffs_vqp *q = to_vqp(qp);
	int err;

	if (qp->srq || !q->drq.b) {
		*bad = wr;
		return EINVAL;
	}
	pthread_spin_lock(&q->rq_lock);
	err = rq_put(&q->drq, q->cap.max_recv_sge, wr, bad);
	pthread_spin_unlock(&q->rq_lock);
	return err;
}

int ffs_dpost_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct ffs_vsrq *s = to_vsrq(srq);
	int err;

	pthread_spin_lock(&s->lock);
	err = rq_put(&s->dq, s->max_sge, wr, bad);
	pthread_spin_unlock(&s->lock);
	return err;
}

/* ---- completions ---- */

int ffs_dpoll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	struct ffs_vcq *q = to_vcq(cq);
	struct ffs_dq *d = &q->dq;
	int k = 0;

	pthread_spin_lock(&q->lock);
	for (; k < n; k++) {
		uint32_t cons = __atomic_load_n(&d->b->consumer_index, __ATOMIC_RELAXED);
		uint32_t prod = __atomic_load_n(&d->b->producer_index, __ATOMIC_ACQUIRE);
		const struct ib_uverbs_wc *e;

		if (((prod - cons) & d->mask) == 0)
			break;
		e = slot(d, cons);
		wc[k].wr_id = e->wr_id;
		wc[k].status = e->status;
		wc[k].opcode = e->opcode;
		wc[k].vendor_err = e->vendor_err;
		wc[k].byte_len = e->byte_len;
		wc[k].imm_data = e->ex.imm_data;
		wc[k].qp_num = e->qp_num;
		wc[k].src_qp = e->src_qp;
		wc[k].wc_flags = e->wc_flags;
		wc[k].pkey_index = e->pkey_index;
		wc[k].slid = e->slid;
		wc[k].sl = e->sl;
		wc[k].dlid_path_bits = e->dlid_path_bits;
		__atomic_store_n(&d->b->consumer_index, (cons + 1) & d->mask, __ATOMIC_RELEASE);
	}
	pthread_spin_unlock(&q->lock);
	return k;
}

int ffs_dreq_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	struct ib_uverbs_req_notify_cq c = {
	    .cq_handle = to_vcq(cq)->dh,
	    .solicited_only = !!solicited_only,
	};

	return invoke(to_vctx(cq->context), IB_USER_VERBS_CMD_REQ_NOTIFY_CQ, &c, sizeof(c), NULL,
		      0);
}
