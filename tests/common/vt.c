/* The rdma/ unit tests' router and client (vt.h). */
#include "vt.h"

#include "cu.h"
#include "fdpass.h"
#include "fixture.h"
#include "msg.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOOP_TURNS 8
#define CALL_TRIES 16

struct event_base *vt_base;
struct ffr_router *vt_r;
struct ffr_rdma *vt_rd;
int vt_status;

static int admin = -1;
static uint64_t next_id = 1;

void vt_loop(void)
{
	for (int i = 0; i < LOOP_TURNS; i++)
		event_base_loop(vt_base, EVLOOP_NONBLOCK);
}

int vt_nfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

int vt_nmaps(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512], pat[80];
	int n = 0;

	if (!f)
		return -1;
	snprintf(pat, sizeof(pat), "/memfd:%s ", name);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, pat) != NULL;
	fclose(f);
	return n;
}

int vt_memfd(size_t len)
{
	int fd = memfd_create(VT_MEM, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(ftruncate(fd, (off_t)len) == 0);
	return fd;
}

void vt_assert_use_zero(const struct ffr_rdma_use *u)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->ctxs, 0);
	CU_ASSERT_EQUAL(u->pds, 0);
	CU_ASSERT_EQUAL(u->mrs, 0);
	CU_ASSERT_EQUAL(u->cqs, 0);
	CU_ASSERT_EQUAL(u->qps, 0);
	CU_ASSERT_EQUAL(u->srqs, 0);
	CU_ASSERT_EQUAL(u->chans, 0);
	CU_ASSERT_EQUAL(u->mems, 0);
	CU_ASSERT_EQUAL(u->mem_bytes, 0);
}

void vt_assert_destroy_order(void)
{
	unsigned int n;
	const struct fake_logent *l = fake_ibv_log(&n);

	for (unsigned int i = 0; i < n; i++)
		for (int k = 0; k < FAKE_MAX_HELD; k++)
			if (l[i].held[k])
				CU_ASSERT(fake_ibv_log_pos(l[i].held[k]) > (int)i);
}

Ff__Reply *vt_call(int fd, Ff__Request *req, const int *fds, int nfds, int *rfds, int *nrfds)
{
	uint8_t *buf = malloc(FF_MSG_MAX);
	ProtobufCMessage *m = NULL;
	int got = -EAGAIN, tmp[FF_MAX_FDS], ntmp = 0;

	if (!rfds) {
		rfds = tmp;
		nrfds = &ntmp;
	}
	*nrfds = 0;
	req->id = next_id++;
	if (!buf || ff_msg_send(fd, &req->base, fds, nfds) < 0)
		goto out_free;
	for (int i = 0; i < CALL_TRIES && got == -EAGAIN; i++) {
		vt_loop();
		got = ff_msg_recv(fd, &ff__reply__descriptor, buf, FF_MSG_MAX, &m, rfds,
				  FF_MAX_FDS, nrfds, MSG_DONTWAIT);
	}
	if (got <= 0)
		m = NULL;
	else /* one request at a time: its reply comes next */
		CU_ASSERT_EQUAL(((Ff__Reply *)m)->id, req->id);
out_free:
	free(buf);
	ff_close_fds(tmp, ntmp);
	return (Ff__Reply *)m;
}

/* Status of a reply to req on fd (fds of the reply closed). */
static int call_status(int fd, Ff__Request *req)
{
	Ff__Reply *rep = vt_call(fd, req, NULL, 0, NULL, NULL);
	int st = rep ? (int)rep->status : -1;

	if (rep && rep->status)
		fprintf(stderr, "vt: status %d: %s\n", st, rep->error);
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	return st;
}

static int hello(int fd, const char *role)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;

	h.version = FF_PROTO_VERSION;
	h.role = (char *)role;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	return call_status(fd, &req);
}

