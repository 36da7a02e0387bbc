/* ffrouter/rdma/qp-xhost.c between two in-process routers, A and B, on the
 * fake device, with the cluster secret and their ingresses on loopback: a
 * modify_qp(RTR) towards a QP of a container on the other host waits for
 * that host's router, which says whether the QP is the addressed
 * container's and free; only then does the device see the modify. A
 * refusal, or an answer that fails its MAC, is EINVAL; a router that dies
 * or stays silent is an error within --xconnect-ms, and the asking router
 * goes on serving everyone else meanwhile. Host F is played by the test
 * itself (a TCP listener), to answer what no router would. */
#include "../xhost/xhtest.h"
#include "vt.h"

#include <sys/socket.h>

#define XCONNECT_MS 400

static struct event_base *base;
static struct ffr_router *ra, *rb;
static struct vt_ctx xa, xa2, xb, xb2;
static int ffd = -1; /* host F's "router" */
static uint8_t ftag[FFR_MAC_LEN]; /* the MAC of the last preamble F took */

/* ---- set-up ---- */

static struct ffr_router *router(const char *host)
{
	struct ffr_xhost_config xc = {.xconnect_ms = XCONNECT_MS};
	struct ffr_rdma_config rc = {.path = FFR_VPATH_RING};
	struct ffr_router *r = xt_router(base, host, "127.0.0.1", &xc);

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL_FATAL(ffr_rdma_attach_ibv(r, &rc, &fake_ibv), 0);
	CU_ASSERT_EQUAL_FATAL(ffr_cm_attach(r), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ffr_rdma_of(r));
	return r;
}

static void host(struct ffr_router *r, const char *name, struct ff_sa addr)
{
	CU_ASSERT_FATAL(ffr_host_add(r, name, &addr, true, NULL) == 0);
}

/* Opens a verbs context of container name on router r. */
static void open_ctx(struct ffr_router *r, const char *name, struct vt_ctx *x)
{
	vt_r = r;
	vt_rd = ffr_rdma_of(r);
	CU_ASSERT_EQUAL_FATAL(vt_open(name, x), FF__STATUS__ST_OK);
}

/* Host A: a (10.1.0.1), a2 (10.1.0.2); host B: b (10.2.0.1), b2 (10.2.0.2);
 * host C (B's map only): c (10.3.0.1); host F (A's map only, the test's
 * listener): f (10.6.0.1). Every host has RDMA. */
static void up(void)
{
	struct ff_sa fa = xt_sa("127.0.0.1", xt_free_port("127.0.0.1"));

	base = event_base_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	vt_base = base;
	fake_ibv_reset();
	ra = router("A");
	rb = router("B");
	host(ra, "B", xt_ingress(rb));
	host(rb, "A", xt_ingress(ra));
	host(rb, "C", xt_sa("192.0.2.3", 7000));
	ffd = ffr_listen_tcp(&fa, 1024, false);
	CU_ASSERT_FATAL(ffd >= 0);
	host(ra, "F", fa);
	xt_container(ra, "a", "10.1.0.1", NULL, FFR_POLICY_CONTAINER);
	xt_container(ra, "a2", "10.1.0.2", NULL, FFR_POLICY_CONTAINER);
	xt_container(ra, "b", "10.2.0.1", "B", FFR_POLICY_CONTAINER);
	xt_container(ra, "b2", "10.2.0.2", "B", FFR_POLICY_CONTAINER);
	xt_container(ra, "f", "10.6.0.1", "F", FFR_POLICY_CONTAINER);
	xt_container(rb, "b", "10.2.0.1", NULL, FFR_POLICY_CONTAINER);
	xt_container(rb, "b2", "10.2.0.2", NULL, FFR_POLICY_CONTAINER);
	xt_container(rb, "a", "10.1.0.1", "A", FFR_POLICY_CONTAINER);
	xt_container(rb, "a2", "10.1.0.2", "A", FFR_POLICY_CONTAINER);
	xt_container(rb, "c", "10.3.0.1", "C", FFR_POLICY_CONTAINER);
	open_ctx(ra, "a", &xa);
	open_ctx(ra, "a2", &xa2);
	open_ctx(rb, "b", &xb);
	open_ctx(rb, "b2", &xb2);
}

