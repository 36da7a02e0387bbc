/* The fake RDMA device (fake-ibv.h): device-level calls that describe one
 * device, and object calls that keep what the router asked for, refuse
 * what a real device refuses (destroying what something still uses, QP
 * state changes without the attributes they need) and log every destroy.
 * Invariant: an object is on the live list exactly from its successful
 * create to its successful destroy, and its users count is the number of
 * live objects whose held[] names it. */
#include "fake-ibv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define LOG_MAX 4096
#define FIRST_QPN 0x11
#define FIRST_KEY 0x100

struct fake_ctx {
	struct ibv_context ctx; /* async_fd: an eventfd, one count per queued event */
	struct fake_obj o;
	struct ibv_async_event ev[FAKE_MAX_EVENTS];
	unsigned int nev;
};

struct fail {
	bool armed;
	int err;
	unsigned int skip;
};

static struct ibv_device dev = {.name = FAKE_IBV_NAME};
static struct ibv_device *list[] = {&dev, NULL};

static struct fake_obj *live_head;
static int live[FAKE_NKINDS];
static unsigned int calls[FAKE_NOPS];
static struct fail fails[FAKE_NOPS];
static unsigned int misuse;
static struct fake_logent log_ents[LOG_MAX];
static unsigned int nlog;
static uint32_t next_id = 1, next_qpn = FIRST_QPN, next_key = FIRST_KEY;

/* ---- bookkeeping ---- */

/* Counts a call of op; 0, or the errno an injected failure asks for. */
static int enter(enum fake_op op)
{
	struct fail *f = &fails[op];

	calls[op]++;
	if (!f->armed)
		return 0;
	if (f->skip) {
		f->skip--;
		return 0;
	}
	f->armed = false;
	return f->err;
}

/* NULL with errno set when op is to fail. */
static void *enter_alloc(enum fake_op op, size_t size)
{
	int err = enter(op);
	void *p;

	if (err) {
		errno = err;
		return NULL;
	}
	p = calloc(1, size);
	if (!p)
		errno = ENOMEM;
	return p;
}

/* o is in the allocation mem (its verbs struct comes first). */
static void obj_add(void *mem, struct fake_obj *o, enum fake_kind kind, struct fake_obj *h0,
		    struct fake_obj *h1, struct fake_obj *h2, struct fake_obj *h3,
		    struct fake_obj *h4)
{
	struct fake_obj *h[FAKE_MAX_HELD] = {h0, h1, h2, h3, h4};

	o->mem = mem;
	o->kind = kind;
	o->id = next_id++;
	for (int i = 0; i < FAKE_MAX_HELD; i++) {
		o->held[i] = h[i];
		if (h[i])
			h[i]->users++;
	}
	o->next = live_head;
	if (live_head)
		live_head->prev = o;
	live_head = o;
	live[kind]++;
}

/* EBUSY (a misuse) while another live object uses o; else logs it and
 * takes it off the live list. */
static int obj_del(struct fake_obj *o)
{
	struct fake_logent *e = nlog < LOG_MAX ? &log_ents[nlog] : NULL;

	if (o->users) {
		misuse++;
		return EBUSY;
	}
	if (e) {
		e->kind = o->kind;
		e->id = o->id;
		nlog++;
	}
	for (int i = 0; i < FAKE_MAX_HELD; i++) {
		if (e)
			e->held[i] = o->held[i] ? o->held[i]->id : 0;
		if (o->held[i])
			o->held[i]->users--;
	}
	if (o->prev)
		o->prev->next = o->next;
	else
		live_head = o->next;
	if (o->next)
		o->next->prev = o->prev;
	live[o->kind]--;
	return 0;
}

static struct fake_ctx *to_ctx(struct ibv_context *c)
{
	return (struct fake_ctx *)c;
}

static struct fake_obj *obj_of_pd(struct ibv_pd *pd)
{
	return pd ? &((struct fake_pd *)pd)->o : NULL;
}

static struct fake_obj *obj_of_cq(struct ibv_cq *cq)
{
	return cq ? &((struct fake_cq *)cq)->o : NULL;
}

static void efd_add(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		abort();
}

