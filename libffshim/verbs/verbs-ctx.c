/* A context of the virtual device and its plumbing: the device struct,
 * the request/reply exchange on a context's socket, opening and closing
 * contexts, ring mappings and the doorbell.
 * Invariants: a context's socket and doorbell are the shim's own fds
 * (hidden, close-on-exec); one request is in flight per context; a child
 * after fork() drops its copies, so the router sees the parent's exit. */
#include "verbs-internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VREPLY_BUF	  4096
#define VREPLY_TIMEOUT_MS 15000

struct ibv_device ffs_vdev = {
    .node_type = IBV_NODE_CA,
    .transport_type = IBV_TRANSPORT_IB,
    .name = "ffnet0",
    .dev_name = "uverbs-ffnet",
    .dev_path = "/sys/class/infiniband_verbs/uverbs-ffnet",
    .ibdev_path = "/sys/class/infiniband/ffnet0",
};

/* Every open context, for fork(). */
static struct {
	pthread_mutex_t lock;
	struct ffs_vctx **v;
	size_t n, cap;
} open_ctxs = {.lock = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

bool ffs_is_vctx(const struct ibv_context *ctx)
{
	return ctx && ctx->device == &ffs_vdev;
}

void ffs_vunsupported(const char *what)
{
	ff_warn("ffnet: %s is not supported on the virtual RDMA device", what);
}

/* ---- requests ---- */

/* The reply to request id. One request is in flight per socket, so a
 * reply with id 0 (the router could not read the request: it may have
 * been out of fds to receive the ones it carried) answers it too. */
static int wait_reply(int sock, uint64_t id, Ff__Reply **rep, int *rfds, int *nr)
{
	uint8_t buf[VREPLY_BUF];

	for (;;) {
		struct pollfd p = {.fd = sock, .events = POLLIN};
		ProtobufCMessage *m;
		int r = REAL(poll)(&p, 1, VREPLY_TIMEOUT_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ETIMEDOUT;
		r = ff_msg_recv(sock, &ff__reply__descriptor, buf, sizeof(buf), &m, rfds, 2, nr, 0);
		if (r <= 0)
			return -EIO;
		if (((Ff__Reply *)m)->id == id || ((Ff__Reply *)m)->id == 0) {
			*rep = (Ff__Reply *)m;
			return 0;
		}
		ff_close_fds(rfds, *nr);
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

/* The errno of a refused request: the device's own if the router passed
 * one on, else the status's. Negative. */
static int reply_errno(const Ff__Reply *rep)
{
	if (rep->body_case == FF__REPLY__BODY_VERBS_OBJ && rep->verbs_obj->err)
		return -(int)rep->verbs_obj->err;
	return -ff_status_errno(rep->status);
}

int ffs_sockcall(int *sock, pthread_mutex_t *lock, uint64_t *next_id, Ff__Request *req,
		 const int *fds, int nfds, Ff__Reply **rep, int *rfd)
{
	int rfds[2] = {-1, -1}, nr = 0, err = -EIO;

	if (rfd)
		*rfd = -1;
	pthread_mutex_lock(lock);
	if (*sock >= 0) {
		req->id = ++*next_id;
		err = ff_msg_send(*sock, &req->base, fds, nfds);
		if (!err)
			err = wait_reply(*sock, req->id, rep, rfds, &nr);
	}
	pthread_mutex_unlock(lock);
	if (err)
		return err == -ETIMEDOUT ? err : -EIO;
	if ((*rep)->status != FF__STATUS__ST_OK) {
		err = reply_errno(*rep);
		ff_dbg("ffnet verbs: router refused: %s", (*rep)->error);
		ff__reply__free_unpacked(*rep, NULL);
		*rep = NULL;
		ff_close_fds(rfds, nr);
		return err;
	}
	if (rfd && nr) {
		*rfd = rfds[0];
		rfds[0] = -1;
	}
	ff_close_fds(rfds, nr);
	return 0;
}

int ffs_vcall(struct ffs_vctx *x, Ff__Request *req, const int *fds, int nfds, Ff__Reply **rep,
	      int *rfd)
{
	return ffs_sockcall(&x->sock, &x->lock, &x->next_id, req, fds, nfds, rep, rfd);
}

int ffs_vcall0(struct ffs_vctx *x, Ff__Request *req, const int *fds, int nfds)
{
	Ff__Reply *rep = NULL;
	int err = ffs_vcall(x, req, fds, nfds, &rep, NULL);

	if (!err)
		ff__reply__free_unpacked(rep, NULL);
	return err;
}

int ffs_open_call(Ff__Request *req, Ff__Reply__BodyCase body, int nfds, Ff__Reply **rep, int *fds)
{
	Ff__Reply *r = NULL;
	int rfds[FF_MAX_FDS], nr = 0, err;

	if (!ffs_enabled)
		return -ENODEV;
	err = ffs_call(req, NULL, 0, &r, rfds, &nr);
	if (err)
		return err;
	if (r->status || (body && r->body_case != body) || nr != nfds) {
		err = r->status ? -ff_status_errno(r->status) : -EPROTO;
		ff_close_fds(rfds, nr);
		ff__reply__free_unpacked(r, NULL);
		return err;
	}
	for (int i = 0; i < nfds; i++)
		fds[i] = rfds[i];
	if (rep)
		*rep = r;
	else
		ff__reply__free_unpacked(r, NULL);
	return 0;
}

int ffs_vdestroy(struct ffs_vctx *x, uint32_t kind, uint32_t h)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsDestroy m = FF__VERBS_DESTROY__INIT;

	m.kind = kind;
	m.handle = h;
	req.body_case = FF__REQUEST__BODY_VERBS_DESTROY;
	req.verbs_destroy = &m;
	return ffs_vcall0(x, &req, NULL, 0);
}

/* ---- rings and doorbell ---- */

/* Whether the router's geometry g keeps every slot of a queue inside the
 * len bytes mapped, past the header, each at least min bytes long (size
 * 0: no such queue, unless need). */
static bool geom_ok(const struct ff_vq_geom *g, size_t len, uint64_t min, bool need)
{
	if (!g->size)
		return !need;
	return !(g->size & (g->size - 1)) && g->stride >= min && g->off >= FF_VRING_HDR &&
	       (uint64_t)g->off + (uint64_t)g->size * g->stride <= len;
}

static bool ring_ok(const struct ff_vring_hdr *h, uint32_t kind, size_t len)
{
	uint64_t sqe = sizeof(struct ff_vwqe) + (uint64_t)h->sq.max_sge * sizeof(struct ff_vsge) +
		       h->sq.max_inline;
	uint64_t rqe = sizeof(struct ff_vrqe) + (uint64_t)h->rq.max_sge * sizeof(struct ff_vsge);

	if (h->magic != FF_VRING_MAGIC || h->kind != kind)
		return false;
	if (kind == FF_VOBJ_CQ)
		return geom_ok(&h->cq, len, sizeof(struct ff_vcqe), true);
	return geom_ok(&h->rq, len, rqe, false) &&
	       (kind == FF_VOBJ_SRQ ? !h->sq.size : geom_ok(&h->sq, len, sqe, false));
}

int ffs_vring_map(int fd, uint32_t kind, struct ffs_vring *rg)
{
	struct stat st;
	void *p = MAP_FAILED;

	if (fstat(fd, &st) == 0 && st.st_size >= (off_t)FF_VRING_HDR)
		p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ff_close_fds(&fd, 1);
	if (p == MAP_FAILED)
		return -EIO;
	rg->hdr = p;
	rg->len = (size_t)st.st_size;
	if (!ring_ok(rg->hdr, kind, rg->len)) {
		ffs_vring_unmap(rg);
		return -EPROTO;
	}
	return 0;
}

void ffs_vring_unmap(struct ffs_vring *rg)
{
	if (rg->hdr)
		munmap(rg->hdr, rg->len);
	rg->hdr = NULL;
}

int ffs_vqueues_map(struct ffs_vctx *x, uint32_t kind, uint32_t h, Ff__Reply *rep, int fd,
		    const struct ffs_vqueues *qs)
{
	const Ff__VerbsObjReply *o = rep->verbs_obj;
	int err;

	if (ffs_vdirect(x)) {
		if (qs->dh)
			*qs->dh = o->dev_handle;
		err = ffs_dq_map(x, o->map_off, o->map_len, qs->dq);
		if (!err && qs->dq2 && o->map2_len)
			err = ffs_dq_map(x, o->map2_off, o->map2_len, qs->dq2);
	} else {
		err = fd < 0 ? -EPROTO : ffs_vring_map(fd, kind, qs->ring);
	}
	ff__reply__free_unpacked(rep, NULL);
	if (err) {
		ffs_dq_unmap(qs->dq);
		if (qs->dq2)
			ffs_dq_unmap(qs->dq2);
		ffs_vdestroy(x, kind, h);
	}
	return err;
}

void ffs_vdoorbell(struct ffs_vctx *x)
{
	uint64_t one = 1;

	if (x->dbfd >= 0)
		syscall(SYS_write, x->dbfd, &one, sizeof(one));
}

/* ---- device ---- */

void ffs_vinfo_from_reply(const Ff__VerbsOpenReply *m, struct ffs_vinfo *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", m->name ? m->name : "ffnet0");
	info->guid = m->node_guid;
	if (m->device_attr.len == sizeof(info->da))
		memcpy(&info->da, m->device_attr.data, sizeof(info->da));
	if (m->port_attr.len == sizeof(info->pa))
		memcpy(&info->pa, m->port_attr.data, sizeof(info->pa));
	for (size_t i = 0; i < m->n_gids && info->ngids < FFS_MAX_GIDS; i++)
		if (m->gids[i]->gid.len == 16)
			memcpy(info->gids[info->ngids++].raw, m->gids[i]->gid.data, 16);
	info->pa.gid_tbl_len = info->ngids;
}

/* VerbsOpen: describes the device into info and, unless probe, returns
 * a new context's socket and async-event fd in fds. 0 or -errno. */
static int open_call(bool probe, struct ffs_vinfo *info, int *fds)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsOpen m = FF__VERBS_OPEN__INIT;
	Ff__Reply *rep;
	int err;

	m.probe = probe;
	req.body_case = FF__REQUEST__BODY_VERBS_OPEN;
	req.verbs_open = &m;
	err = ffs_open_call(&req, FF__REPLY__BODY_VERBS_OPEN, probe ? 0 : 2, &rep, fds);
	if (err)
		return err;
	ffs_vinfo_from_reply(rep->verbs_open, info);
	ff__reply__free_unpacked(rep, NULL);
	return 0;
}

int ffs_vprobe(struct ffs_vinfo *info)
{
	int err = open_call(true, info, NULL);

	if (!err)
		snprintf(ffs_vdev.name, sizeof(ffs_vdev.name), "%s", info->name);
	return err;
}

/* ctxs_*: the list of open contexts, kept for fork(). */
static void ctxs_fork_prepare(void)
{
	pthread_mutex_lock(&open_ctxs.lock);
}

static void ctxs_fork_parent(void)
{
	pthread_mutex_unlock(&open_ctxs.lock);
}

/* The child cannot use its parent's RDMA objects: it lets go of the
 * sockets so the router notices when the parent exits. */
static void ctxs_fork_child(void)
{
	for (size_t i = 0; i < open_ctxs.n; i++) {
		ffs_internal_close(&open_ctxs.v[i]->sock);
		ffs_internal_close(&open_ctxs.v[i]->dbfd);
		ffs_internal_close(&open_ctxs.v[i]->ufd);
	}
	pthread_mutex_unlock(&open_ctxs.lock);
}

static void fork_setup(void)
{
	pthread_atfork(ctxs_fork_prepare, ctxs_fork_parent, ctxs_fork_child);
}

static int ctxs_add(struct ffs_vctx *x)
{
	int err = 0;

	pthread_once(&fork_once, fork_setup);
	pthread_mutex_lock(&open_ctxs.lock);
	if (open_ctxs.n == open_ctxs.cap) {
		size_t cap = open_ctxs.cap ? open_ctxs.cap * 2 : 8;
		struct ffs_vctx **v = realloc(open_ctxs.v, cap * sizeof(*v));

		if (v) {
			open_ctxs.v = v;
			open_ctxs.cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err)
		open_ctxs.v[open_ctxs.n++] = x;
	pthread_mutex_unlock(&open_ctxs.lock);
	return err;
}

static void ctxs_del(struct ffs_vctx *x)
{
	pthread_mutex_lock(&open_ctxs.lock);
	for (size_t i = 0; i < open_ctxs.n; i++)
		if (open_ctxs.v[i] == x)
			open_ctxs.v[i] = open_ctxs.v[--open_ctxs.n];
	pthread_mutex_unlock(&open_ctxs.lock);
}

/* The context as libibverbs and infiniband/verbs.h's inline calls expect it, with
 * the ring data path's ops. */
static void vctx_ops(struct ffs_vctx *x)
{
	struct ibv_context *c = &x->vc.context;

	x->vc.sz = sizeof(x->vc);
	x->vc.query_port = ffs_vquery_port;
	x->vc.query_device_ex = ffs_vquery_device_ex;
	x->vc.create_qp_ex = ffs_vcreate_qp_ex;
	c->device = &ffs_vdev;
	c->cmd_fd = -1;
	c->num_comp_vectors = 1;
	c->abi_compat = __VERBS_ABI_IS_EXTENDED;
	c->ops.poll_cq = ffs_vpoll_cq;
	c->ops.req_notify_cq = ffs_vreq_notify_cq;
	c->ops.post_send = ffs_vpost_send;
	c->ops.post_recv = ffs_vpost_recv;
	c->ops.post_srq_recv = ffs_vpost_srq_recv;
	pthread_mutex_init(&c->mutex, NULL);
}

/* VerbsCtxInit: the context's doorbell (ring path) or device fd (direct
 * path, whose ops then replace the ring's). 0 or -errno. */
static int ctx_init(struct ffs_vctx *x)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCtxInit m = FF__VERBS_CTX_INIT__INIT;
	Ff__Reply *rep = NULL;
	struct ibv_context *c = &x->vc.context;
	int err, fd, *keep;
	bool direct;

	req.body_case = FF__REQUEST__BODY_VERBS_CTX_INIT;
	req.verbs_ctx_init = &m;
	err = ffs_vcall(x, &req, NULL, 0, &rep, &fd);
	if (err)
		return err;
	direct = rep->verbs_obj && rep->verbs_obj->direct;
	ff__reply__free_unpacked(rep, NULL);
	if (fd < 0)
		return -EPROTO;
	keep = direct ? &x->ufd : &x->dbfd;
	*keep = ffs_hide_fd(fd);
	ffs_fd_internal(*keep, keep);
	if (direct) { /* the app's data path calls go straight to the device */
		c->ops.poll_cq = ffs_dpoll_cq;
		c->ops.req_notify_cq = ffs_dreq_notify_cq;
		c->ops.post_send = ffs_dpost_send;
		c->ops.post_recv = ffs_dpost_recv;
		c->ops.post_srq_recv = ffs_dpost_srq_recv;
	}
	return 0;
}

struct ibv_context *ffs_vopen(void)
{
	struct ffs_vctx *x = calloc(1, sizeof(*x));
	int fds[2], err;

	if (!x) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&x->lock, NULL);
	pthread_mutex_init(&x->objs_lock, NULL);
	x->dbfd = x->ufd = -1;
	err = open_call(false, &x->info, fds);
	if (err) {
		free(x);
		errno = -err;
		return NULL;
	}
	x->sock = ffs_hide_fd(fds[0]);
	ffs_fd_internal(x->sock, &x->sock);
	vctx_ops(x);
	x->vc.context.async_fd = fds[1];
	err = ctx_init(x);
	if (!err)
		err = ctxs_add(x);
	if (err) {
		ffs_vclose(x);
		errno = -err;
		return NULL;
	}
	return &x->vc.context;
}

void ffs_vclose(struct ffs_vctx *x)
{
	ctxs_del(x);
	ffs_regions_forget_ctx(x);
	ffs_internal_close(&x->sock);
	ffs_internal_close(&x->dbfd);
	ffs_internal_close(&x->ufd);
	if (x->vc.context.async_fd >= 0)
		REAL(close)(x->vc.context.async_fd);
	pthread_mutex_destroy(&x->vc.context.mutex);
	pthread_mutex_destroy(&x->lock);
	pthread_mutex_destroy(&x->objs_lock);
	free(x);
}