void vt_up(void)
{
	char path[PATH_MAX];

	vt_down();
	vt_base = event_base_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(vt_base);
	fake_ibv_reset();
	vt_r = ip_router_new(vt_base, "A", NULL, true, &fake_ibv);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vt_r);
	vt_rd = ffr_rdma_of(vt_r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vt_rd);
	snprintf(path, sizeof(path), "%s/%s", vt_r->rundir, FF_SOCK_NAME);
	admin = fx_connect(path);
	CU_ASSERT_FATAL(admin >= 0);
	CU_ASSERT_EQUAL_FATAL(hello(admin, "ctl"), FF__STATUS__ST_OK);
}

void vt_down(void)
{
	if (admin >= 0)
		close(admin);
	admin = -1;
	if (vt_r) {
		ip_router_free(vt_r);
		/* the router closed the device: nothing of it may be left */
		CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 0);
		CU_ASSERT_EQUAL(fake_ibv_live_objs(), 0);
		fake_ibv_clear(); /* what a failed test left is not the next one's */
	}
	vt_r = NULL;
	vt_rd = NULL;
	if (vt_base)
		event_base_free(vt_base);
	vt_base = NULL;
}

/* ---- ffctl ---- */

int vt_register(const char *name, const char *ip, const char *host)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Register m = FF__REGISTER__INIT;
	char *ips[1] = {(char *)ip};

	m.name = (char *)name;
	m.n_ips = 1;
	m.ips = ips;
	m.host = (char *)(host ? host : "");
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &m;
	return call_status(admin, &req);
}

int vt_unregister(const char *name)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unregister m = FF__UNREGISTER__INIT;

	m.name = (char *)name;
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &m;
	return call_status(admin, &req);
}

int vt_host_add(const char *name, const char *addr, bool rdma)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__HostAdd m = FF__HOST_ADD__INIT;

	m.name = (char *)name;
	m.addr = (char *)addr;
	m.rdma = rdma;
	req.body_case = FF__REQUEST__BODY_HOST_ADD;
	req.host_add = &m;
	return call_status(admin, &req);
}

struct ffr_rdma_use *vt_use(const char *name)
{
	struct ffr_container *c = ffr_container_find(vt_r, name);

	return c ? ffr_rdma_use(vt_rd, c) : NULL;
}

/* ---- contexts ---- */

static int ctx_init(struct vt_ctx *x)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCtxInit m = FF__VERBS_CTX_INIT__INIT;

	req.body_case = FF__REQUEST__BODY_VERBS_CTX_INIT;
	req.verbs_ctx_init = &m;
	return call_status(x->fd, &req);
}

int vt_open(const char *name, struct vt_ctx *x)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsOpen m = FF__VERBS_OPEN__INIT;
	char path[PATH_MAX];
	Ff__Reply *rep;
	int fds[FF_MAX_FDS], n = 0, st;

	x->fd = x->afd = -1;
	snprintf(path, sizeof(path), "%s/c/%s/%s", vt_r->rundir, name, FF_SOCK_NAME);
	x->ch = fx_connect(path);
	if (x->ch < 0)
		return -1;
	st = hello(x->ch, "shim");
	if (st)
		goto out_close;
	req.body_case = FF__REQUEST__BODY_VERBS_OPEN;
	req.verbs_open = &m;
	rep = vt_call(x->ch, &req, NULL, 0, fds, &n);
	st = rep ? (int)rep->status : -1;
	if (!st && n == 2) {
		x->fd = fds[0];
		x->afd = fds[1];
		n = 0;
	} else if (!st) {
		st = -1;
	}
	ff_close_fds(fds, n);
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	if (!st)
		st = ctx_init(x);
	if (!st)
		return 0;
out_close:
	vt_close(x);
	return st;
}

void vt_close(struct vt_ctx *x)
{
	ff_close_fds(&x->fd, 1);
	ff_close_fds(&x->afd, 1);
	ff_close_fds(&x->ch, 1);
	vt_loop();
}

/* ---- verbs requests ---- */

/* One request whose reply is a VerbsObjReply: the errno, the reply's
 * scalars in out, its first fd in *rfd (or closed). */
