/* Verbs contexts: one per ibv_open_device in an app. A context is a
 * SOCK_SEQPACKET socket to the shim (requests and replies), a doorbell
 * eventfd, an async-event socket, the router's own ibv_context on the
 * device with one completion channel, and a table of the objects created
 * through it.
 * Invariants: a handle names an object of this context only (index plus
 * generation); every object is charged to the context and its container
 * before it exists and uncharged when it goes; closing the socket (the app
 * exited or closed the device) destroys everything, in dependency order;
 * requests are answered in order: while one waits for another router
 * (x->ask), the socket is not read. */
#include "internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define IDX_BITS 20
#define IDX_MASK ((1u << IDX_BITS) - 1)
#define GEN_MASK 0xfffu
#define VCTX_BATCH 32
#define VCTX_MAX_BAD 16
#define VCTX_MSG_MAX 8192
#define VCTX_MAX_FDS 2

/* ---- quotas ---- */

static uint32_t *use_of(struct ffr_rdma_use *u, uint32_t kind)
{
	switch (kind) {
	case FF_VOBJ_PD:
		return &u->pds;
	case FF_VOBJ_MR:
		return &u->mrs;
	case FF_VOBJ_CQ:
		return &u->cqs;
	case FF_VOBJ_QP:
		return &u->qps;
	case FF_VOBJ_SRQ:
		return &u->srqs;
	case FF_VOBJ_CHANNEL:
		return &u->chans;
	default:
		return &u->mems;
	}
}

static uint32_t quota_of(const struct ffr_rdma_quota *q, uint32_t kind)
{
	const uint32_t v[] = {[FFR_VMEM_KIND] = q->mems, [FF_VOBJ_PD] = q->pds,
			      [FF_VOBJ_MR] = q->mrs,	  [FF_VOBJ_CQ] = q->cqs,
			      [FF_VOBJ_QP] = q->qps,	  [FF_VOBJ_SRQ] = q->srqs,
			      [FF_VOBJ_CHANNEL] = q->chans};

	return kind < sizeof(v) / sizeof(v[0]) ? v[kind] : 0;
}

/* A context whose container was unregistered keeps what it has. */
int ffr_vcharge(struct ffr_vctx *x, uint32_t kind, int n)
{
	struct ffr_rdma_use *u = ffr_rdma_use(x->rd, x->c);
	uint32_t *cu;

	if (!u)
		return -ENOENT;
	cu = use_of(u, kind);
	if (*cu + (uint32_t)n > quota_of(&x->rd->quota, kind))
		return -ENOBUFS;
	*cu += (uint32_t)n;
	*use_of(&x->use, kind) += (uint32_t)n;
	return 0;
}

void ffr_vuncharge(struct ffr_vctx *x, uint32_t kind, int n)
{
	struct ffr_rdma_use *u = ffr_rdma_use(x->rd, x->c);

	if (u)
		*use_of(u, kind) -= (uint32_t)n;
	*use_of(&x->use, kind) -= (uint32_t)n;
}

/* ---- handle tables ---- */

