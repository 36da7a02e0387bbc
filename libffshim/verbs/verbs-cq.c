/* Completion queues and completion channels of the virtual device.
 * poll_cq and req_notify_cq are the context's ops (inline in infiniband/verbs.h): they
 * only touch the CQ ring. A completion channel is a real socket the router
 * writes one datagram to per event (vring.h), so poll/epoll/select and
 * O_NONBLOCK on channel->fd behave as with a kernel channel.
 * Invariant: an event names a CQ by its cookie, which is only trusted
 * after it is found among the context's live CQs. */
#include "real.h"
#include "verbs-internal.h"

#include "fdpass.h"
#include "log.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- channels ---- */

FFS_EXPORT struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *ctx)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateChannel m = FF__VERBS_CREATE_CHANNEL__INIT;
	struct ffs_vchan *ch;
	Ff__Reply *rep;
	int fd, err;

	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_create_comp_channel)(ctx);
	ch = calloc(1, sizeof(*ch));
	if (!ch) {
		errno = ENOMEM;
		return NULL;
	}
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_CHANNEL;
	req.verbs_create_channel = &m;
	err = ffs_vcall(to_vctx(ctx), &req, NULL, 0, &rep, &fd);
	if (err) {
		free(ch);
		errno = -err;
		return NULL;
	}
	ch->h = rep->verbs_obj->handle;
	ff__reply__free_unpacked(rep, NULL);
	if (fd < 0) {
		ffs_vdestroy(to_vctx(ctx), FF_VOBJ_CHANNEL, ch->h);
		free(ch);
		errno = EPROTO;
		return NULL;
	}
	ch->ch.context = ctx;
	ch->ch.fd = fd;
	return &ch->ch;
}

FFS_EXPORT int ibv_destroy_comp_channel(struct ibv_comp_channel *ibch)
{
	struct ffs_vchan *ch = to_vchan(ibch);
	int err;

	if (!ffs_is_vctx(ibch->context))
		return VREAL(ibv_destroy_comp_channel)(ibch);
	if (ibch->refcnt)
		return EBUSY;
	err = ffs_vdestroy(to_vctx(ibch->context), FF_VOBJ_CHANNEL, ch->h);
	if (err && err != -EIO)
		return -err;
	REAL(close)(ibch->fd);
	free(ch);
	return 0;
}

/* ---- CQs ---- */

struct ffs_vcq *ffs_vcq_find(struct ffs_vctx *x, uint64_t cookie)
{
	struct ffs_vcq *q;

	FFS_VFIND(x, cqs, cookie, q);
	return q;
}

/* Creates q at the router (its ring, or its device queue on the direct
 * path). 0 or -errno. */
static int cq_call(struct ffs_vctx *x, struct ffs_vcq *q, int cqe, struct ffs_vchan *ch)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateCq m = FF__VERBS_CREATE_CQ__INIT;
	Ff__Reply *rep;
	int fd, err;

	m.cqe = (uint32_t)cqe;
	m.channel = ch ? ch->h : 0;
	m.cookie = (uintptr_t)q;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_CQ;
	req.verbs_create_cq = &m;
	err = ffs_vcall(x, &req, NULL, 0, &rep, &fd);
	if (err)
		return err;
	q->h = rep->verbs_obj->handle;
	q->cq.cqe = (int)rep->verbs_obj->cqe;
	err = ffs_vqueues_map(x, FF_VOBJ_CQ, q->h, rep, fd,
			      &(struct ffs_vqueues){.ring = &q->ring, .dh = &q->dh, .dq = &q->dq});
	if (err)
		return err;
	if (q->ring.hdr)
		q->g = q->ring.hdr->cq;
	return 0;
}

FFS_EXPORT struct ibv_cq *ibv_create_cq(struct ibv_context *ctx, int cqe, void *cq_context,
					struct ibv_comp_channel *channel, int comp_vector)
{
	struct ffs_vcq *q;
	int err;

	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_create_cq)(ctx, cqe, cq_context, channel, comp_vector);
	if (cqe < 1 || (channel && channel->context != ctx)) {
		errno = EINVAL;
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		errno = ENOMEM;
		return NULL;
	}
	err = cq_call(to_vctx(ctx), q, cqe, channel ? to_vchan(channel) : NULL);
	if (err) {
		free(q);
		errno = -err;
		return NULL;
	}
	pthread_spin_init(&q->lock, PTHREAD_PROCESS_PRIVATE);
	q->cq.context = ctx;
	q->cq.channel = channel;
	q->cq.cq_context = cq_context;
	q->cq.handle = q->h;
	pthread_mutex_init(&q->cq.mutex, NULL);
	pthread_cond_init(&q->cq.cond, NULL);
	if (channel)
		channel->refcnt++;
	FFS_VLINK(to_vctx(ctx), cqs, q);
	return &q->cq;
}