static int obj_call(struct vt_ctx *x, Ff__Request *req, const int *fds, int nfds,
		    Ff__VerbsObjReply *out, int *rfd)
{
	int rfds[FF_MAX_FDS], n = 0, err;
	Ff__Reply *rep = vt_call(x->fd, req, fds, nfds, rfds, &n);

	vt_status = rep ? (int)rep->status : -1;
	if (!rep)
		return EPIPE;
	if (rep->status == FF__STATUS__ST_OK)
		err = 0;
	else if (rep->body_case == FF__REPLY__BODY_VERBS_OBJ && rep->verbs_obj->err)
		err = (int)rep->verbs_obj->err;
	else
		err = EIO;
	if (!err && out && rep->body_case == FF__REPLY__BODY_VERBS_OBJ) {
		*out = *rep->verbs_obj;
		out->caps = NULL;
	}
	if (!err && rfd && n > 0) {
		*rfd = rfds[0];
		rfds[0] = -1;
	}
	ff_close_fds(rfds, n);
	ff__reply__free_unpacked(rep, NULL);
	return err;
}

int vt_alloc_pd(struct vt_ctx *x, uint32_t *pd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsAllocPd m = FF__VERBS_ALLOC_PD__INIT;
	Ff__VerbsObjReply ob;
	int err;

	req.body_case = FF__REQUEST__BODY_VERBS_ALLOC_PD;
	req.verbs_alloc_pd = &m;
	err = obj_call(x, &req, NULL, 0, &ob, NULL);
	if (!err && pd)
		*pd = ob.handle;
	return err;
}

static int mem_req(struct vt_ctx *x, uint64_t addr, uint64_t len, bool remove, int memfd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsMemAdd m = FF__VERBS_MEM_ADD__INIT;

	m.addr = addr;
	m.length = len;
	m.remove = remove;
	req.body_case = FF__REQUEST__BODY_VERBS_MEM_ADD;
	req.verbs_mem_add = &m;
	return obj_call(x, &req, &memfd, memfd >= 0 ? 1 : 0, NULL, NULL);
}

int vt_mem_add(struct vt_ctx *x, uint64_t addr, uint64_t len, int memfd)
{
	return mem_req(x, addr, len, false, memfd);
}

int vt_mem_remove(struct vt_ctx *x, uint64_t addr, uint64_t len)
{
	return mem_req(x, addr, len, true, -1);
}

int vt_reg_mr(struct vt_ctx *x, uint32_t pd, uint64_t addr, uint64_t len, uint32_t access,
	      uint32_t *mr, uint32_t *lkey, uint32_t *rkey)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsRegMr m = FF__VERBS_REG_MR__INIT;
	Ff__VerbsObjReply ob;
	int err;

	m.pd = pd;
	m.addr = addr;
	m.length = len;
	m.iova = addr;
	m.access = access;
	req.body_case = FF__REQUEST__BODY_VERBS_REG_MR;
	req.verbs_reg_mr = &m;
	err = obj_call(x, &req, NULL, 0, &ob, NULL);
	if (!err) {
		if (mr)
			*mr = ob.handle;
		if (lkey)
			*lkey = ob.lkey;
		if (rkey)
			*rkey = ob.rkey;
	}
	return err;
}

int vt_create_chan(struct vt_ctx *x, uint32_t *ch, int *fd)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateChannel m = FF__VERBS_CREATE_CHANNEL__INIT;
	Ff__VerbsObjReply ob;
	int err;

	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_CHANNEL;
	req.verbs_create_channel = &m;
	err = obj_call(x, &req, NULL, 0, &ob, fd);
	if (!err && ch)
		*ch = ob.handle;
	return err;
}

static int cq_req(struct vt_ctx *x, uint32_t cqe, uint32_t chan, uint64_t cookie, uint32_t *cq,
		  uint32_t *got_cqe, int *ring)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateCq m = FF__VERBS_CREATE_CQ__INIT;
	Ff__VerbsObjReply ob;
	int err;

	m.cqe = cqe;
	m.channel = chan;
	m.cookie = cookie;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_CQ;
	req.verbs_create_cq = &m;
	err = obj_call(x, &req, NULL, 0, &ob, ring);
	if (!err && cq)
		*cq = ob.handle;
	if (!err && got_cqe)
		*got_cqe = ob.cqe;
	return err;
}

