/* Verbs objects other than QPs: PDs, the memfd ranges apps hand over and
 * the MRs registered on them, completion channels, CQs, SRQs, and the ring
 * memfds. Invariants: an MR's pages are exactly the app's pages (the
 * router maps the app's memfds and registers that mapping with the app's
 * address as iova: zero copy); every memfd the router maps is sealed
 * against shrinking first, so an app cannot make the router fault; an
 * object is destroyed only when no other object uses it (refs). */
#include "internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MR_ACCESS                                                                                  \
	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |               \
	 IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_RELAXED_ORDERING)

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static void reply_obj(struct ffr_vctx *x, uint64_t id, Ff__VerbsObjReply *ob, int fd)
{
	Ff__Reply rep = FF__REPLY__INIT;

	rep.id = id;
	rep.body_case = FF__REPLY__BODY_VERBS_OBJ;
	rep.verbs_obj = ob;
	ffr_vreply(x, &rep, &fd, fd >= 0 ? 1 : 0);
}

/* ---- rings ---- */

void ffr_vq_geom(struct ff_vq_geom *g, uint32_t n, uint32_t stride, size_t *off)
{
	uint32_t size = 1;

	while (size < n)
		size <<= 1;
	g->size = size;
	g->stride = (stride + 63) & ~63u;
	g->off = (uint32_t)*off;
	*off += (size_t)size * g->stride;
}