static void down(void)
{
	vt_close(&xa);
	vt_close(&xa2);
	vt_close(&xb);
	vt_close(&xb2);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
	ip_router_free(ra);
	ip_router_free(rb);
	ra = rb = vt_r = NULL;
	vt_rd = NULL;
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_CTX), 0);
	CU_ASSERT_EQUAL(fake_ibv_live_objs(), 0);
	fake_ibv_clear();
	ff_close_fds(&ffd, 1);
	event_base_free(base);
	base = vt_base = NULL;
}

/* ---- QPs ---- */

static struct fake_qp *fq(uint32_t qpn)
{
	struct fake_qp *q = fake_ibv_qp(qpn);

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	return q;
}

/* The router's view of QP qpn of r. */
static struct ffr_vqp *rq(struct ffr_router *r, uint32_t qpn)
{
	struct ffr_vqp *q = ffr_vqp_by_num(ffr_rdma_of(r), qpn);

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	return q;
}

/* A QP of x in INIT. */
static void qp_ready(struct vt_ctx *x, struct vt_qp *q)
{
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(x, q), 0);
	CU_ASSERT_EQUAL_FATAL(vt_qp_init(x, q->qp), 0);
}

/* Sends modify_qp(RTR) of x's QP towards QP dest of container ip; the
 * reply comes with rtr_wait. */
static void rtr_send(struct vt_ctx *x, const struct vt_qp *q, const char *ip, uint32_t dest)
{
	static uint64_t id = 1000;
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsModifyQp mq = FF__VERBS_MODIFY_QP__INIT;
	Ff__VerbsQpAttr m = FF__VERBS_QP_ATTR__INIT;
	Ff__VerbsAh ah = FF__VERBS_AH__INIT;
	uint8_t g[16];

	vt_gid_v4(g, ip);
	ah.dgid.data = g;
	ah.dgid.len = 16;
	ah.is_global = true;
	ah.port_num = 1;
	ah.sgid_index = 1;
	m.mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
		 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	m.qp_state = IBV_QPS_RTR;
	m.ah_attr = &ah;
	m.path_mtu = IBV_MTU_1024;
	m.dest_qp_num = dest;
	m.max_dest_rd_atomic = 1;
	m.min_rnr_timer = 12;
	mq.qp = q->qp;
	mq.attr = &m;
	req.id = ++id;
	req.body_case = FF__REQUEST__BODY_VERBS_MODIFY_QP;
	req.verbs_modify_qp = &mq;
	CU_ASSERT_FATAL(ff_msg_send(x->fd, &req.base, NULL, 0) == 0);
}

/* Runs both routers until x's reply comes (ms at most): the errno the
 * app's call returns, or -1 if none came. */
static int reply_wait(struct vt_ctx *x, int ms)
{
	uint8_t buf[FF_MSG_MAX];
	ProtobufCMessage *m = NULL;
	int64_t end = xt_now_ms() + ms;
	int rfds[FF_MAX_FDS], nr = 0, err;
	Ff__Reply *rep;

	for (;;) {
		struct pollfd p = {.fd = x->fd, .events = POLLIN};

		if (poll(&p, 1, 0) == 1)
			break;
		if (xt_now_ms() >= end)
			return -1;
		xt_pump(base, 2);
	}
	if (ff_msg_recv(x->fd, &ff__reply__descriptor, buf, sizeof(buf), &m, rfds, FF_MAX_FDS,
			&nr, MSG_DONTWAIT) != 1)
		return -1;
	ff_close_fds(rfds, nr);
	rep = (Ff__Reply *)m;
	err = !rep->status ? 0
	      : rep->body_case == FF__REPLY__BODY_VERBS_OBJ ? (int)rep->verbs_obj->err
							   : EIO;
	ff__reply__free_unpacked(rep, NULL);
	return err;
}

static int rtr(struct vt_ctx *x, const struct vt_qp *q, const char *ip, uint32_t dest)
{
	rtr_send(x, q, ip, dest);
	return reply_wait(x, 3000);
}

/* The QP has no destination, in the device and in the router. */
static void assert_unconnected(struct ffr_router *r, const struct vt_qp *q)
{
	struct fake_qp *f = fq(q->qpn);

	CU_ASSERT_EQUAL(f->qp.state, IBV_QPS_INIT);
	CU_ASSERT_FALSE(f->mask & (IBV_QP_AV | IBV_QP_DEST_QPN));
	CU_ASSERT_FALSE(rq(r, q->qpn)->connected);
}