int vt_create_cq(struct vt_ctx *x, uint32_t cqe, uint32_t chan, uint64_t cookie, uint32_t *cq,
		 uint32_t *got_cqe)
{
	return cq_req(x, cqe, chan, cookie, cq, got_cqe, NULL);
}

int vt_create_cq_ring(struct vt_ctx *x, uint32_t cqe, uint32_t chan, uint64_t cookie,
		      uint32_t *cq, int *ring)
{
	return cq_req(x, cqe, chan, cookie, cq, NULL, ring);
}

static int srq_req(struct vt_ctx *x, uint32_t pd, uint32_t max_wr, uint32_t limit, uint32_t *srq,
		   int *ring)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateSrq m = FF__VERBS_CREATE_SRQ__INIT;
	Ff__VerbsObjReply ob;
	int err;

	m.pd = pd;
	m.max_wr = max_wr;
	m.max_sge = 1;
	m.srq_limit = limit;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_SRQ;
	req.verbs_create_srq = &m;
	err = obj_call(x, &req, NULL, 0, &ob, ring);
	if (!err && srq)
		*srq = ob.handle;
	return err;
}

int vt_create_srq(struct vt_ctx *x, uint32_t pd, uint32_t max_wr, uint32_t limit, uint32_t *srq)
{
	return srq_req(x, pd, max_wr, limit, srq, NULL);
}

int vt_create_srq_ring(struct vt_ctx *x, uint32_t pd, uint32_t max_wr, uint32_t *srq, int *ring)
{
	return srq_req(x, pd, max_wr, 0, srq, ring);
}

int vt_modify_srq(struct vt_ctx *x, uint32_t srq, uint32_t mask, uint32_t max_wr, uint32_t limit,
		  uint32_t *got_limit)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsModifySrq m = FF__VERBS_MODIFY_SRQ__INIT;
	Ff__VerbsObjReply ob;
	int err;

	m.srq = srq;
	m.mask = mask;
	m.max_wr = max_wr;
	m.srq_limit = limit;
	req.body_case = FF__REQUEST__BODY_VERBS_MODIFY_SRQ;
	req.verbs_modify_srq = &m;
	err = obj_call(x, &req, NULL, 0, &ob, NULL);
	if (!err && got_limit)
		*got_limit = ob.srq_limit;
	return err;
}

int vt_create_qp(struct vt_ctx *x, uint32_t pd, uint32_t scq, uint32_t rcq, uint32_t srq,
		 uint32_t type, uint32_t *qp, uint32_t *qpn)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateQp m = FF__VERBS_CREATE_QP__INIT;
	Ff__VerbsQpCaps caps = FF__VERBS_QP_CAPS__INIT;
	Ff__VerbsObjReply ob;
	int err;

	caps.max_send_wr = 16;
	caps.max_recv_wr = 16;
	caps.max_send_sge = 2;
	caps.max_recv_sge = 2;
	caps.max_inline_data = 64;
	m.pd = pd;
	m.send_cq = scq;
	m.recv_cq = rcq;
	m.srq = srq;
	m.qp_type = type;
	m.caps = &caps;
	m.cookie = 0xc00c1e;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_QP;
	req.verbs_create_qp = &m;
	err = obj_call(x, &req, NULL, 0, &ob, NULL);
	if (!err && qp)
		*qp = ob.handle;
	if (!err && qpn)
		*qpn = ob.qp_num;
	return err;
}

int vt_destroy(struct vt_ctx *x, uint32_t kind, uint32_t handle)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsDestroy m = FF__VERBS_DESTROY__INIT;

	m.kind = kind;
	m.handle = handle;
	req.body_case = FF__REQUEST__BODY_VERBS_DESTROY;
	req.verbs_destroy = &m;
	return obj_call(x, &req, NULL, 0, NULL, NULL);
}

