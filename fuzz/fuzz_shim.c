/* libFuzzer target: the shim's handling of what the router answers its
 * verbs requests with (libffshim/verbs/, common/vconv.c): the reply
 * exchange of ffs_sockcall (ids, fds, sizes), the replies' bodies as the
 * verbs calls read them, and the ring memfds that come with them, mapped
 * (ffs_vring_map) and then posted to and polled as an app's verbs calls
 * do, with the router's indices taken from the input. A scripted router:
 * the replies are queued on the router's end of a context socket before
 * the shim sends its request.
 * Records (harness.h), by aux >> 5:
 *   0: a reply datagram, with the fds aux & 7 asks for (harness.h), or
 *      with aux & 8 a memfd holding the ring image (below); with aux & 16
 *      its id is set to the one the next call will wait for;
 *   1: the ring image: these bytes, at least two pages (zero-padded);
 *   2: a call: byte 0 % 5 picks CreateQp, CreateCq, CreateSrq, QueryQp
 *      or VerbsOpen; a reply with id 0 (ST_INTERNAL) is queued after the
 *      input's replies, so the shim never waits; the shim reads the
 *      replies and its request is dropped. The reply it took is read as
 *      that call reads it; a ring that comes with it and is accepted is
 *      posted to until full (send slots with the most gather entries and
 *      inline bytes its geometry allows, receive slots likewise), or
 *      polled with the router's producer index at bytes 1..4;
 *   3: an RdmaCmEvent: its parameters and addresses read as
 *      rdma_get_cm_event reads them (ff_vconn_param_from_msg,
 *      ffs_cm_set_addr).
 * Oracles: ASan/UBSan, and the fd count back to its baseline. */
#include "harness.h"

#include "fdpass.h"
#include "msg.h"
#include "verbs/cm.h"
#include "verbs/verbs-internal.h"

#include <ff/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define IMAGE_MIN (2 * FF_VRING_HDR)

static struct ffs_vctx x;
static int router = -1;
static uint8_t *image;
static size_t image_len;
static int fds_base;

static int image_fd(void)
{
	int fd = memfd_create("fuzz-vring", MFD_CLOEXEC);
	size_t len = image_len > IMAGE_MIN ? image_len : IMAGE_MIN;

	if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
		abort();
	if (image_len && pwrite(fd, image, image_len, 0) != (ssize_t)image_len)
		abort();
	return fd;
}

static void reply(const struct fh_rec *r)
{
	static uint8_t buf[FF_MSG_MAX + 1];
	int fds[4], n = 0;
	size_t len = r->len;

	memcpy(buf, r->p, len);
	if (r->aux & 16) {
		Ff__Reply *m = (Ff__Reply *)ff_msg_unpack(&ff__reply__descriptor, buf, len);

		if (m) {
			m->id = x.next_id + 1;
			if (ff_msg_size(&m->base) <= FF_MSG_MAX)
				len = ff_msg_pack(&m->base, buf);
			ff__reply__free_unpacked(m, NULL);
		}
	}
	if (r->aux & 8)
		fds[n++] = image_fd();
	else
		n = fh_make_fds(r->aux & 7, fds);
	fh_send_raw(router, buf, len, fds, n);
	ff_close_fds(fds, n);
}

static void sentinel(void)
{
	Ff__Reply m = FF__REPLY__INIT;

	m.status = FF__STATUS__ST_INTERNAL;
	fh_seed_msg_send(router, &m.base);
}

/* ---- what the calls do with a reply ---- */

static void post_sends(struct ffs_vqp *q)
{
	static uint8_t data[FF_VRING_MAX_INLINE];
	struct ibv_sge sg[2] = {{.addr = (uintptr_t)data, .length = 16}, {.addr = (uintptr_t)data, .length = 16}};
	struct ibv_send_wr wr = {.sg_list = sg, .opcode = IBV_WR_SEND}, *bad;

	wr.num_sge = q->sq.max_sge < 2 ? (int)q->sq.max_sge : 2;
	for (int i = 0; i < 64 && ffs_vpost_send(&q->qp, &wr, &bad) == 0; i++)
		;
	sg[0].length = q->sq.max_inline < sizeof(data) ? q->sq.max_inline : sizeof(data);
	wr.num_sge = 1;
	wr.send_flags = IBV_SEND_INLINE;
	for (int i = 0; i < 64 && ffs_vpost_send(&q->qp, &wr, &bad) == 0; i++)
		;
}

static void post_recvs(struct ibv_qp *qp, struct ibv_srq *srq, uint32_t max_sge)
{
	struct ibv_sge sg[4] = {{.length = 8}};
	struct ibv_recv_wr wr = {.sg_list = sg}, *bad;

	wr.num_sge = max_sge < 4 ? (int)max_sge : 4;
	for (int i = 0; i < 64; i++)
		if ((qp ? ffs_vpost_recv(qp, &wr, &bad) : ffs_vpost_srq_recv(srq, &wr, &bad)) != 0)
			break;
}