/* The QP is in RTR towards QP dest of host h (whose GID is ::ffff:hip). */
static void assert_rtr(struct ffr_router *r, const struct vt_qp *q, const char *h,
		       const char *hip, uint32_t dest)
{
	struct fake_qp *f = fq(q->qpn);
	struct ffr_vqp *v = rq(r, q->qpn);
	uint8_t g[16];

	vt_gid_host(g, hip);
	CU_ASSERT_EQUAL(f->qp.state, IBV_QPS_RTR);
	CU_ASSERT_EQUAL(f->attr.dest_qp_num, dest);
	CU_ASSERT_EQUAL(memcmp(f->attr.ah_attr.grh.dgid.raw, g, 16), 0);
	CU_ASSERT_TRUE(v->connected);
	CU_ASSERT_STRING_EQUAL(v->dest_host, h);
	CU_ASSERT_EQUAL(v->dest_qpn, dest);
}

/* ---- the checks ---- */

/* The main case: each side's RTR towards the other's QP, which exists and
 * is free (or talks to it); each router asked the other first. */
static void test_rtr_free_peer(void)
{
	struct vt_qp qa, qb;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xb, &qb);
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.2.0.1", qb.qpn), 0);
	assert_rtr(ra, &qa, "B", "127.0.0.1", qb.qpn);
	CU_ASSERT_EQUAL(fq(qb.qpn)->qp.state, IBV_QPS_INIT); /* B only answered */
	CU_ASSERT_EQUAL(rtr(&xb, &qb, "10.1.0.1", qa.qpn), 0);
	assert_rtr(rb, &qb, "A", "127.0.0.1", qa.qpn);
	CU_ASSERT_EQUAL(vt_qp_rts(&xa, qa.qp), 0);
	CU_ASSERT_EQUAL(vt_qp_rts(&xb, qb.qp), 0);
	CU_ASSERT_EQUAL(fq(qa.qpn)->qp.state, IBV_QPS_RTS);
	CU_ASSERT_EQUAL(fq(qb.qpn)->qp.state, IBV_QPS_RTS);
	/* the other order: B's QP first, then A's */
	qp_ready(&xa2, &qa);
	qp_ready(&xb2, &qb);
	CU_ASSERT_EQUAL(rtr(&xb2, &qb, "10.1.0.2", qa.qpn), 0);
	CU_ASSERT_EQUAL(rtr(&xa2, &qa, "10.2.0.2", qb.qpn), 0);
	assert_rtr(rb, &qb, "A", "127.0.0.1", qa.qpn);
	assert_rtr(ra, &qa, "B", "127.0.0.1", qb.qpn);
	CU_ASSERT_EQUAL(ffr_xhost_stats(ra)->replies_refused, 0);
	down();
}

/* QP numbers the addressed container does not own: refused, and the device
 * never sees the modify. */
static void test_rtr_not_the_containers(void)
{
	struct vt_qp qa, qa2, qb, qb2;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xa2, &qa2);
	qp_ready(&xb, &qb);
	qp_ready(&xb2, &qb2);
	fake_ibv_reset();
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.2.0.1", 0xfffff0), EINVAL); /* no such QP */
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.2.0.1", qb2.qpn), EINVAL);  /* b2's, b's address */
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.2.0.1", qa2.qpn), EINVAL);  /* a QP of host A */
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 0);
	assert_unconnected(ra, &qa);
	/* the QP is still good for its real peer */
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.2.0.2", qb2.qpn), 0);
	down();
}

static int qp_reset(struct vt_ctx *x, const struct vt_qp *q)
{
	Ff__VerbsQpAttr m = FF__VERBS_QP_ATTR__INIT;

	m.mask = IBV_QP_STATE;
	m.qp_state = IBV_QPS_RESET;
	return vt_modify_qp(x, q->qp, &m);
}