static void efd_take(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		abort();
}

/* ---- the device ---- */

static struct ibv_device **get_device_list(int *num)
{
	if (num)
		*num = 1;
	return list;
}

static void free_device_list(struct ibv_device **l)
{
}

static const char *get_device_name(struct ibv_device *d)
{
	return d->name;
}

static int query_device(struct ibv_context *ctx, struct ibv_device_attr *a)
{
	memset(a, 0, sizeof(*a));
	strcpy(a->fw_ver, "fake");
	a->vendor_id = 0x1234;
	a->phys_port_cnt = 1;
	a->max_qp = a->max_cq = a->max_mr = a->max_pd = a->max_srq = 1024;
	a->max_qp_wr = a->max_srq_wr = a->max_cqe = 4096;
	a->max_sge = a->max_srq_sge = 16;
	a->max_qp_rd_atom = a->max_qp_init_rd_atom = 16;
	return 0;
}

static int query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *p)
{
	memset(p, 0, sizeof(*p));
	if (port != 1)
		return EINVAL;
	p->state = IBV_PORT_ACTIVE;
	p->max_mtu = p->active_mtu = IBV_MTU_1024;
	p->gid_tbl_len = 2;
	p->pkey_tbl_len = 1;
	p->link_layer = IBV_LINK_LAYER_ETHERNET;
	return 0;
}

static int query_gid_ex(struct ibv_context *ctx, uint32_t port, uint32_t index,
			struct ibv_gid_entry *e, uint32_t flags, size_t size)
{
	static const uint8_t ip[4] = FAKE_IBV_IP;

	if (port != 1 || index > 1)
		return EINVAL;
	memset(e, 0, sizeof(*e));
	e->gid_index = index;
	e->port_num = port;
	e->gid_type = IBV_GID_TYPE_ROCE_V2;
	if (index == 0) {
		e->gid.raw[0] = 0xfe;
		e->gid.raw[1] = 0x80;
		e->gid.raw[15] = 1;
	} else {
		e->gid.raw[10] = e->gid.raw[11] = 0xff;
		memcpy(e->gid.raw + 12, ip, 4);
	}
	return 0;
}

/* ---- the data path (verbs.h inlines reach these through ctx->ops) ---- */

static int poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	struct fake_cq *f = (struct fake_cq *)cq;
	int err = enter(FAKE_POLL_CQ), k = 0;

	if (err)
		return -err;
	while (k < n && (unsigned int)k < f->nwc) {
		wc[k] = f->wc[k];
		k++;
	}
	memmove(f->wc, f->wc + k, (f->nwc - (unsigned int)k) * sizeof(f->wc[0]));
	f->nwc -= (unsigned int)k;
	return k;
}

static int req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	int err = enter(FAKE_REQ_NOTIFY_CQ);

	if (!err)
		((struct fake_cq *)cq)->armed = true;
	return err;
}

/* Counts the work requests of a post into *count. */
#define POST(name, op, obj_t, wr_t, fake_t, count)                                                 \
	static int name(obj_t *obj, wr_t *wr, wr_t **bad)                                          \
	{                                                                                          \
		int err = enter(op);                                                               \
                                                                                                   \
		if (err) {                                                                         \
			*bad = wr;                                                                 \
			return err;                                                                \
		}                                                                                  \
		for (; wr; wr = wr->next)                                                          \
			((fake_t *)obj)->count++;                                                  \
		return 0;                                                                          \
	}
POST(count_send, FAKE_POST_SEND, struct ibv_qp, struct ibv_send_wr, struct fake_qp, sends)
POST(count_recv, FAKE_POST_RECV, struct ibv_qp, struct ibv_recv_wr, struct fake_qp, recvs)
POST(post_srq_recv, FAKE_POST_SRQ_RECV, struct ibv_srq, struct ibv_recv_wr, struct fake_srq, recvs)
#undef POST

/* Keeps what fake_ibv_wire needs of each work request; a full queue is
 * ENOMEM, as a device's would be. */