FFS_EXPORT int ibv_destroy_cq(struct ibv_cq *cq)
{
	struct ffs_vcq *q = to_vcq(cq);
	int err;

	if (!ffs_is_vctx(cq->context))
		return VREAL(ibv_destroy_cq)(cq);
	err = ffs_vdestroy(to_vctx(cq->context), FF_VOBJ_CQ, q->h);
	if (err && err != -EIO)
		return -err;
	FFS_VUNLINK(to_vctx(cq->context), cqs, q, struct ffs_vcq);
	ffs_vring_unmap(&q->ring);
	ffs_dq_unmap(&q->dq);
	if (cq->channel)
		cq->channel->refcnt--;
	pthread_spin_destroy(&q->lock);
	pthread_mutex_destroy(&cq->mutex);
	pthread_cond_destroy(&cq->cond);
	free(q);
	return 0;
}

FFS_EXPORT int ibv_resize_cq(struct ibv_cq *cq, int cqe)
{
	if (!ffs_is_vctx(cq->context))
		return VREAL(ibv_resize_cq)(cq, cqe);
	ffs_vunsupported("ibv_resize_cq");
	return EOPNOTSUPP;
}

/* ---- data path ---- */

#define FFS_POLL_SPINS 16

/* A ring completion as the app's struct ibv_wc. */
static void wc_from(struct ibv_wc *wc, const struct ff_vcqe *e)
{
	wc->wr_id = e->wr_id;
	wc->status = e->status;
	wc->opcode = e->opcode;
	wc->vendor_err = e->vendor_err;
	wc->byte_len = e->byte_len;
	wc->imm_data = e->imm_data;
	wc->qp_num = e->qp_num;
	wc->src_qp = e->src_qp;
	wc->wc_flags = e->wc_flags;
	wc->pkey_index = e->pkey_index;
	wc->slid = e->slid;
	wc->sl = e->sl;
	wc->dlid_path_bits = e->dlid_path_bits;
}

int ffs_vpoll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	struct ffs_vcq *q = to_vcq(cq);
	struct ff_vq_idx *ix = &q->ring.hdr->cqi;
	uint32_t prod;
	int k = 0;

	pthread_spin_lock(&q->lock);
	prod = __atomic_load_n(&ix->prod, __ATOMIC_ACQUIRE);
	for (; k < n && q->cons != prod; k++, q->cons++)
		wc_from(&wc[k], FF_VRING_SLOT(q->ring.hdr, &q->g, q->cons));
	if (k) {
		__atomic_store_n(&ix->cons, q->cons, __ATOMIC_RELEASE);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		/* the router waits for room to move more completions */
		if (__atomic_load_n(&ix->need_db, __ATOMIC_RELAXED) &&
		    __atomic_exchange_n(&ix->need_db, 0, __ATOMIC_SEQ_CST))
			ffs_vdoorbell(to_vctx(cq->context));
	}
	pthread_spin_unlock(&q->lock);
	/* A program that spins on an empty CQ waits for the router: with no
	 * more CPUs than spinning programs, the router only runs when they
	 * give way, so every few empty polls this one does. */
	if (k)
		q->empty = 0;
	else if (++q->empty >= FFS_POLL_SPINS) {
		q->empty = 0;
		sched_yield();
	}
	return k;
}

int ffs_vreq_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	struct ff_vq_idx *ix = &to_vcq(cq)->ring.hdr->cqi;

	__atomic_store_n(&ix->arm_sol, (uint32_t) !!solicited_only, __ATOMIC_RELAXED);
	__atomic_fetch_add(&ix->arm_seq, 1, __ATOMIC_SEQ_CST);
	return 0;
}

FFS_EXPORT int ibv_get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **cq_context)
{
	struct ff_vcq_event ev;
	struct ffs_vcq *q;
	long n;

	if (!ffs_is_vctx(ch->context))
		return VREAL(ibv_get_cq_event)(ch, cq, cq_context);
	for (;;) {
		n = syscall(SYS_read, ch->fd, &ev, sizeof(ev));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (long)sizeof(ev)) {
			if (n >= 0)
				errno = EIO;
			return -1;
		}
		q = ffs_vcq_find(to_vctx(ch->context), ev.cookie);
		if (q)
			break; /* else: the CQ was destroyed since */
	}
	__atomic_fetch_add(&q->events, 1, __ATOMIC_RELAXED);
	*cq = &q->cq;
	*cq_context = q->cq.cq_context;
	return 0;
}

FFS_EXPORT void ibv_ack_cq_events(struct ibv_cq *cq, unsigned int nevents)
{
	if (!ffs_is_vctx(cq->context)) {
		VREAL(ibv_ack_cq_events)(cq, nevents);
		return;
	}
	__atomic_fetch_add(&to_vcq(cq)->acked, nevents, __ATOMIC_RELAXED);
	__atomic_fetch_add(&cq->comp_events_completed, nevents, __ATOMIC_RELAXED);
}