int vt_qp_new(struct vt_ctx *x, struct vt_qp *q)
{
	int err = vt_alloc_pd(x, &q->pd);

	if (!err)
		err = vt_create_cq(x, 32, 0, 0, &q->cq, NULL);
	if (!err)
		err = vt_create_qp(x, q->pd, q->cq, q->cq, 0, IBV_QPT_RC, &q->qp, &q->qpn);
	return err;
}

/* ---- QP attributes ---- */

int vt_modify_qp(struct vt_ctx *x, uint32_t qp, Ff__VerbsQpAttr *m)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsModifyQp mq = FF__VERBS_MODIFY_QP__INIT;

	mq.qp = qp;
	mq.attr = m;
	req.body_case = FF__REQUEST__BODY_VERBS_MODIFY_QP;
	req.verbs_modify_qp = &mq;
	return obj_call(x, &req, NULL, 0, NULL, NULL);
}

int vt_qp_init(struct vt_ctx *x, uint32_t qp)
{
	Ff__VerbsQpAttr m = FF__VERBS_QP_ATTR__INIT;

	m.mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
	m.qp_state = IBV_QPS_INIT;
	m.port_num = 1;
	m.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
	return vt_modify_qp(x, qp, &m);
}

int vt_qp_rtr(struct vt_ctx *x, uint32_t qp, const uint8_t gid[16], uint32_t dest_qpn)
{
	Ff__VerbsQpAttr m = FF__VERBS_QP_ATTR__INIT;
	Ff__VerbsAh ah = FF__VERBS_AH__INIT;

	ah.dgid.data = (uint8_t *)gid;
	ah.dgid.len = 16;
	ah.is_global = true;
	ah.port_num = 1;
	ah.sgid_index = 1;
	ah.hop_limit = 7;
	m.mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
		 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	m.qp_state = IBV_QPS_RTR;
	m.ah_attr = &ah;
	m.path_mtu = IBV_MTU_1024;
	m.dest_qp_num = dest_qpn;
	m.rq_psn = 0x1234;
	m.max_dest_rd_atomic = 1;
	m.min_rnr_timer = 12;
	return vt_modify_qp(x, qp, &m);
}

int vt_qp_rts(struct vt_ctx *x, uint32_t qp)
{
	Ff__VerbsQpAttr m = FF__VERBS_QP_ATTR__INIT;

	m.mask = IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
		 IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
	m.qp_state = IBV_QPS_RTS;
	m.sq_psn = 0x4321;
	m.timeout = 14;
	m.retry_cnt = 7;
	m.rnr_retry = 7;
	m.max_rd_atomic = 1;
	return vt_modify_qp(x, qp, &m);
}

Ff__VerbsQpAttr *vt_query_qp(struct vt_ctx *x, uint32_t qp, Ff__Reply **rep, int *err)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsQueryQp m = FF__VERBS_QUERY_QP__INIT;

	m.qp = qp;
	m.mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_DEST_QPN | IBV_QP_PATH_MTU;
	req.body_case = FF__REQUEST__BODY_VERBS_QUERY_QP;
	req.verbs_query_qp = &m;
	*rep = vt_call(x->fd, &req, NULL, 0, NULL, NULL);
	vt_status = *rep ? (int)(*rep)->status : -1;
	if (*rep && (*rep)->body_case == FF__REPLY__BODY_VERBS_QP_ATTR) {
		*err = 0;
		return (*rep)->verbs_qp_attr;
	}
	*err = !*rep ? EPIPE
	       : (*rep)->body_case == FF__REPLY__BODY_VERBS_OBJ ? (int)(*rep)->verbs_obj->err
								 : EIO;
	return NULL;
}

/* ---- GIDs ---- */

void vt_gid_v4(uint8_t gid[16], const char *ip)
{
	memset(gid, 0, 16);
	gid[10] = gid[11] = 0xff;
	if (inet_pton(AF_INET, ip, gid + 12) != 1)
		abort();
}

void vt_gid_ll(uint8_t gid[16], const char *ip)
{
	memset(gid, 0, 16);
	gid[0] = 0xfe;
	gid[1] = 0x80;
	gid[11] = 0xff;
	if (inet_pton(AF_INET, ip, gid + 12) != 1)
		abort();
}