/* A QP that talks to another QP (of either host) may not be taken. */
static void test_rtr_connected_elsewhere(void)
{
	struct vt_qp qa, qa2, qb, qb2, qb3;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xa2, &qa2);
	qp_ready(&xb, &qb);
	qp_ready(&xb2, &qb2);
	qp_ready(&xb2, &qb3);
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.2.0.1", qb.qpn), 0);
	CU_ASSERT_EQUAL(rtr(&xb, &qb, "10.1.0.1", qa.qpn), 0);
	fake_ibv_reset();
	/* qb talks to (A, qa): not to qa2; nor may b2 take qa (B asks A) */
	CU_ASSERT_EQUAL(rtr(&xa2, &qa2, "10.2.0.1", qb.qpn), EINVAL);
	CU_ASSERT_EQUAL(rtr(&xb2, &qb2, "10.1.0.1", qa.qpn), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 0);
	assert_unconnected(ra, &qa2);
	assert_unconnected(rb, &qb2);
	/* a QP connected to one of its own host's */
	CU_ASSERT_EQUAL(rtr(&xb2, &qb2, "10.2.0.2", qb3.qpn), 0); /* b2's two QPs */
	CU_ASSERT_EQUAL(rtr(&xa2, &qa2, "10.2.0.2", qb2.qpn), EINVAL);
	assert_unconnected(ra, &qa2);
	/* a QP reset talks to nobody: it may be taken again; once it chooses,
	 * its old peer on A is cut off */
	CU_ASSERT_EQUAL(qp_reset(&xb, &qb), 0);
	CU_ASSERT_EQUAL(rtr(&xa2, &qa2, "10.2.0.1", qb.qpn), 0);
	CU_ASSERT_EQUAL(vt_qp_init(&xb, qb.qp), 0);
	CU_ASSERT_EQUAL(rtr(&xb, &qb, "10.1.0.2", qa2.qpn), 0);
	CU_ASSERT_EQUAL(fq(qa.qpn)->qp.state, IBV_QPS_ERR);
	CU_ASSERT_EQUAL(fq(qa2.qpn)->qp.state, IBV_QPS_RTR);
	down();
}

/* A QP that chose a new peer: QPs still connected to it from before are cut
 * off (error state), on its host by its router, on the peer's host by the
 * router it asked. */
static void test_old_peers_cut_off(void)
{
	struct vt_qp qa, qa2, qb, qb2;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xa2, &qa2);
	qp_ready(&xb, &qb);
	qp_ready(&xb2, &qb2);
	/* while qa is free, b2's QP and a2's take it */
	CU_ASSERT_EQUAL(rtr(&xb2, &qb2, "10.1.0.1", qa.qpn), 0);
	CU_ASSERT_EQUAL(rtr(&xa2, &qa2, "10.1.0.1", qa.qpn), 0);
	/* qa chooses b's */
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.2.0.1", qb.qpn), 0);
	CU_ASSERT_EQUAL(fq(qb2.qpn)->qp.state, IBV_QPS_ERR); /* by B */
	CU_ASSERT_EQUAL(fq(qa2.qpn)->qp.state, IBV_QPS_ERR); /* by A */
	CU_ASSERT_FALSE(rq(rb, qb2.qpn)->connected);
	CU_ASSERT_FALSE(rq(ra, qa2.qpn)->connected);
	CU_ASSERT_EQUAL(fq(qb.qpn)->qp.state, IBV_QPS_INIT);
	CU_ASSERT_EQUAL(rtr(&xb, &qb, "10.1.0.1", qa.qpn), 0); /* its chosen peer agrees */
	assert_rtr(ra, &qa, "B", "127.0.0.1", qb.qpn);
	down();
}

/* ---- answers no router gives ---- */

/* Runs the routers until F has a connection with a whole preamble: the
 * connection (its preamble's MAC in ftag), or -1. */