static int htab_grow(struct ffr_htab *t)
{
	uint32_t cap = t->cap ? t->cap * 2 : 64;
	void **v;
	uint16_t *gen;

	if (cap > IDX_MASK + 1)
		return -ENOBUFS;
	v = realloc(t->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->v = v;
	gen = realloc(t->gen, cap * sizeof(*gen));
	if (!gen)
		return -ENOMEM;
	t->gen = gen;
	memset(v + t->cap, 0, (cap - t->cap) * sizeof(*v));
	memset(gen + t->cap, 0, (cap - t->cap) * sizeof(*gen));
	t->cap = cap;
	return 0;
}

int ffr_htab_add(struct ffr_htab *t, void *p, uint32_t *handle)
{
	uint32_t i;
	int err;

	for (;;) {
		for (i = t->hint ? t->hint : 1; i < t->cap && t->v[i]; i++)
			;
		if (i < t->cap)
			break;
		if (t->hint > 1) {
			t->hint = 1;
			continue;
		}
		err = htab_grow(t);
		if (err)
			return err;
	}
	t->gen[i] = (uint16_t)((t->gen[i] + 1) & GEN_MASK);
	t->v[i] = p;
	t->hint = i + 1;
	*handle = i | (uint32_t)t->gen[i] << IDX_BITS;
	return 0;
}

void ffr_htab_del(struct ffr_htab *t, uint32_t handle, const void *p)
{
	uint32_t i = handle & IDX_MASK;

	if (i < t->cap && t->v[i] == p)
		t->v[i] = NULL;
}

void *ffr_htab_get(const struct ffr_htab *t, uint32_t handle)
{
	uint32_t i = handle & IDX_MASK;

	if (i == 0 || i >= t->cap || t->gen[i] != handle >> IDX_BITS)
		return NULL;
	return t->v[i];
}

void ffr_htab_free(struct ffr_htab *t)
{
	free(t->v);
	free(t->gen);
	memset(t, 0, sizeof(*t));
}

int ffr_vobj_add(struct ffr_vctx *x, struct ffr_vobj *o, uint32_t kind)
{
	int err = ffr_htab_add(&x->objtab, o, &o->handle);

	if (err)
		return err;
	o->kind = kind;
	o->x = x;
	TAILQ_INSERT_TAIL(&x->objs[kind], o, link);
	return 0;
}

void ffr_vobj_del(struct ffr_vobj *o)
{
	if (!o->x)
		return;
	TAILQ_REMOVE(&o->x->objs[o->kind], o, link);
	ffr_htab_del(&o->x->objtab, o->handle, o);
	o->x = NULL;
}

void *ffr_vobj_get(struct ffr_vctx *x, uint32_t handle, uint32_t kind)
{
	struct ffr_vobj *o = ffr_htab_get(&x->objtab, handle);

	return o && o->kind == kind ? o : NULL;
}

/* ---- replies ---- */

int ffr_vreply(struct ffr_vctx *x, Ff__Reply *rep, const int *fds, int nfds)
{
	int err;

	if (x->dead)
		return -EPIPE;
	err = ff_msg_send(x->fd, &rep->base, fds, nfds);
	if (err) {
		ff_warn("verbs %s pid %d: reply failed (%s), closing the context", x->name,
			(int)x->pid, strerror(-err));
		x->dead = true;
	}
	return err;
}

void ffr_status_fill(struct ffr_status_reply *s, uint64_t id, int err, const char *who,
		     const char *fmt, va_list ap)
{
	ff__reply__init(&s->rep);
	ff__verbs_obj_reply__init(&s->ob);
	s->msg[0] = 0;
	if (fmt)
		vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
	if (err)
		ff_dbg("%s: %s", who, s->msg);
	s->rep.id = id;
	s->rep.status = ffr_errno_status(err);
	s->rep.error = s->msg;
	s->ob.err = (uint32_t)-err;
	s->rep.body_case = FF__REPLY__BODY_VERBS_OBJ;
	s->rep.verbs_obj = &s->ob;
}

int ffr_vreply_status(struct ffr_vctx *x, uint64_t id, int err, const char *fmt, ...)
{
	struct ffr_status_reply s;
	char who[FFR_NAME_MAX + 32];
	va_list ap;

	snprintf(who, sizeof(who), "verbs %s pid %d", x->name, (int)x->pid);
	va_start(ap, fmt);
	ffr_status_fill(&s, id, err, who, fmt, ap);
	va_end(ap);
	return ffr_vreply(x, &s.rep, NULL, 0);
}

/* ---- requests ---- */

static void op_ctx_init(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__VerbsObjReply ob = FF__VERBS_OBJ_REPLY__INIT;

	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_VERBS_OBJ;
	rep.verbs_obj = &ob;
	/* direct: the app's queues are in the device context, and it rings
	 * the device itself; ring: it rings the router */
	ob.direct = x->direct;
	ffr_vreply(x, &rep, x->direct ? &x->ctx->cmd_fd : &x->dbfd, 1);
}

struct vop {
	ffr_vhandler fn;
	int nfds; /* -1: the handler checks */
};

static const struct vop vops[] = {
	[FF__REQUEST__BODY_VERBS_CTX_INIT] = {op_ctx_init, 0},
	[FF__REQUEST__BODY_VERBS_ALLOC_PD] = {ffr_vop_alloc_pd, 0},
	[FF__REQUEST__BODY_VERBS_REG_MR] = {ffr_vop_reg_mr, 0},
	[FF__REQUEST__BODY_VERBS_MEM_ADD] = {ffr_vop_mem_add, -1},
	[FF__REQUEST__BODY_VERBS_CREATE_CQ] = {ffr_vop_create_cq, 0},
	[FF__REQUEST__BODY_VERBS_CREATE_CHANNEL] = {ffr_vop_create_channel, 0},
	[FF__REQUEST__BODY_VERBS_CREATE_QP] = {ffr_vop_create_qp, 0},
	[FF__REQUEST__BODY_VERBS_MODIFY_QP] = {ffr_vop_modify_qp, 0},
	[FF__REQUEST__BODY_VERBS_QUERY_QP] = {ffr_vop_query_qp, 0},
	[FF__REQUEST__BODY_VERBS_CREATE_SRQ] = {ffr_vop_create_srq, 0},
	[FF__REQUEST__BODY_VERBS_MODIFY_SRQ] = {ffr_vop_modify_srq, 0},
	[FF__REQUEST__BODY_VERBS_DESTROY] = {ffr_vop_destroy, 0},
};

static void bad_request(struct ffr_vctx *x, uint64_t id, const char *why)
{
	x->rd->r->bad_messages++;
	ffr_vreply_status(x, id, -EINVAL, "%s", why);
	if (++x->bad >= VCTX_MAX_BAD) {
		ff_warn("verbs %s pid %d: too many bad messages, closing the context", x->name,
			(int)x->pid);
		x->dead = true;
	}
}

static void vdispatch(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	unsigned k = (unsigned)req->body_case;
	const struct vop *op = k < sizeof(vops) / sizeof(vops[0]) ? &vops[k] : NULL;

	if (!op || !op->fn) {
		bad_request(x, req->id, "not a request for a verbs context");
		goto out_close;
	}
	if (op->nfds >= 0 && nfds != op->nfds) {
		bad_request(x, req->id, "wrong number of fds");
		goto out_close;
	}
	ff_dbg("verbs %s pid %d: request %u", x->name, (int)x->pid, k);
	op->fn(x, req, fds, nfds);
	return;
out_close:
	ff_close_fds(fds, nfds);
}

static void vctx_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_vctx *x = arg;
	uint8_t *buf = malloc(VCTX_MSG_MAX);

	for (int i = 0; buf && i < VCTX_BATCH && !x->dead; i++) {
		ProtobufCMessage *m = NULL;
		int fds[VCTX_MAX_FDS], nfds = 0;
		int r = ff_msg_recv(x->fd, &ff__request__descriptor, buf, VCTX_MSG_MAX, &m, fds,
				    VCTX_MAX_FDS, &nfds, MSG_DONTWAIT);

		if (r == -EAGAIN)
			break;
		if (r == 0 || r == -ECONNRESET || r == -ENOTCONN) {
			x->dead = true;
			break;
		}
		if (r < 0) {
			bad_request(x, 0, "malformed message");
			continue;
		}
		vdispatch(x, (Ff__Request *)m, fds, nfds);
		protobuf_c_message_free_unpacked(m, NULL);
		if (x->ask) { /* nothing more until the other router answered */
			event_del(x->ev);
			break;
		}
	}
	free(buf);
	if (x->dead)
		ffr_vctx_free(x);
}