static int keep_wr(struct fake_wr *q, unsigned int *n, uint64_t wr_id, const struct ibv_sge *sg,
		   int nsge, unsigned int flags)
{
	if (*n == FAKE_MAX_WR)
		return ENOMEM;
	q[*n].wr_id = wr_id;
	q[*n].addr = nsge ? sg->addr : 0;
	q[*n].len = nsge ? sg->length : 0;
	q[*n].flags = flags;
	(*n)++;
	return 0;
}

static int post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	int err = count_send(qp, wr, bad);

	for (; !err && wr; wr = wr->next)
		if ((err = keep_wr(q->sq, &q->nsq, wr->wr_id, wr->sg_list, wr->num_sge,
				   wr->send_flags)))
			*bad = wr;
	return err;
}

static int post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	int err = count_recv(qp, wr, bad);

	for (; !err && wr; wr = wr->next)
		if ((err = keep_wr(q->rq, &q->nrq, wr->wr_id, wr->sg_list, wr->num_sge, 0)))
			*bad = wr;
	return err;
}

/* ---- contexts ---- */

static struct ibv_context *open_device(struct ibv_device *d)
{
	struct fake_ctx *c = enter_alloc(FAKE_OPEN_DEVICE, sizeof(*c));

	if (!c)
		return NULL;
	c->ctx.device = d;
	c->ctx.cmd_fd = -1;
	c->ctx.async_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	if (c->ctx.async_fd < 0) {
		free(c);
		return NULL;
	}
	c->ctx.ops.poll_cq = poll_cq;
	c->ctx.ops.req_notify_cq = req_notify_cq;
	c->ctx.ops.post_send = post_send;
	c->ctx.ops.post_recv = post_recv;
	c->ctx.ops.post_srq_recv = post_srq_recv;
	obj_add(c, &c->o, FAKE_CTX, NULL, NULL, NULL, NULL, NULL);
	return &c->ctx;
}

static int close_device(struct ibv_context *ctx)
{
	struct fake_ctx *c = to_ctx(ctx);
	int err = enter(FAKE_CLOSE_DEVICE);

	if (!err)
		err = obj_del(&c->o);
	if (err)
		return err;
	close(c->ctx.async_fd);
	free(c);
	return 0;
}

static int get_async_event(struct ibv_context *ctx, struct ibv_async_event *ev)
{
	struct fake_ctx *c = to_ctx(ctx);

	if (!c->nev) {
		errno = EAGAIN;
		return -1;
	}
	*ev = c->ev[0];
	memmove(c->ev, c->ev + 1, --c->nev * sizeof(c->ev[0]));
	efd_take(ctx->async_fd);
	return 0;
}

static void ack_async_event(struct ibv_async_event *ev)
{
}

/* ---- PDs and MRs ---- */

static struct ibv_pd *alloc_pd(struct ibv_context *ctx)
{
	struct fake_pd *p = enter_alloc(FAKE_ALLOC_PD, sizeof(*p));

	if (!p)
		return NULL;
	p->pd.context = ctx;
	obj_add(p, &p->o, FAKE_PD, &to_ctx(ctx)->o, NULL, NULL, NULL, NULL);
	p->pd.handle = p->o.id;
	return &p->pd;
}

static int dealloc_pd(struct ibv_pd *pd)
{
	struct fake_pd *p = (struct fake_pd *)pd;
	int err = enter(FAKE_DEALLOC_PD);

	if (!err)
		err = obj_del(&p->o);
	if (!err)
		free(p);
	return err;
}

static struct ibv_mr *reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t len, uint64_t iova,
				   unsigned int access)
{
	struct fake_mr *m = enter_alloc(FAKE_REG_MR, sizeof(*m));

	if (!m)
		return NULL;
	m->mr.context = pd->context;
	m->mr.pd = pd;
	m->mr.addr = addr;
	m->mr.length = len;
	m->mr.lkey = next_key++;
	m->mr.rkey = next_key++;
	m->iova = iova;
	m->access = access;
	obj_add(m, &m->o, FAKE_MR, &to_ctx(pd->context)->o, obj_of_pd(pd), NULL, NULL, NULL);
	m->mr.handle = m->o.id;
	return &m->mr;
}