static void use_qp(int fd)
{
	struct ffs_vqp *q = calloc(1, sizeof(*q));

	if (!q || ffs_vring_map(fd, FF_VOBJ_QP, &q->ring) < 0) {
		free(q);
		return;
	}
	q->sq = q->ring.hdr->sq;
	q->rq = q->ring.hdr->rq;
	pthread_spin_init(&q->sq_lock, PTHREAD_PROCESS_PRIVATE);
	pthread_spin_init(&q->rq_lock, PTHREAD_PROCESS_PRIVATE);
	q->qp.context = &x.vc.context;
	q->qp.state = IBV_QPS_RTS;
	post_sends(q);
	post_recvs(&q->qp, NULL, q->rq.max_sge);
	ffs_vring_unmap(&q->ring);
	free(q);
}

static void use_srq(int fd)
{
	struct ffs_vsrq *s = calloc(1, sizeof(*s));

	if (!s || ffs_vring_map(fd, FF_VOBJ_SRQ, &s->ring) < 0) {
		free(s);
		return;
	}
	s->g = s->ring.hdr->rq;
	pthread_spin_init(&s->lock, PTHREAD_PROCESS_PRIVATE);
	s->srq.context = &x.vc.context;
	post_recvs(NULL, &s->srq, s->g.max_sge);
	ffs_vring_unmap(&s->ring);
	free(s);
}

static void use_cq(int fd, uint32_t prod)
{
	struct ffs_vcq *q = calloc(1, sizeof(*q));
	struct ibv_wc wc[64];

	if (!q || ffs_vring_map(fd, FF_VOBJ_CQ, &q->ring) < 0) {
		free(q);
		return;
	}
	q->g = q->ring.hdr->cq;
	pthread_spin_init(&q->lock, PTHREAD_PROCESS_PRIVATE);
	q->cq.context = &x.vc.context;
	__atomic_store_n(&q->ring.hdr->cqi.prod, prod, __ATOMIC_RELEASE);
	for (int i = 0; i < 4; i++)
		ffs_vpoll_cq(&q->cq, 64, wc);
	ffs_vring_unmap(&q->ring);
	free(q);
}

static void call(const struct fh_rec *r)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateQp cq = FF__VERBS_CREATE_QP__INIT;
	Ff__Reply *rep = NULL;
	uint32_t prod = 0;
	uint8_t what = r->len ? r->p[0] % 5 : 0;
	int fd = -1;

	if (r->len >= 5)
		memcpy(&prod, r->p + 1, 4);
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_QP; /* the body does not matter */
	req.verbs_create_qp = &cq;
	sentinel();
	if (ffs_vcall(&x, &req, NULL, 0, &rep, &fd) == 0) {
		const Ff__VerbsObjReply *o =
		    rep->body_case == FF__REPLY__BODY_VERBS_OBJ ? rep->verbs_obj : NULL;
		struct ibv_qp_attr qa;
		struct ibv_qp_cap cap;
		struct ffs_vinfo info;

		if (what == 0 && o && o->caps)
			ff_vqp_cap_from_msg(o->caps, &cap);
		if (what == 3 && rep->body_case == FF__REPLY__BODY_VERBS_QP_ATTR)
			ff_vqp_attr_from_msg(rep->verbs_qp_attr, &qa);
		if (what == 4 && rep->body_case == FF__REPLY__BODY_VERBS_OPEN)
			ffs_vinfo_from_reply(rep->verbs_open, &info);
		ff__reply__free_unpacked(rep, NULL);
		if (fd >= 0 && what == 0)
			use_qp(fd);
		else if (fd >= 0 && what == 1)
			use_cq(fd, prod);
		else if (fd >= 0 && what == 2)
			use_srq(fd);
		else
			ff_close_fds(&fd, 1);
	}
	fh_drain(router); /* the request, and replies nobody took */
	fh_drain(x.sock);
}

static void cm_event(const struct fh_rec *r)
{
	Ff__RdmaCmEvent *m =
	    (Ff__RdmaCmEvent *)ff_msg_unpack(&ff__rdma_cm_event__descriptor, r->p, r->len);
	struct ffs_cmevent *e = calloc(1, sizeof(*e));
	struct sockaddr_storage ss;
	struct rdma_conn_param *c;

	if (m && e) {
		c = &e->ev.param.conn;
		if (m->param && ff_vconn_param_from_msg(m->param, c) == 0 && c->private_data_len)
			memcpy(e->pdata, c->private_data, c->private_data_len);
		if (m->local)
			ffs_cm_set_addr(&ss, m->local);
		if (m->peer)
			ffs_cm_set_addr(&ss, m->peer);
	}
	free(e);
	if (m)
		ff__rdma_cm_event__free_unpacked(m, NULL);
}

/* ---- seeds ---- */