void ffr_vctx_resume(struct ffr_vctx *x)
{
	if (x->dead || event_add(x->ev, NULL) < 0)
		ffr_vctx_free(x);
}

/* ---- async events ---- */

uint32_t ffr_vevent_kind(int type)
{
	switch (type) {
	case IBV_EVENT_QP_FATAL:
	case IBV_EVENT_QP_REQ_ERR:
	case IBV_EVENT_QP_ACCESS_ERR:
	case IBV_EVENT_COMM_EST:
	case IBV_EVENT_SQ_DRAINED:
	case IBV_EVENT_QP_LAST_WQE_REACHED:
		return FF_VOBJ_QP;
	case IBV_EVENT_CQ_ERR:
		return FF_VOBJ_CQ;
	case IBV_EVENT_SRQ_ERR:
	case IBV_EVENT_SRQ_LIMIT_REACHED:
		return FF_VOBJ_SRQ;
	default:
		return 0;
	}
}

void ffr_vasync_send(struct ffr_vctx *x, int type, uint64_t cookie)
{
	struct ff_vasync_event out = {
		.event_type = type, .kind = ffr_vevent_kind(type), .cookie = cookie};

	if (send(x->afd, &out, sizeof(out), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		ff_dbg("verbs %s: async event %d dropped", x->name, type);
}

/* The ring path's objects are libibverbs', their contexts the router's. */
static void vasync_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_vctx *x = arg;
	struct ibv_async_event ev;

	while (x->rd->ibv->get_async_event(x->ctx, &ev) == 0) {
		struct ffr_vqp *q;
		uint64_t cookie = 0;

		switch (ffr_vevent_kind(ev.event_type)) {
		case FF_VOBJ_QP:
			q = ev.element.qp ? ev.element.qp->qp_context : NULL;
			cookie = q ? q->cookie : 0;
			break;
		case FF_VOBJ_CQ:
			cookie = ((struct ffr_vcq *)ev.element.cq->cq_context)->cookie;
			break;
		case FF_VOBJ_SRQ:
			cookie = ((struct ffr_vsrq *)ev.element.srq->srq_context)->cookie;
			break;
		}
		x->rd->ibv->ack_async_event(&ev);
		ffr_vasync_send(x, ev.event_type, cookie);
	}
}

/* ---- life cycle ---- */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static int vctx_events(struct ffr_vctx *x)
{
	struct event_base *base = x->rd->r->base;

	x->ev = event_new(base, x->fd, EV_READ | EV_PERSIST, vctx_read_cb, x);
	x->dbev = event_new(base, x->dbfd, EV_READ | EV_PERSIST, ffr_ring_doorbell_cb, x);
	x->ccev = event_new(base, x->cc->fd, EV_READ | EV_PERSIST, ffr_ring_comp_event_cb, x);
	x->asev = event_new(base, x->ctx->async_fd, EV_READ | EV_PERSIST,
			    x->direct ? ffr_direct_async_cb : vasync_cb, x);
	if (!x->ev || !x->dbev || !x->ccev || !x->asev || event_add(x->ev, NULL) < 0 ||
	    event_add(x->dbev, NULL) < 0 || event_add(x->ccev, NULL) < 0 ||
	    event_add(x->asev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

static int vctx_open(struct ffr_vctx *x, int *shim_fd, int *async_fd)
{
	int sp[2], ap[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	x->fd = sp[0];
	*shim_fd = sp[1];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ap) < 0)
		return -errno;
	x->afd = ap[0];
	*async_fd = ap[1];
	/* the shim gets this very open file: EFD_NONBLOCK is the shim's to
	 * clear, so the doorbell is read with ffr_shared_read only */
	x->dbfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (x->dbfd < 0 || set_nonblock(x->fd) < 0 || set_nonblock(x->afd) < 0)
		return -errno;
	x->ctx = x->rd->ibv->open_device(x->rd->dev);
	if (!x->ctx)
		return errno ? -errno : -EIO;
	x->direct = x->rd->direct;
	x->cc = x->rd->ibv->create_comp_channel(x->ctx);
	if (!x->cc)
		return errno ? -errno : -EIO;
	if (set_nonblock(x->cc->fd) < 0 || set_nonblock(x->ctx->async_fd) < 0)
		return -errno;
	return vctx_events(x);
}

int ffr_vctx_new(struct ffr_rdma *rd, struct ffr_container *c, pid_t pid, int *shim_fd,
		 int *async_fd)
{
	struct ffr_rdma_use *u = ffr_rdma_use(rd, c);
	struct ffr_vctx *x;
	int err;

	*shim_fd = *async_fd = -1;
	if (!u && !(u = c->ext[rd->slot] = calloc(1, sizeof(*u))))
		return -ENOMEM;
	if (u->ctxs >= rd->quota.ctxs)
		return -ENOBUFS;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->rd = rd;
	x->c = c;
	x->pid = pid;
	snprintf(x->name, sizeof(x->name), "%s", c->name);
	x->fd = x->afd = x->dbfd = -1;
	for (size_t k = 0; k < sizeof(x->objs) / sizeof(x->objs[0]); k++)
		TAILQ_INIT(&x->objs[k]);
	TAILQ_INIT(&x->mems);
	TAILQ_INSERT_TAIL(&rd->ctxs, x, link);
	rd->nctxs++;
	u->ctxs++;
	err = vctx_open(x, shim_fd, async_fd);
	if (err) {
		ff_close_fds(shim_fd, 1);
		ff_close_fds(async_fd, 1);
		ffr_vctx_free(x);
		return err;
	}
	rd->ctxs_total++;
	ff_info("verbs %s pid %d: context opened (%s data path)", x->name, (int)pid,
		x->direct ? "direct" : "ring");
	return 0;
}

/* Dependency order: QPs hold PDs, CQs and SRQs; SRQs and MRs hold PDs;
 * CQs hold channels. */
static void vctx_destroy_objs(struct ffr_vctx *x)
{
	static const uint32_t order[] = {FF_VOBJ_QP, FF_VOBJ_SRQ, FF_VOBJ_MR,
					 FF_VOBJ_CQ, FF_VOBJ_CHANNEL, FF_VOBJ_PD};
	struct ffr_vmem *m;

	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		struct ffr_vobj *o;

		while ((o = TAILQ_FIRST(&x->objs[order[k]])))
			if (ffr_vobj_destroy(o) < 0) {
				ff_err("verbs %s: cannot destroy object %u (kind %u)", x->name,
				       o->handle, o->kind);
				ffr_vobj_del(o); /* leak it rather than loop */
			}
	}
	while ((m = TAILQ_FIRST(&x->mems))) {
		m->refs = 1;
		ffr_vmem_put(x, m);
	}
}

void ffr_vctx_free(struct ffr_vctx *x)
{
	if (!x)
		return;
	ffr_vqp_ask_cancel(x);
	vctx_destroy_objs(x);
	if (x->ev)
		event_free(x->ev);
	if (x->dbev)
		event_free(x->dbev);
	if (x->ccev)
		event_free(x->ccev);
	if (x->asev)
		event_free(x->asev);
	if (x->cc)
		x->rd->ibv->destroy_comp_channel(x->cc);
	if (x->ctx)
		x->rd->ibv->close_device(x->ctx);
	ff_close_fds(&x->fd, 1);
	ff_close_fds(&x->afd, 1);
	ff_close_fds(&x->dbfd, 1);
	TAILQ_REMOVE(&x->rd->ctxs, x, link);
	x->rd->nctxs--;
	if (ffr_rdma_use(x->rd, x->c))
		ffr_rdma_use(x->rd, x->c)->ctxs--;
	ff_info("verbs %s pid %d: context closed", x->name, (int)x->pid);
	ffr_htab_free(&x->objtab);
	free(x);
}