int ffr_vring_new(struct ffr_vring *rg, uint32_t kind, size_t len)
{
	len = (len + page_size() - 1) & ~(page_size() - 1);
	rg->fd = memfd_create("ffnet-vring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (rg->fd < 0)
		return -errno;
	if (ftruncate(rg->fd, (off_t)len) < 0 ||
	    fcntl(rg->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto out_close;
	rg->hdr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, rg->fd, 0);
	if (rg->hdr == MAP_FAILED)
		goto out_close;
	rg->len = len;
	rg->hdr->magic = FF_VRING_MAGIC;
	rg->hdr->kind = kind;
	rg->hdr->sq = rg->sq;
	rg->hdr->rq = rg->rq;
	rg->hdr->cq = rg->cq;
	/* the router is not looking at a new ring: ring the doorbell */
	rg->hdr->sqi.need_db = rg->hdr->rqi.need_db = 1;
	return 0;
out_close:
	ff_close_fds(&rg->fd, 1);
	rg->hdr = NULL;
	return -errno;
}

void ffr_vring_free(struct ffr_vring *rg)
{
	if (rg->hdr)
		munmap(rg->hdr, rg->len);
	rg->hdr = NULL;
	ff_close_fds(&rg->fd, 1);
}

/* ---- PD ---- */

void ffr_vop_alloc_pd(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	Ff__VerbsObjReply ob = FF__VERBS_OBJ_REPLY__INIT;
	struct ffr_vpd *p;
	int err = ffr_vcharge(x, FF_VOBJ_PD, 1);

	if (err)
		goto out_err;
	p = calloc(1, sizeof(*p));
	err = -ENOMEM;
	if (!p)
		goto out_uncharge;
	p->pd = x->rd->ibv->alloc_pd(x->ctx);
	err = p->pd ? ffr_vobj_add(x, &p->o, FF_VOBJ_PD) : (errno ? -errno : -EIO);
	if (err)
		goto out_free;
	ob.handle = p->o.handle;
	reply_obj(x, req->id, &ob, -1);
	return;
out_free:
	if (p->pd)
		x->rd->ibv->dealloc_pd(p->pd);
	free(p);
out_uncharge:
	ffr_vuncharge(x, FF_VOBJ_PD, 1);
out_err:
	ffr_vreply_status(x, req->id, err, "alloc_pd: %s", strerror(-err));
}

/* ---- memfd ranges ---- */

static struct ffr_vmem *vmem_at(struct ffr_vctx *x, uint64_t addr)
{
	struct ffr_vmem *m;

	TAILQ_FOREACH (m, &x->mems, link)
		if (addr >= m->addr && addr - m->addr < m->len)
			return m;
	return NULL;
}

static bool vmem_overlaps(struct ffr_vctx *x, uint64_t addr, uint64_t len)
{
	struct ffr_vmem *m;

	TAILQ_FOREACH (m, &x->mems, link)
		if (addr < m->addr + m->len && m->addr < addr + len)
			return true;
	return false;
}

void ffr_vmem_put(struct ffr_vctx *x, struct ffr_vmem *m)
{
	if (m->refs > 1) {
		m->refs--;
		return;
	}
	TAILQ_REMOVE(&x->mems, m, link);
	munmap(m->map, m->len);
	ffr_vuncharge(x, FFR_VMEM_KIND, 1);
	x->use.mem_bytes -= m->len;
	if (ffr_rdma_use(x->rd, x->c))
		ffr_rdma_use(x->rd, x->c)->mem_bytes -= m->len;
	free(m);
}

/* fd must be a memfd of at least len bytes that can be sealed; the
 * mapping is all the router keeps of it (fd not consumed). */
static int vmem_map(int fd, uint64_t len, uint8_t **out)
{
	struct stat st;
	void *p;

	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return errno == EINVAL ? -EBADF : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < len)
		return -EINVAL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

/* Maps fd (not consumed) as the range m names. */
static int vmem_add(struct ffr_vctx *x, const Ff__VerbsMemAdd *m, int fd)
{
	uint64_t ps = page_size(), quota = x->rd->quota.mem_bytes;
	struct ffr_rdma_use *u = ffr_rdma_use(x->rd, x->c);
	struct ffr_vmem *v;
	int err;

	if (!m->length || m->addr % ps || m->length % ps || m->addr + m->length < m->addr)
		return -EINVAL;
	if (vmem_overlaps(x, m->addr, m->length))
		return -EEXIST;
	if (u && u->mem_bytes + m->length > quota)
		return -ENOBUFS;
	err = ffr_vcharge(x, FFR_VMEM_KIND, 1);
	if (err)
		return err;
	v = calloc(1, sizeof(*v));
	err = v ? vmem_map(fd, m->length, &v->map) : -ENOMEM;
	if (err) {
		free(v);
		ffr_vuncharge(x, FFR_VMEM_KIND, 1);
		return err;
	}
	v->addr = m->addr;
	v->len = m->length;
	v->refs = 1; /* the shim's, until it removes the range */
	v->held = true;
	TAILQ_INSERT_TAIL(&x->mems, v, link);
	x->use.mem_bytes += v->len;
	if (u)
		u->mem_bytes += v->len;
	return 0;
}

void ffr_vop_mem_add(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	const Ff__VerbsMemAdd *m = req->verbs_mem_add;
	struct ffr_vmem *v;
	int err = -EINVAL;

	if (m->remove) {
		v = nfds == 0 ? vmem_at(x, m->addr) : NULL;
		err = v && v->held && v->addr == m->addr && v->len == m->length ? 0 : -ENOENT;
		if (!err) {
			v->held = false;
			ffr_vmem_put(x, v);
		}
		ff_close_fds(fds, nfds);
		ffr_vreply_status(x, req->id, err, err ? "no such memory range" : NULL);
		return;
	}
	if (nfds == 1)
		err = vmem_add(x, m, fds[0]);
	/* the router keeps mappings, not fds: what a container hands over
	 * costs it no file descriptor */
	ff_close_fds(fds, nfds);
	ffr_vreply_status(x, req->id, err, err ? "memory range refused: %s" : NULL,
			  strerror(-err));
}

/* ---- MR ---- */

/* The mems that cover [lo, hi), in address order. */
static int vmr_cover(struct ffr_vctx *x, struct ffr_vmr *mr, uint64_t lo, uint64_t hi)
{
	for (uint64_t a = lo; a < hi;) {
		struct ffr_vmem *m = vmem_at(x, a);

		if (!m)
			return -EFAULT;
		if (mr->nmems == FFR_MR_MAX_MEMS)
			return -E2BIG;
		mr->mems[mr->nmems++] = m;
		a = m->addr + m->len;
	}
	return 0;
}

/* The router's address of the app's addr: one mem maps it already;
 * several are mapped side by side into a reserved range, each a second
 * mapping of the same shared pages (mremap with old size 0). */
static int vmr_map(struct ffr_vmr *mr, uint64_t lo, uint64_t hi, uint8_t **out)
{
	uint8_t *base;

	if (mr->nmems == 1) {
		*out = mr->mems[0]->map + (mr->addr - mr->mems[0]->addr);
		return 0;
	}
	base = mmap(NULL, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	mr->map = base;
	mr->maplen = hi - lo;
	for (int i = 0; i < mr->nmems; i++) {
		struct ffr_vmem *m = mr->mems[i];
		uint64_t a = m->addr > lo ? m->addr : lo;
		uint64_t b = m->addr + m->len < hi ? m->addr + m->len : hi;

		if (mremap(m->map + (a - m->addr), 0, b - a, MREMAP_MAYMOVE | MREMAP_FIXED,
			   base + (a - lo)) == MAP_FAILED)
			return -errno;
	}
	*out = base + (mr->addr - lo);
	return 0;
}

static void vmr_release(struct ffr_vctx *x, struct ffr_vmr *mr)
{
	if (mr->mr)
		x->rd->ibv->dereg_mr(mr->mr);
	if (mr->map)
		munmap(mr->map, mr->maplen);
	for (int i = 0; i < mr->nmems; i++)
		ffr_vmem_put(x, mr->mems[i]);
	if (mr->pd)
		mr->pd->o.refs--;
	free(mr);
}

static int vmr_reg(struct ffr_vctx *x, const Ff__VerbsRegMr *m, struct ffr_vmr *mr)
{
	uint64_t ps = page_size(), lo, hi, end;
	uint8_t *ptr = NULL;
	int err;

	/* the range must not wrap, even once rounded up to whole pages */
	if (!m->length || __builtin_add_overflow(m->addr, m->length, &end) ||
	    end > UINT64_MAX - (ps - 1) || (m->access & ~MR_ACCESS))
		return -EINVAL;
	mr->pd = ffr_vobj_get(x, m->pd, FF_VOBJ_PD);
	if (!mr->pd)
		return -EINVAL;
	mr->pd->o.refs++;
	mr->addr = m->addr;
	mr->len = m->length;
	lo = m->addr & ~(ps - 1);
	hi = (m->addr + m->length + ps - 1) & ~(ps - 1);
	err = vmr_cover(x, mr, lo, hi);
	for (int i = 0; i < mr->nmems; i++)
		mr->mems[i]->refs++;
	if (err)
		return err;
	err = vmr_map(mr, lo, hi, &ptr);
	if (err)
		return err;
	mr->mr = x->rd->ibv->reg_mr_iova2(mr->pd->pd, ptr, m->length, m->iova, m->access);
	return mr->mr ? 0 : (errno ? -errno : -EIO);
}

void ffr_vop_reg_mr(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	Ff__VerbsObjReply ob = FF__VERBS_OBJ_REPLY__INIT;
	struct ffr_vmr *mr;
	int err = ffr_vcharge(x, FF_VOBJ_MR, 1);

	if (err)
		goto out_err;
	mr = calloc(1, sizeof(*mr));
	err = mr ? vmr_reg(x, req->verbs_reg_mr, mr) : -ENOMEM;
	if (!err)
		err = ffr_vobj_add(x, &mr->o, FF_VOBJ_MR);
	if (err) {
		if (mr)
			vmr_release(x, mr);
		ffr_vuncharge(x, FF_VOBJ_MR, 1);
		goto out_err;
	}
	ob.handle = mr->o.handle;
	ob.lkey = mr->mr->lkey;
	ob.rkey = mr->mr->rkey;
	reply_obj(x, req->id, &ob, -1);
	return;
out_err:
	ffr_vreply_status(x, req->id, err, "reg_mr: %s", strerror(-err));
}

/* ---- completion channels ---- */

void ffr_vop_create_channel(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	Ff__VerbsObjReply ob = FF__VERBS_OBJ_REPLY__INIT;
	struct ffr_vchan *ch;
	int sp[2], err = ffr_vcharge(x, FF_VOBJ_CHANNEL, 1);

	if (err)
		goto out_err;
	ch = calloc(1, sizeof(*ch));
	err = -ENOMEM;
	if (!ch)
		goto out_uncharge;
	if (x->direct) {
		/* the kernel's own channel: its events name the CQ's cookie */
		ch->fd = -1;
		ch->kcc = x->rd->ibv->create_comp_channel(x->ctx);
		err = ch->kcc ? ffr_vobj_add(x, &ch->o, FF_VOBJ_CHANNEL) : (errno ? -errno : -EIO);
		if (err) {
			if (ch->kcc)
				x->rd->ibv->destroy_comp_channel(ch->kcc);
			free(ch);
			goto out_uncharge;
		}
		ob.handle = ch->o.handle;
		reply_obj(x, req->id, &ob, ch->kcc->fd);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		err = -errno;
		free(ch);
		goto out_uncharge;
	}
	ch->fd = sp[0];
	fcntl(ch->fd, F_SETFL, O_NONBLOCK);
	err = ffr_vobj_add(x, &ch->o, FF_VOBJ_CHANNEL);
	if (err) {
		ff_close_fds(sp, 2);
		free(ch);
		goto out_uncharge;
	}
	ob.handle = ch->o.handle;
	reply_obj(x, req->id, &ob, sp[1]);
	close(sp[1]);
	return;
out_uncharge:
	ffr_vuncharge(x, FF_VOBJ_CHANNEL, 1);
out_err:
	ffr_vreply_status(x, req->id, err, "create_comp_channel: %s", strerror(-err));
}

/* ---- CQ ---- */

static int vcq_make(struct ffr_vctx *x, const Ff__VerbsCreateCq *m, struct ffr_vcq *q)
{
	size_t off = FF_VRING_HDR;
	int err;

	if (!m->cqe || m->cqe >= FF_VRING_MAX_CQE || (int)m->cqe > x->rd->dattr.max_cqe)
		return -EINVAL;
	if (m->channel) {
		q->ch = ffr_vobj_get(x, m->channel, FF_VOBJ_CHANNEL);
		if (!q->ch)
			return -EINVAL;
		q->ch->o.refs++;
	}
	q->cookie = m->cookie;
	if (x->direct)
		return ffr_direct_cq_create(x, q, m->cqe);
	ffr_vq_geom(&q->ring.cq, m->cqe, sizeof(struct ff_vcqe), &off);
	err = ffr_vring_new(&q->ring, FF_VOBJ_CQ, off);
	if (err)
		return err;
	q->cq = x->rd->ibv->create_cq(x->ctx, (int)m->cqe, q, x->cc, 0);
	if (!q->cq)
		return errno ? -errno : -EIO;
	return ibv_req_notify_cq(q->cq, 0) ? -EIO : 0;
}

static void vcq_release(struct ffr_vctx *x, struct ffr_vcq *q)
{
	if (q->cq)
		x->rd->ibv->destroy_cq(q->cq);
	if (q->dmap.len)
		ffr_direct_destroy(x, FF_VOBJ_CQ, q->dh);
	ffr_vring_free(&q->ring);
	if (q->ch)
		q->ch->o.refs--;
	free(q);
}

void ffr_vop_create_cq(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	Ff__VerbsObjReply ob = FF__VERBS_OBJ_REPLY__INIT;
	struct ffr_vcq *q;
	int err = ffr_vcharge(x, FF_VOBJ_CQ, 1);

	if (err)
		goto out_err;
	q = calloc(1, sizeof(*q));
	if (q)
		q->ring.fd = -1;
	err = q ? vcq_make(x, req->verbs_create_cq, q) : -ENOMEM;
	if (!err)
		err = ffr_vobj_add(x, &q->o, FF_VOBJ_CQ);
	if (err) {
		if (q)
			vcq_release(x, q);
		ffr_vuncharge(x, FF_VOBJ_CQ, 1);
		goto out_err;
	}
	ob.handle = q->o.handle;
	if (x->direct) {
		ob.cqe = q->dcqe;
		ob.dev_handle = q->dh;
		ob.map_off = q->dmap.off;
		ob.map_len = q->dmap.len;
		reply_obj(x, req->id, &ob, -1);
		return;
	}
	ob.cqe = q->ring.cq.size < (uint32_t)q->cq->cqe ? q->ring.cq.size : (uint32_t)q->cq->cqe;
	reply_obj(x, req->id, &ob, q->ring.fd);
	ff_close_fds(&q->ring.fd, 1);
	return;
out_err:
	ffr_vreply_status(x, req->id, err, "create_cq: %s", strerror(-err));
}

/* ---- SRQ ---- */

static int vsrq_make(struct ffr_vctx *x, const Ff__VerbsCreateSrq *m, struct ffr_vsrq *s)
{
	struct ibv_srq_init_attr ia = {.srq_context = s};
	size_t off = FF_VRING_HDR;
	int err;

	if (!m->max_wr || m->max_wr > FF_VRING_MAX_WR || m->max_sge > FF_VRING_MAX_SGE)
		return -EINVAL;
	s->pd = ffr_vobj_get(x, m->pd, FF_VOBJ_PD);
	if (!s->pd)
		return -EINVAL;
	s->pd->o.refs++; /* vsrq_release drops it: s->pd is set only with it */
	s->cookie = m->cookie;
	ia.attr.max_wr = m->max_wr;
	ia.attr.max_sge = m->max_sge ? m->max_sge : 1;
	ia.attr.srq_limit = m->srq_limit;
	if (x->direct) {
		err = ffr_direct_srq_create(x, s, &ia.attr);
		s->max_wr = ia.attr.max_wr;
		s->max_sge = ia.attr.max_sge;
		return err;
	}
	s->srq = x->rd->ibv->create_srq(s->pd->pd, &ia);
	if (!s->srq)
		return errno ? -errno : -EIO;
	if (ia.attr.max_sge > FF_VRING_MAX_SGE) /* the router's gather lists hold no more */
		ia.attr.max_sge = FF_VRING_MAX_SGE;
	if (ia.attr.max_wr > FF_VRING_MAX_WR)
		ia.attr.max_wr = FF_VRING_MAX_WR;
	ffr_vq_geom(&s->ring.rq, ia.attr.max_wr,
		    sizeof(struct ff_vrqe) + ia.attr.max_sge * sizeof(struct ff_vsge), &off);
	s->ring.rq.max_sge = ia.attr.max_sge;
	err = ffr_vring_new(&s->ring, FF_VOBJ_SRQ, off);
	return err;
}

static void vsrq_release(struct ffr_vctx *x, struct ffr_vsrq *s)
{
	if (s->srq)
		x->rd->ibv->destroy_srq(s->srq);
	if (s->dmap.len)
		ffr_direct_destroy(x, FF_VOBJ_SRQ, s->dh);
	ffr_vring_free(&s->ring);
	if (s->pd)
		s->pd->o.refs--;
	free(s);
}

void ffr_vop_create_srq(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	Ff__VerbsObjReply ob = FF__VERBS_OBJ_REPLY__INIT;
	struct ffr_vsrq *s;
	int err = ffr_vcharge(x, FF_VOBJ_SRQ, 1);

	if (err)
		goto out_err;
	s = calloc(1, sizeof(*s));
	if (s)
		s->ring.fd = -1;
	err = s ? vsrq_make(x, req->verbs_create_srq, s) : -ENOMEM;
	if (!err)
		err = ffr_vobj_add(x, &s->o, FF_VOBJ_SRQ);
	if (err) {
		if (s)
			vsrq_release(x, s);
		ffr_vuncharge(x, FF_VOBJ_SRQ, 1);
		goto out_err;
	}
	ob.handle = s->o.handle;
	ob.srq_limit = req->verbs_create_srq->srq_limit;
	if (x->direct) {
		ob.max_wr = s->max_wr;
		ob.max_sge = s->max_sge;
		ob.dev_handle = s->dh;
		ob.map_off = s->dmap.off;
		ob.map_len = s->dmap.len;
		reply_obj(x, req->id, &ob, -1);
		return;
	}
	ob.max_wr = s->ring.rq.size;
	ob.max_sge = s->ring.rq.max_sge;
	reply_obj(x, req->id, &ob, s->ring.fd);
	ff_close_fds(&s->ring.fd, 1);
	return;
out_err:
	ffr_vreply_status(x, req->id, err, "create_srq: %s", strerror(-err));
}

void ffr_vop_modify_srq(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	const Ff__VerbsModifySrq *m = req->verbs_modify_srq;
	Ff__VerbsObjReply ob = FF__VERBS_OBJ_REPLY__INIT;
	struct ffr_vsrq *s = ffr_vobj_get(x, m->srq, FF_VOBJ_SRQ);
	struct ibv_srq_attr a = {.max_wr = m->max_wr, .srq_limit = m->srq_limit};
	int err = -EINVAL;

	/* resizing would need a new ring: only the limit can change */
	if (!s || (m->mask & ~(uint32_t)IBV_SRQ_LIMIT))
		goto out_err;
	if (x->direct) {
		err = m->mask ? ffr_direct_srq_modify(s, &a, (int)m->mask) : 0;
		if (!err)
			err = ffr_direct_srq_query(s, &a);
	} else {
		err = m->mask ? -x->rd->ibv->modify_srq(s->srq, &a, (int)m->mask) : 0;
		if (!err)
			err = -x->rd->ibv->query_srq(s->srq, &a);
	}
	if (err)
		goto out_err;
	ob.handle = s->o.handle;
	ob.max_wr = x->direct || s->ring.rq.size >= a.max_wr ? a.max_wr : s->ring.rq.size;
	ob.max_sge = a.max_sge;
	ob.srq_limit = a.srq_limit;
	reply_obj(x, req->id, &ob, -1);
	return;
out_err:
	ffr_vreply_status(x, req->id, err, "modify_srq: %s", strerror(-err));
}

/* ---- destroy ---- */

/* The device's object goes first: while the device refuses (it still
 * uses it), the wrapper its context pointer names must stay. */
static int vobj_device_destroy(struct ffr_vctx *x, struct ffr_vobj *o)
{
	const struct ffr_ibv *ibv = x->rd->ibv;
	struct ffr_vmr *mr = (struct ffr_vmr *)o;
	struct ffr_vcq *cq = (struct ffr_vcq *)o;
	struct ffr_vsrq *srq = (struct ffr_vsrq *)o;

	switch (o->kind) {
	case FF_VOBJ_PD:
		return ibv->dealloc_pd(((struct ffr_vpd *)o)->pd) ? -EBUSY : 0;
	case FF_VOBJ_MR:
		if (mr->mr && ibv->dereg_mr(mr->mr))
			return -EBUSY;
		mr->mr = NULL;
		return 0;
	case FF_VOBJ_CQ:
		if (cq->cq && ibv->destroy_cq(cq->cq))
			return -EBUSY;
		if (cq->dmap.len && ffr_direct_destroy(x, FF_VOBJ_CQ, cq->dh))
			return -EBUSY;
		cq->cq = NULL;
		cq->dmap.len = 0;
		return 0;
	case FF_VOBJ_SRQ:
		if (srq->srq && ibv->destroy_srq(srq->srq))
			return -EBUSY;
		if (srq->dmap.len && ffr_direct_destroy(x, FF_VOBJ_SRQ, srq->dh))
			return -EBUSY;
		srq->srq = NULL;
		srq->dmap.len = 0;
		return 0;
	case FF_VOBJ_CHANNEL:
		if (((struct ffr_vchan *)o)->kcc &&
		    ibv->destroy_comp_channel(((struct ffr_vchan *)o)->kcc))
			return -EBUSY;
		((struct ffr_vchan *)o)->kcc = NULL;
		return 0;
	default:
		return 0;
	}
}

int ffr_vobj_destroy(struct ffr_vobj *o)
{
	struct ffr_vctx *x = o->x;
	uint32_t kind = o->kind;

	if (o->refs)
		return -EBUSY;
	if (kind == FF_VOBJ_QP)
		return ffr_vqp_destroy((struct ffr_vqp *)o);
	if (vobj_device_destroy(x, o))
		return -EBUSY;
	ffr_vobj_del(o);
	switch (kind) {
	case FF_VOBJ_MR:
		vmr_release(x, (struct ffr_vmr *)o);
		break;
	case FF_VOBJ_CQ:
		vcq_release(x, (struct ffr_vcq *)o);
		break;
	case FF_VOBJ_SRQ:
		vsrq_release(x, (struct ffr_vsrq *)o);
		break;
	case FF_VOBJ_CHANNEL:
		ff_close_fds(&((struct ffr_vchan *)o)->fd, 1);
		free(o);
		break;
	default:
		free(o);
	}
	ffr_vuncharge(x, kind, 1);
	return 0;
}

void ffr_vop_destroy(struct ffr_vctx *x, Ff__Request *req, int *fds, int nfds)
{
	const Ff__VerbsDestroy *m = req->verbs_destroy;
	struct ffr_vobj *o = ffr_vobj_get(x, m->handle, m->kind);
	int err = o ? ffr_vobj_destroy(o) : -EINVAL;

	ffr_vreply_status(x, req->id, err, err ? "destroy: %s" : NULL, strerror(-err));
}