static int dereg_mr(struct ibv_mr *mr)
{
	struct fake_mr *m = (struct fake_mr *)mr;
	int err = enter(FAKE_DEREG_MR);

	if (!err)
		err = obj_del(&m->o);
	if (!err)
		free(m);
	return err;
}

/* ---- completion channels and CQs ---- */

static struct ibv_comp_channel *create_comp_channel(struct ibv_context *ctx)
{
	struct fake_chan *c = enter_alloc(FAKE_CREATE_CHAN, sizeof(*c));

	if (!c)
		return NULL;
	c->ch.context = ctx;
	c->ch.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	if (c->ch.fd < 0) {
		free(c);
		return NULL;
	}
	obj_add(c, &c->o, FAKE_CHAN, &to_ctx(ctx)->o, NULL, NULL, NULL, NULL);
	return &c->ch;
}

static int destroy_comp_channel(struct ibv_comp_channel *ch)
{
	struct fake_chan *c = (struct fake_chan *)ch;
	int err = enter(FAKE_DESTROY_CHAN);

	if (!err)
		err = obj_del(&c->o);
	if (err)
		return err;
	close(c->ch.fd);
	free(c);
	return 0;
}

static struct ibv_cq *create_cq(struct ibv_context *ctx, int cqe, void *cq_context,
				struct ibv_comp_channel *ch, int comp_vector)
{
	struct fake_cq *q = enter_alloc(FAKE_CREATE_CQ, sizeof(*q));

	if (!q)
		return NULL;
	q->cq.context = ctx;
	q->cq.channel = ch;
	q->cq.cq_context = cq_context;
	q->cq.cqe = cqe;
	obj_add(q, &q->o, FAKE_CQ, &to_ctx(ctx)->o, ch ? &((struct fake_chan *)ch)->o : NULL, NULL,
		NULL, NULL);
	q->cq.handle = q->o.id;
	return &q->cq;
}

/* Drops the events of cq still queued on its channel. */
static void chan_forget(struct fake_chan *c, struct ibv_cq *cq)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < c->nev; i++) {
		if (c->ev[i] == cq) {
			efd_take(c->ch.fd);
			continue;
		}
		c->ev[k++] = c->ev[i];
	}
	c->nev = k;
}

static int destroy_cq(struct ibv_cq *cq)
{
	struct fake_cq *q = (struct fake_cq *)cq;
	int err = enter(FAKE_DESTROY_CQ);

	if (!err)
		err = obj_del(&q->o);
	if (err)
		return err;
	if (q->events != q->acked) /* libibverbs would wait for the acks forever */
		misuse++;
	if (cq->channel)
		chan_forget((struct fake_chan *)cq->channel, cq);
	free(q);
	return 0;
}

static int get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **cq_context)
{
	struct fake_chan *c = (struct fake_chan *)ch;

	if (!c->nev) {
		errno = EAGAIN;
		return -1;
	}
	*cq = c->ev[0];
	memmove(c->ev, c->ev + 1, --c->nev * sizeof(c->ev[0]));
	efd_take(ch->fd);
	*cq_context = (*cq)->cq_context;
	((struct fake_cq *)*cq)->events++;
	return 0;
}

static void ack_cq_events(struct ibv_cq *cq, unsigned int n)
{
	((struct fake_cq *)cq)->acked += n;
}

/* ---- QPs ---- */

static struct ibv_qp *create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	struct fake_qp *q;

	if (!attr->send_cq || !attr->recv_cq) {
		calls[FAKE_CREATE_QP]++;
		errno = EINVAL;
		return NULL;
	}
	q = enter_alloc(FAKE_CREATE_QP, sizeof(*q));
	if (!q)
		return NULL;
	q->qp.context = pd->context;
	q->qp.qp_context = attr->qp_context;
	q->qp.pd = pd;
	q->qp.send_cq = attr->send_cq;
	q->qp.recv_cq = attr->recv_cq;
	q->qp.srq = attr->srq;
	q->qp.qp_type = attr->qp_type;
	q->qp.state = IBV_QPS_RESET;
	q->qp.qp_num = next_qpn++;
	q->init = *attr;
	obj_add(q, &q->o, FAKE_QP, &to_ctx(pd->context)->o, obj_of_pd(pd), obj_of_cq(attr->send_cq),
		obj_of_cq(attr->recv_cq), attr->srq ? &((struct fake_srq *)attr->srq)->o : NULL);
	q->qp.handle = q->o.id;
	return &q->qp;
}