static void seed_obj(Ff__VerbsObjReply *o, uint8_t what, const void *ring, size_t len)
{
	Ff__Reply rep = FF__REPLY__INIT;
	uint8_t c[5] = {what, 4, 0, 0, 0};

	rep.body_case = FF__REPLY__BODY_VERBS_OBJ;
	rep.verbs_obj = o;
	fh_seed_rec(ring, len, 1 << 5);
	fh_seed_msg(&rep.base, 8 | 16);
	fh_seed_rec(c, sizeof(c), 2 << 5);
}

static void seeds(const char *dir)
{
	static uint8_t ring[IMAGE_MIN];
	struct ff_vring_hdr *h = (struct ff_vring_hdr *)ring;
	Ff__VerbsObjReply o = FF__VERBS_OBJ_REPLY__INIT;
	Ff__VerbsQpCaps caps = FF__VERBS_QP_CAPS__INIT;
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__VerbsOpenReply op = FF__VERBS_OPEN_REPLY__INIT;
	Ff__RdmaCmEvent ev = FF__RDMA_CM_EVENT__INIT;
	Ff__RdmaConnParam pm = FF__RDMA_CONN_PARAM__INIT;
	uint8_t pdata[8] = "hi", open[1] = {4};

	h->magic = FF_VRING_MAGIC;
	h->kind = FF_VOBJ_QP;
	h->sq = (struct ff_vq_geom){.size = 8, .stride = 256, .off = FF_VRING_HDR, .max_sge = 2,
				    .max_inline = 64};
	h->rq = (struct ff_vq_geom){.size = 8, .stride = 128, .off = FF_VRING_HDR + 2048,
				    .max_sge = 2};
	o.handle = 1;
	o.qp_num = 0x11;
	caps.max_send_wr = caps.max_recv_wr = 8;
	caps.max_send_sge = caps.max_recv_sge = 2;
	caps.max_inline_data = 64;
	o.caps = &caps;
	fh_seed_begin(dir, "qp", -1);
	seed_obj(&o, 0, ring, sizeof(ring));
	fh_seed_end();
	memset(ring, 0, sizeof(ring));
	h->magic = FF_VRING_MAGIC;
	h->kind = FF_VOBJ_CQ;
	h->cq = (struct ff_vq_geom){.size = 16, .stride = 64, .off = FF_VRING_HDR};
	o.caps = NULL;
	o.cqe = 16;
	fh_seed_begin(dir, "cq", -1);
	seed_obj(&o, 1, ring, sizeof(ring));
	fh_seed_end();
	memset(ring, 0, sizeof(ring));
	h->magic = FF_VRING_MAGIC;
	h->kind = FF_VOBJ_SRQ;
	h->rq = (struct ff_vq_geom){.size = 16, .stride = 128, .off = FF_VRING_HDR, .max_sge = 2};
	o.max_wr = 16;
	o.max_sge = 2;
	fh_seed_begin(dir, "srq", -1);
	seed_obj(&o, 2, ring, sizeof(ring));
	fh_seed_end();
	op.name = "ffnet0";
	rep.body_case = FF__REPLY__BODY_VERBS_OPEN;
	rep.verbs_open = &op;
	fh_seed_begin(dir, "open", -1);
	fh_seed_msg(&rep.base, 16);
	fh_seed_rec(open, sizeof(open), 2 << 5);
	fh_seed_end();
	pm.private_data.data = pdata;
	pm.private_data.len = sizeof(pdata);
	ev.event = 4;
	ev.param = &pm;
	fh_seed_begin(dir, "cm-event", -1);
	fh_seed_msg(&ev.base, 3 << 5);
	fh_seed_end();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int sv[2];

	(void)argc;
	(void)argv;
	fh_seeds_if_asked(seeds);
	ffs_init(); /* the real calls' table, as in a preloaded program */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	x.sock = sv[0];
	router = sv[1];
	x.dbfd = -1;
	x.ufd = -1;
	pthread_mutex_init(&x.lock, NULL);
	pthread_mutex_init(&x.objs_lock, NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh_in in = {data, size};
	struct fh_rec r;
	int fds;

	/* per input: libFuzzer itself opens pipes to its symbolizer between
	 * inputs */
	fds_base = fh_nfds();
	while (fh_next(&in, &r)) {
		switch (r.aux >> 5) {
		case 0:
			reply(&r);
			break;
		case 1:
			free(image);
			image = malloc(r.len ? r.len : 1);
			memcpy(image, r.p, r.len);
			image_len = r.len;
			break;
		case 2:
			call(&r);
			break;
		case 3:
			cm_event(&r);
			break;
		}
	}
	fh_drain(router);
	fh_drain(x.sock);
	free(image);
	image = NULL;
	image_len = 0;
	fds = fh_nfds();
	if (fds != fds_base) {
		fprintf(stderr, "oracle: %d fds open after the input, %d before\n", fds, fds_base);
		fh_list_fds();
		abort();
	}
	return 0;
}