static int f_take(void)
{
	uint8_t in[FFR_XFRAME_MAX + 2];
	size_t inlen = 0, inwant = 2;
	int64_t end = xt_now_ms() + 3000;
	int fd = -1, r = 0;

	while (xt_now_ms() < end && r == 0) {
		xt_pump(base, 2);
		if (fd < 0)
			fd = accept4(ffd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			r = ffr_xframe_read(fd, in, sizeof(in), &inlen, &inwant);
	}
	if (r != 1) {
		ff_close_fds(&fd, 1);
		return -1;
	}
	memcpy(ftag, in + inlen - FFR_MAC_LEN, FFR_MAC_LEN);
	return fd;
}

/* F answers st on fd, its reply MAC'd for tag (NULL: zeros). */
static void f_answer(int fd, const uint8_t *tag, Ff__Status st)
{
	uint8_t buf[256];
	size_t len = ffr_xreply_seal(ra, tag, st, "from F", buf, sizeof(buf));

	CU_ASSERT_FATAL(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len);
}

/* a's QP towards f's QP 42: F takes the question and answers with what
 * fn sends; the errno a gets. */
static int f_rtr(const struct vt_qp *q, void (*fn)(int fd))
{
	int fd, err;

	rtr_send(&xa, q, "10.6.0.1", 42);
	fd = f_take();
	CU_ASSERT_FATAL(fd >= 0);
	fn(fd);
	err = reply_wait(&xa, 3000);
	close(fd);
	return err;
}

static void ok_genuine(int fd)
{
	f_answer(fd, ftag, FF__STATUS__ST_OK);
}

static void ok_unsealed(int fd)
{
	f_answer(fd, NULL, FF__STATUS__ST_OK);
}

static uint8_t old_tag[FFR_MAC_LEN];

static void ok_for_another(int fd)
{
	f_answer(fd, old_tag, FF__STATUS__ST_OK);
}

static void ok_bit_flipped(int fd)
{
	uint8_t buf[256];
	size_t len = ffr_xreply_seal(ra, ftag, FF__STATUS__ST_OK, "", buf, sizeof(buf));

	buf[len - 1] ^= 1;
	CU_ASSERT_FATAL(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len);
}

/* A frame of 40 bytes that is no XReply. */
static void garbage(int fd)
{
	uint8_t g[42];

	memset(g, 0xa5, sizeof(g));
	g[0] = 0;
	g[1] = 40;
	CU_ASSERT_FATAL(send(fd, g, sizeof(g), MSG_NOSIGNAL) == (ssize_t)sizeof(g));
}

/* An answer counts only with the MAC bound to this very question. */
static void test_forged_answers(void)
{
	uint64_t refused;
	struct vt_qp q[5];

	up();
	for (int i = 0; i < 5; i++)
		qp_ready(&xa, &q[i]);
	fake_ibv_reset();
	refused = ffr_xhost_stats(ra)->replies_refused;
	CU_ASSERT_EQUAL(f_rtr(&q[0], ok_unsealed), EINVAL);
	memcpy(old_tag, ftag, sizeof(old_tag));
	CU_ASSERT_EQUAL(f_rtr(&q[1], ok_for_another), EINVAL); /* an earlier question's */
	CU_ASSERT_EQUAL(f_rtr(&q[2], ok_bit_flipped), EINVAL);
	CU_ASSERT_EQUAL(ffr_xhost_stats(ra)->replies_refused, refused + 3);
	CU_ASSERT_EQUAL(f_rtr(&q[3], garbage), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 0);
	for (int i = 0; i < 4; i++)
		assert_unconnected(ra, &q[i]);
	/* the same F, with the MAC that binds its OK to the question: taken */
	CU_ASSERT_EQUAL(f_rtr(&q[4], ok_genuine), 0);
	assert_rtr(ra, &q[4], "F", "127.0.0.1", 42);
	down();
}

static void hang_up(int fd)
{
	shutdown(fd, SHUT_RDWR);
}

static void say_nothing(int fd)
{
	(void)fd;
}

/* The other router dies, or never answers: the app gets an error, in
 * time; the router serves the others meanwhile. */
static void test_peer_router_dies(void)
{
	struct vt_qp qa, qa2, qa3;
	uint32_t pd;
	int64_t t0;
	int fd;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xa, &qa2);
	qp_ready(&xa, &qa3);
	fake_ibv_reset();
	CU_ASSERT_EQUAL(f_rtr(&qa, hang_up), EHOSTUNREACH);
	t0 = xt_now_ms();
	CU_ASSERT_EQUAL(f_rtr(&qa, say_nothing), ETIMEDOUT);
	CU_ASSERT(xt_now_ms() - t0 < 3 * XCONNECT_MS);
	/* meanwhile: a2's context is served, a's waits its turn */
	rtr_send(&xa, &qa2, "10.6.0.1", 42);
	fd = f_take();
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(vt_alloc_pd(&xa2, &pd), 0);
	CU_ASSERT_EQUAL(reply_wait(&xa, 50), -1);
	ok_genuine(fd);
	CU_ASSERT_EQUAL(reply_wait(&xa, 3000), 0);
	close(fd);
	/* nobody listens any more */
	ff_close_fds(&ffd, 1);
	CU_ASSERT_EQUAL(rtr(&xa, &qa3, "10.6.0.1", 42), EHOSTUNREACH);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 1); /* qa2's */
	assert_unconnected(ra, &qa);
	assert_unconnected(ra, &qa3);
	down();
}

/* The app goes while its question is out: the answer finds no one, the
 * context goes. The router stops while one is out: dropped. */