/* The attributes a state change needs (IB spec, "QP state transitions");
 * -1: not a transition a QP can make. */
static int needed_mask(enum ibv_qp_type t, enum ibv_qp_state from, enum ibv_qp_state to)
{
	if (to == IBV_QPS_RESET || to == IBV_QPS_ERR)
		return 0;
	if (from == IBV_QPS_RESET && to == IBV_QPS_INIT)
		return IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
	if (from == IBV_QPS_INIT && to == IBV_QPS_INIT)
		return 0;
	if (from == IBV_QPS_INIT && to == IBV_QPS_RTR)
		return IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
		       (t == IBV_QPT_RC ? IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER : 0);
	if (from == IBV_QPS_RTR && to == IBV_QPS_RTS)
		return IBV_QP_SQ_PSN |
		       (t == IBV_QPT_RC ? IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
						  IBV_QP_MAX_QP_RD_ATOMIC
					: 0);
	if ((from == IBV_QPS_RTS || from == IBV_QPS_SQD) && (to == IBV_QPS_RTS || to == IBV_QPS_SQD))
		return 0;
	return -1;
}

static void qp_attr_set(struct ibv_qp_attr *d, const struct ibv_qp_attr *s, int mask)
{
#define SET(bit, field)                                                                            \
	do {                                                                                       \
		if (mask & (bit))                                                                  \
			d->field = s->field;                                                       \
	} while (0)
	SET(IBV_QP_STATE, qp_state);
	SET(IBV_QP_CUR_STATE, cur_qp_state);
	SET(IBV_QP_EN_SQD_ASYNC_NOTIFY, en_sqd_async_notify);
	SET(IBV_QP_ACCESS_FLAGS, qp_access_flags);
	SET(IBV_QP_PKEY_INDEX, pkey_index);
	SET(IBV_QP_PORT, port_num);
	SET(IBV_QP_QKEY, qkey);
	SET(IBV_QP_AV, ah_attr);
	SET(IBV_QP_PATH_MTU, path_mtu);
	SET(IBV_QP_TIMEOUT, timeout);
	SET(IBV_QP_RETRY_CNT, retry_cnt);
	SET(IBV_QP_RNR_RETRY, rnr_retry);
	SET(IBV_QP_RQ_PSN, rq_psn);
	SET(IBV_QP_MAX_QP_RD_ATOMIC, max_rd_atomic);
	SET(IBV_QP_ALT_PATH, alt_ah_attr);
	SET(IBV_QP_MIN_RNR_TIMER, min_rnr_timer);
	SET(IBV_QP_SQ_PSN, sq_psn);
	SET(IBV_QP_MAX_DEST_RD_ATOMIC, max_dest_rd_atomic);
	SET(IBV_QP_PATH_MIG_STATE, path_mig_state);
	SET(IBV_QP_CAP, cap);
	SET(IBV_QP_DEST_QPN, dest_qp_num);
#undef SET
}

static int modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	enum ibv_qp_state to = mask & IBV_QP_STATE ? attr->qp_state : qp->state;
	int err = enter(FAKE_MODIFY_QP), need;

	if (err)
		return err;
	need = needed_mask(qp->qp_type, qp->state, to);
	if (to == qp->state && !(mask & IBV_QP_STATE))
		need = 0;
	if (need < 0 || (mask & need) != need)
		return EINVAL;
	/* RoCE: a global route from this port's GID table */
	if ((mask & IBV_QP_AV) && (!attr->ah_attr.is_global || attr->ah_attr.port_num != 1 ||
				   attr->ah_attr.grh.sgid_index > FAKE_IBV_GID_INDEX))
		return EINVAL;
	if ((mask & IBV_QP_PORT) && attr->port_num != 1)
		return EINVAL;
	qp_attr_set(&q->attr, attr, mask);
	q->mask |= mask;
	q->modifies++;
	qp->state = to;
	return 0;
}

static int query_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask,
		    struct ibv_qp_init_attr *init)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	int err = enter(FAKE_QUERY_QP);

	if (err)
		return err;
	*attr = q->attr;
	attr->qp_state = qp->state;
	*init = q->init;
	return 0;
}

static int destroy_qp(struct ibv_qp *qp)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	int err = enter(FAKE_DESTROY_QP);

	if (!err)
		err = obj_del(&q->o);
	if (!err)
		free(q);
	return err;
}

/* ---- SRQs ---- */

static struct ibv_srq *create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *attr)
{
	struct fake_srq *s = enter_alloc(FAKE_CREATE_SRQ, sizeof(*s));

	if (!s)
		return NULL;
	s->srq.context = pd->context;
	s->srq.srq_context = attr->srq_context;
	s->srq.pd = pd;
	s->attr = attr->attr;
	obj_add(s, &s->o, FAKE_SRQ, &to_ctx(pd->context)->o, obj_of_pd(pd), NULL, NULL, NULL);
	s->srq.handle = s->o.id;
	return &s->srq;
}

static int modify_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr, int mask)
{
	struct fake_srq *s = (struct fake_srq *)srq;
	int err = enter(FAKE_MODIFY_SRQ);

	if (err)
		return err;
	if (mask & ~(IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT))
		return EINVAL;
	if (mask & IBV_SRQ_MAX_WR)
		s->attr.max_wr = attr->max_wr;
	if (mask & IBV_SRQ_LIMIT)
		s->attr.srq_limit = attr->srq_limit;
	return 0;
}

static int query_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr)
{
	int err = enter(FAKE_QUERY_SRQ);

	if (!err)
		*attr = ((struct fake_srq *)srq)->attr;
	return err;
}

static int destroy_srq(struct ibv_srq *srq)
{
	struct fake_srq *s = (struct fake_srq *)srq;
	int err = enter(FAKE_DESTROY_SRQ);

	if (!err)
		err = obj_del(&s->o);
	if (!err)
		free(s);
	return err;
}

const struct ffr_ibv fake_ibv = {
	.get_device_list = get_device_list,
	.free_device_list = free_device_list,
	.get_device_name = get_device_name,
	.open_device = open_device,
	.close_device = close_device,
	.query_device = query_device,
	.query_port = query_port,
	.query_gid_ex = query_gid_ex,
	.alloc_pd = alloc_pd,
	.dealloc_pd = dealloc_pd,
	.reg_mr_iova2 = reg_mr_iova2,
	.dereg_mr = dereg_mr,
	.create_comp_channel = create_comp_channel,
	.destroy_comp_channel = destroy_comp_channel,
	.create_cq = create_cq,
	.destroy_cq = destroy_cq,
	.get_cq_event = get_cq_event,
	.ack_cq_events = ack_cq_events,
	.create_qp = create_qp,
	.modify_qp = modify_qp,
	.query_qp = query_qp,
	.destroy_qp = destroy_qp,
	.create_srq = create_srq,
	.modify_srq = modify_srq,
	.query_srq = query_srq,
	.destroy_srq = destroy_srq,
	.get_async_event = get_async_event,
	.ack_async_event = ack_async_event,
};

/* ---- what tests see ---- */

void fake_ibv_reset(void)
{
	memset(calls, 0, sizeof(calls));
	memset(fails, 0, sizeof(fails));
	misuse = 0;
	nlog = 0;
}

void fake_ibv_clear(void)
{
	struct fake_obj *o;

	while ((o = live_head)) {
		live_head = o->next;
		if (o->kind == FAKE_CTX)
			close(FAKE_OF(fake_ctx, o)->ctx.async_fd);
		if (o->kind == FAKE_CHAN)
			close(FAKE_OF(fake_chan, o)->ch.fd);
		free(o->mem);
	}
	memset(live, 0, sizeof(live));
}

int fake_ibv_live(enum fake_kind k)
{
	return live[k];
}

int fake_ibv_live_objs(void)
{
	int n = 0;

	for (int k = FAKE_CTX + 1; k < FAKE_NKINDS; k++)
		n += live[k];
	return n;
}

unsigned int fake_ibv_calls(enum fake_op op)
{
	return calls[op];
}