static void test_app_gone_mid_check(void)
{
	struct vt_qp qa, qa2;
	int fd;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xa2, &qa2);
	rtr_send(&xa, &qa, "10.6.0.1", 42);
	fd = f_take();
	CU_ASSERT_FATAL(fd >= 0);
	vt_close(&xa);
	ok_genuine(fd);
	xt_pump(base, 20);
	CU_ASSERT_EQUAL(xt_closed(fd), 1);
	CU_ASSERT_PTR_NULL(ffr_vqp_by_num(ffr_rdma_of(ra), qa.qpn));
	close(fd);
	rtr_send(&xa2, &qa2, "10.6.0.1", 42);
	fd = f_take();
	CU_ASSERT_FATAL(fd >= 0);
	down();
	CU_ASSERT_EQUAL(xt_closed(fd), 1);
	close(fd);
}

/* ---- the answering side, with questions the test seals ---- */

/* What B answers to a question of host A's router, sealed with the
 * cluster secret: src (container of A) QP qpn to dst's QP dest. */
static Ff__Status ask_b(const char *src, const char *dst, uint32_t qpn, uint32_t dest)
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT, *in = NULL;
	Ff__XQpCheck qc = FF__XQP_CHECK__INIT;
	Ff__Addr s, d;
	uint8_t sb[16], db[16], buf[FFR_XFRAME_MAX + 2], tag[FFR_MAC_LEN];
	Ff__Status st = FF__STATUS__ST_INTERNAL;
	char why[200];
	size_t len = 0, want = 2;
	int sv[2], n;

	fx_addr(&s, sb, src, 0);
	fx_addr(&d, db, dst, 0);
	p.src_host = (char *)"A";
	p.src_container = (char *)"a";
	p.src = &s;
	p.dst = &d;
	qc.qpn = qpn;
	qc.dest_qpn = dest;
	p.qp = &qc;
	n = ffr_preamble_seal(ra, &p, buf, sizeof(buf));
	CU_ASSERT_FATAL(n > 2 + FFR_MAC_LEN);
	memcpy(tag, buf + n - FFR_MAC_LEN, FFR_MAC_LEN);
	CU_ASSERT_FATAL(ffr_preamble_open(rb, buf + 2, (size_t)n - 2, &in) == 0);
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	ffr_vqp_check_incoming(rb, in, sv[0], tag);
	CU_ASSERT_EQUAL(ffr_xframe_read(sv[1], buf, sizeof(buf), &len, &want), 1);
	CU_ASSERT_EQUAL(ffr_xreply_open(ra, tag, buf + 2, len - 2, &st, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(recv(sv[1], buf, 1, MSG_DONTWAIT), 0); /* then closed */
	close(sv[1]);
	return st;
}

/* The source must be a container of the asking host; the target a
 * container here. */
static void test_answer_source_rules(void)
{
	struct vt_qp qb;

	up();
	qp_ready(&xb, &qb);
	CU_ASSERT_EQUAL(ask_b("10.3.0.1", "10.2.0.1", 7, qb.qpn), FF__STATUS__ST_PERM); /* C's */
	CU_ASSERT_EQUAL(ask_b("10.2.0.2", "10.2.0.1", 7, qb.qpn), FF__STATUS__ST_PERM); /* B's */
	CU_ASSERT_EQUAL(ask_b("10.9.9.9", "10.2.0.1", 7, qb.qpn), FF__STATUS__ST_PERM); /* none */
	CU_ASSERT_EQUAL(ask_b("10.1.0.1", "10.1.0.2", 7, qb.qpn), FF__STATUS__ST_REFUSED);
	CU_ASSERT_EQUAL(ask_b("10.1.0.1", "10.2.0.1", 7, qb.qpn), FF__STATUS__ST_OK);
	CU_ASSERT_FALSE(rq(rb, qb.qpn)->connected); /* an answer connects nothing */
	down();
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"rtr_free_peer", test_rtr_free_peer},
		{"rtr_not_the_containers", test_rtr_not_the_containers},
		{"rtr_connected_elsewhere", test_rtr_connected_elsewhere},
		{"old_peers_cut_off", test_old_peers_cut_off},
		{"forged_answers", test_forged_answers},
		{"peer_router_dies", test_peer_router_dies},
		{"app_gone_mid_check", test_app_gone_mid_check},
		{"answer_source_rules", test_answer_source_rules},
		{0},
	};

	return cu_run("rdma_qp_xhost", tests);
}