void fake_ibv_fail(enum fake_op op, int err, unsigned int skip)
{
	fails[op] = (struct fail){.armed = true, .err = err, .skip = skip};
}

unsigned int fake_ibv_misuse(void)
{
	return misuse;
}

const struct fake_logent *fake_ibv_log(unsigned int *n)
{
	*n = nlog;
	return log_ents;
}

int fake_ibv_log_pos(uint32_t id)
{
	for (unsigned int i = 0; i < nlog; i++)
		if (log_ents[i].id == id)
			return (int)i;
	return -1;
}

bool fake_ibv_log_before(uint32_t a, uint32_t b)
{
	int pa = fake_ibv_log_pos(a), pb = fake_ibv_log_pos(b);

	return pa >= 0 && pb >= 0 && pa < pb;
}

struct fake_qp *fake_ibv_qp(uint32_t qpn)
{
	for (struct fake_obj *o = live_head; o; o = o->next)
		if (o->kind == FAKE_QP && FAKE_OF(fake_qp, o)->qp.qp_num == qpn)
			return FAKE_OF(fake_qp, o);
	return NULL;
}

struct fake_mr *fake_ibv_mr(uint32_t lkey)
{
	for (struct fake_obj *o = live_head; o; o = o->next)
		if (o->kind == FAKE_MR && FAKE_OF(fake_mr, o)->mr.lkey == lkey)
			return FAKE_OF(fake_mr, o);
	return NULL;
}

struct fake_obj *fake_ibv_last(enum fake_kind k)
{
	for (struct fake_obj *o = live_head; o; o = o->next)
		if (o->kind == k)
			return o;
	return NULL;
}

int fake_ibv_qp_event(uint32_t qpn, enum ibv_event_type type)
{
	struct fake_qp *q = fake_ibv_qp(qpn);
	struct fake_ctx *c;

	if (!q)
		return -ENOENT;
	c = to_ctx(q->qp.context);
	if (c->nev == FAKE_MAX_EVENTS)
		return -ENOSPC;
	c->ev[c->nev].event_type = type;
	c->ev[c->nev].element.qp = &q->qp;
	c->nev++;
	efd_add(c->ctx.async_fd);
	return 0;
}

int fake_ibv_wire(struct fake_qp *from, struct fake_qp *to)
{
	int n = 0;

	while (from->nsq && to->nrq) {
		struct fake_wr s = from->sq[0], r = to->rq[0];
		struct ibv_wc rw = {.wr_id = r.wr_id, .opcode = IBV_WC_RECV, .qp_num = to->qp.qp_num};
		struct ibv_wc sw = {.wr_id = s.wr_id, .opcode = IBV_WC_SEND, .qp_num = from->qp.qp_num};

		memmove(from->sq, from->sq + 1, --from->nsq * sizeof(s));
		memmove(to->rq, to->rq + 1, --to->nrq * sizeof(r));
		if (s.len > r.len) {
			rw.status = IBV_WC_LOC_LEN_ERR;
			sw.status = IBV_WC_REM_INV_REQ_ERR;
		} else {
			memcpy((void *)(uintptr_t)r.addr, (const void *)(uintptr_t)s.addr, s.len);
			rw.byte_len = s.len;
		}
		fake_ibv_cq_push((struct fake_cq *)to->qp.recv_cq, &rw);
		if (s.flags & IBV_SEND_SIGNALED || sw.status)
			fake_ibv_cq_push((struct fake_cq *)from->qp.send_cq, &sw);
		n++;
	}
	return n;
}

int fake_ibv_cq_push(struct fake_cq *cq, const struct ibv_wc *wc)
{
	struct fake_chan *c = (struct fake_chan *)cq->cq.channel;

	if (cq->nwc == FAKE_MAX_WC)
		return -ENOSPC;
	cq->wc[cq->nwc++] = *wc;
	if (!cq->armed || !c)
		return 0;
	if (c->nev == FAKE_MAX_EVENTS)
		return -ENOSPC;
	cq->armed = false;
	c->ev[c->nev++] = &cq->cq;
	efd_add(c->ch.fd);
	return 0;
}
