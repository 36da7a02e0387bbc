/* ffrouter/rdma/qp.c on the fake device: QPs as an app creates, connects
 * and queries them. At modify_qp(RTR) the virtual GID the app names
 * becomes the physical GID that reaches the peer: this host's for a
 * container here, the RoCE v2 GID of the host's address for a container
 * on another host declared with RDMA (once that host's router agreed:
 * test_qp_xhost.c); anything else is refused before the device sees it. A QP here may only connect to a QP of the container
 * that owns the address, and not to one that talks to another QP; a QP
 * that talked to one that now chose another is cut off. query_qp reports
 * the app's own view, and a destination only once one was set. */
#include "cu.h"
#include "vt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct vt_ctx xa, xb, xc;

/* a, b, c here; r on host B (RDMA), n on host C (no RDMA), v on host D
 * (RDMA, but an IPv6 address, which has no RoCE v2 IPv4 GID). */
static void up(void)
{
	vt_up();
	CU_ASSERT_EQUAL_FATAL(vt_register("a", "10.1.0.1", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_register("b", "10.1.0.2", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_register("c", "10.1.0.3", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_register("d", "fd00::5", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_host_add("B", "198.51.100.7:7000", true), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_host_add("C", "203.0.113.9:7000", false), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_host_add("D", "[2001:db8::7]:7000", true), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_register("r", "10.2.0.1", "B"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_register("n", "10.3.0.1", "C"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_register("v", "10.4.0.1", "D"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("a", &xa), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("b", &xb), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_open("c", &xc), FF__STATUS__ST_OK);
}

static void down(void)
{
	vt_close(&xa);
	vt_close(&xb);
	vt_close(&xc);
	CU_ASSERT_EQUAL(fake_ibv_misuse(), 0);
	vt_down();
}

static struct fake_qp *fq(uint32_t qpn)
{
	struct fake_qp *q = fake_ibv_qp(qpn);

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	return q;
}

static uint32_t last_id(enum fake_kind k)
{
	struct fake_obj *o = fake_ibv_last(k);

	return o ? o->id : 0;
}

/* A QP of x in INIT. */
static void qp_ready(struct vt_ctx *x, struct vt_qp *q)
{
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(x, q), 0);
	CU_ASSERT_EQUAL_FATAL(vt_qp_init(x, q->qp), 0);
}

static const uint8_t zero[16];

/* ::ffff:192.0.2.1, the fake device's RoCE v2 GID: this host's */
static void host_gid(uint8_t g[16])
{
	vt_gid_v4(g, "192.0.2.1");
}

/* The QP has no destination: in the device, and as query_qp tells. */
static void assert_no_dest(struct vt_ctx *x, const struct vt_qp *q, uint32_t state)
{
	struct fake_qp *f = fq(q->qpn);
	Ff__VerbsQpAttr *a;
	Ff__Reply *rep;
	int err;

	CU_ASSERT_EQUAL(f->qp.state, state);
	CU_ASSERT_EQUAL(f->attr.dest_qp_num, 0);
	CU_ASSERT_FALSE(f->mask & (IBV_QP_AV | IBV_QP_DEST_QPN));
	CU_ASSERT_EQUAL(memcmp(f->attr.ah_attr.grh.dgid.raw, zero, 16), 0);
	a = vt_query_qp(x, q->qp, &rep, &err);
	CU_ASSERT_PTR_NOT_NULL(a);
	if (a) {
		CU_ASSERT_EQUAL(a->qp_state, state);
		CU_ASSERT_EQUAL(a->dest_qp_num, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(a->ah_attr);
		CU_ASSERT_EQUAL(a->ah_attr->dgid.len, 16);
		CU_ASSERT_EQUAL(memcmp(a->ah_attr->dgid.data, zero, 16), 0);
	}
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
}

/* modify_qp(RTR) with ah as the app's address vector. */
static int rtr_ah(struct vt_ctx *x, uint32_t qp, Ff__VerbsAh *ah, uint32_t dest)
{
	Ff__VerbsQpAttr m = FF__VERBS_QP_ATTR__INIT;

	m.mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
		 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	m.qp_state = IBV_QPS_RTR;
	m.ah_attr = ah;
	m.path_mtu = IBV_MTU_1024;
	m.dest_qp_num = dest;
	m.max_dest_rd_atomic = 1;
	m.min_rnr_timer = 12;
	return vt_modify_qp(x, qp, &m);
}

/* modify_qp(RTR) with a destination QP but no address vector (which says
 * whose QP it is). */
static int rtr_no_av(struct vt_ctx *x, uint32_t qp, uint32_t dest)
{
	Ff__VerbsQpAttr m = FF__VERBS_QP_ATTR__INIT;

	m.mask = IBV_QP_STATE | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
		 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	m.qp_state = IBV_QPS_RTR;
	m.path_mtu = IBV_MTU_1024;
	m.dest_qp_num = dest;
	m.max_dest_rd_atomic = 1;
	m.min_rnr_timer = 12;
	return vt_modify_qp(x, qp, &m);
}

/* RTR towards container ip's QP dest. */
static int rtr(struct vt_ctx *x, const struct vt_qp *q, const char *ip, uint32_t dest)
{
	uint8_t g[16];

	vt_gid_v4(g, ip);
	return vt_qp_rtr(x, q->qp, g, dest);
}

/* ---- create ---- */

static int create_qp_caps(struct vt_ctx *x, uint32_t pd, uint32_t cq, Ff__VerbsQpCaps *caps)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsCreateQp m = FF__VERBS_CREATE_QP__INIT;
	Ff__Reply *rep;
	int err;

	m.pd = pd;
	m.send_cq = m.recv_cq = cq;
	m.qp_type = IBV_QPT_RC;
	m.caps = caps;
	req.body_case = FF__REQUEST__BODY_VERBS_CREATE_QP;
	req.verbs_create_qp = &m;
	rep = vt_call(x->fd, &req, NULL, 0, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	err = rep->status ? (int)rep->verbs_obj->err : 0;
	ff__reply__free_unpacked(rep, NULL);
	return err;
}

static void test_create(void)
{
	uint32_t pd, scq, rcq, srq, qp, qpn, qp2, qpn2, bcq, pd_id, scq_id, rcq_id, srq_id;
	Ff__VerbsQpCaps caps = FF__VERBS_QP_CAPS__INIT;
	struct fake_qp *f;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&xa, &pd), 0);
	pd_id = last_id(FAKE_PD);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(&xa, 16, 0, 0, &scq, NULL), 0);
	scq_id = last_id(FAKE_CQ);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(&xa, 32, 0, 0, &rcq, NULL), 0);
	rcq_id = last_id(FAKE_CQ);
	CU_ASSERT_EQUAL_FATAL(vt_create_srq(&xa, pd, 16, 0, &srq), 0);
	srq_id = last_id(FAKE_SRQ);
	CU_ASSERT_EQUAL_FATAL(vt_create_qp(&xa, pd, scq, rcq, 0, IBV_QPT_RC, &qp, &qpn), 0);
	f = fq(qpn);
	for (int i = 1; i < 4; i++)
		CU_ASSERT_PTR_NOT_NULL_FATAL(f->o.held[i]);
	CU_ASSERT_EQUAL(f->o.held[1]->id, pd_id);
	CU_ASSERT_EQUAL(f->o.held[2]->id, scq_id);
	CU_ASSERT_EQUAL(f->o.held[3]->id, rcq_id);
	CU_ASSERT_PTR_NULL(f->o.held[4]);
	CU_ASSERT_EQUAL(f->init.qp_type, IBV_QPT_RC);
	CU_ASSERT_EQUAL(f->init.cap.max_send_wr, 16);
	CU_ASSERT_EQUAL(f->init.cap.max_recv_wr, 16);
	CU_ASSERT_EQUAL(f->init.cap.max_send_sge, 2);
	CU_ASSERT_EQUAL(f->init.cap.max_recv_sge, 2);
	CU_ASSERT_EQUAL(f->init.cap.max_inline_data, 64);
	CU_ASSERT_PTR_NOT_NULL(f->init.qp_context); /* async events find their QP */
	CU_ASSERT_EQUAL(f->qp.state, IBV_QPS_RESET);
	CU_ASSERT_EQUAL(vt_use("a")->qps, 1);
	/* with an SRQ: no receive queue of its own */
	CU_ASSERT_EQUAL_FATAL(vt_create_qp(&xa, pd, scq, rcq, srq, IBV_QPT_UC, &qp2, &qpn2), 0);
	f = fq(qpn2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f->o.held[4]);
	CU_ASSERT_EQUAL(f->o.held[4]->id, srq_id);
	CU_ASSERT_EQUAL(f->init.qp_type, IBV_QPT_UC);
	CU_ASSERT_EQUAL(f->init.cap.max_recv_wr, 0);
	CU_ASSERT_NOT_EQUAL(qpn2, qpn);
	/* refused before the device */
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(&xb, 16, 0, 0, &bcq, NULL), 0);
	fake_ibv_reset();
	CU_ASSERT_EQUAL(vt_create_qp(&xa, pd, scq, rcq, 0, IBV_QPT_UD, NULL, NULL), EOPNOTSUPP);
	CU_ASSERT_EQUAL(vt_create_qp(&xa, scq, scq, rcq, 0, IBV_QPT_RC, NULL, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_create_qp(&xa, pd, pd, rcq, 0, IBV_QPT_RC, NULL, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_create_qp(&xa, pd, scq, 0, 0, IBV_QPT_RC, NULL, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_create_qp(&xa, pd, scq, rcq, pd, IBV_QPT_RC, NULL, NULL), EINVAL);
	CU_ASSERT_EQUAL(vt_create_qp(&xb, pd, bcq, bcq, 0, IBV_QPT_RC, NULL, NULL), EINVAL);
	caps.max_send_wr = FF_VRING_MAX_WR + 1;
	CU_ASSERT_EQUAL(create_qp_caps(&xa, pd, scq, &caps), EINVAL);
	caps.max_send_wr = 1;
	caps.max_send_sge = FF_VRING_MAX_SGE + 1;
	CU_ASSERT_EQUAL(create_qp_caps(&xa, pd, scq, &caps), EINVAL);
	caps.max_send_sge = 1;
	caps.max_inline_data = FF_VRING_MAX_INLINE + 1;
	CU_ASSERT_EQUAL(create_qp_caps(&xa, pd, scq, &caps), EINVAL);
	CU_ASSERT_EQUAL(create_qp_caps(&xa, pd, scq, NULL), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_CREATE_QP), 0);
	CU_ASSERT_EQUAL(vt_use("a")->qps, 2);
	/* and took no reference */
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_QP, qp), 0);
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_QP, qp2), 0);
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_CQ, scq), 0);
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_CQ, rcq), 0);
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_SRQ, srq), 0);
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_PD, pd), 0);
	CU_ASSERT_EQUAL(vt_use("a")->qps, 0);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_QP), 0);
	down();
}

/* The device fails create_qp: the app gets its errno; no count, no
 * reference, no ring, no fd. */
static void test_create_fails_clean(void)
{
	uint32_t pd, cq, srq, qp;
	int fds, rings;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_alloc_pd(&xa, &pd), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_cq(&xa, 16, 0, 0, &cq, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vt_create_srq(&xa, pd, 16, 0, &srq), 0);
	fds = vt_nfds();
	rings = vt_nmaps("ffnet-vring");
	fake_ibv_fail(FAKE_CREATE_QP, ENOMEM, 0);
	CU_ASSERT_EQUAL(vt_create_qp(&xa, pd, cq, cq, srq, IBV_QPT_RC, NULL, NULL), ENOMEM);
	CU_ASSERT_EQUAL(vt_use("a")->qps, 0);
	CU_ASSERT_EQUAL(fake_ibv_live(FAKE_QP), 0);
	CU_ASSERT_EQUAL(vt_nfds(), fds);
	CU_ASSERT_EQUAL(vt_nmaps("ffnet-vring"), rings);
	vt_rd->quota.qps = 1;
	CU_ASSERT_EQUAL(vt_create_qp(&xa, pd, cq, cq, srq, IBV_QPT_RC, &qp, NULL), 0);
	CU_ASSERT_EQUAL(vt_create_qp(&xa, pd, cq, cq, srq, IBV_QPT_RC, NULL, NULL), ENOBUFS);
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_QP, qp), 0);
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_SRQ, srq), 0);
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_CQ, cq), 0);
	CU_ASSERT_EQUAL(vt_destroy(&xa, FF_VOBJ_PD, pd), 0);
	down();
}

/* ---- address translation ---- */

static void test_rtr_local(void)
{
	struct vt_qp qa, qb, qa2, qd;
	struct vt_ctx xd;
	uint8_t g[16], host[16];
	struct fake_qp *f;

	up();
	host_gid(host);
	qp_ready(&xa, &qa);
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xb, &qb), 0);
	vt_gid_v4(g, "10.1.0.2");
	CU_ASSERT_EQUAL(vt_qp_rtr(&xa, qa.qp, g, qb.qpn), 0);
	f = fq(qa.qpn);
	CU_ASSERT_EQUAL(f->qp.state, IBV_QPS_RTR);
	CU_ASSERT_EQUAL(f->attr.dest_qp_num, qb.qpn);
	CU_ASSERT_EQUAL(memcmp(f->attr.ah_attr.grh.dgid.raw, host, 16), 0);
	CU_ASSERT_EQUAL(f->attr.ah_attr.is_global, 1);
	CU_ASSERT_EQUAL(f->attr.ah_attr.grh.sgid_index, FAKE_IBV_GID_INDEX);
	CU_ASSERT_EQUAL(f->attr.ah_attr.port_num, 1);
	CU_ASSERT_EQUAL(f->attr.ah_attr.grh.hop_limit, 7); /* the app's */
	CU_ASSERT_EQUAL(f->attr.path_mtu, IBV_MTU_1024);
	CU_ASSERT_EQUAL(f->attr.rq_psn, 0x1234);
	CU_ASSERT_EQUAL(vt_qp_rts(&xa, qa.qp), 0);
	CU_ASSERT_EQUAL(f->qp.state, IBV_QPS_RTS);
	CU_ASSERT_EQUAL(f->attr.sq_psn, 0x4321);
	CU_ASSERT_EQUAL(f->attr.dest_qp_num, qb.qpn);
	/* fe80::ff:10.1.0.1 is the same address */
	CU_ASSERT_EQUAL(vt_qp_init(&xb, qb.qp), 0);
	vt_gid_ll(g, "10.1.0.1");
	CU_ASSERT_EQUAL(vt_qp_rtr(&xb, qb.qp, g, qa.qpn), 0);
	f = fq(qb.qpn);
	CU_ASSERT_EQUAL(memcmp(f->attr.ah_attr.grh.dgid.raw, host, 16), 0);
	CU_ASSERT_EQUAL(f->attr.dest_qp_num, qa.qpn);
	/* an IPv6 container: its address is its GID */
	CU_ASSERT_EQUAL_FATAL(vt_open("d", &xd), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xd, &qd), 0);
	qp_ready(&xa, &qa2);
	CU_ASSERT_FATAL(inet_pton(AF_INET6, "fd00::5", g) == 1);
	CU_ASSERT_EQUAL(vt_qp_rtr(&xa, qa2.qp, g, qd.qpn), 0);
	f = fq(qa2.qpn);
	CU_ASSERT_EQUAL(memcmp(f->attr.ah_attr.grh.dgid.raw, host, 16), 0);
	CU_ASSERT_EQUAL(f->attr.dest_qp_num, qd.qpn);
	vt_close(&xd);
	down();
}

/* A QP on another host only that host's router can check (test_qp_xhost.c
 * has two of them); this one has no cluster secret to ask with: refused,
 * and the device never sees it. */
static void test_rtr_remote_unchecked(void)
{
	struct vt_qp qa;
	uint8_t g[16];

	up();
	qp_ready(&xa, &qa);
	fake_ibv_reset();
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.2.0.1", 0x777777), EHOSTUNREACH);
	vt_gid_ll(g, "10.2.0.1");
	CU_ASSERT_EQUAL(vt_qp_rtr(&xa, qa.qp, g, 0x777777), EHOSTUNREACH);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 0);
	assert_no_dest(&xa, &qa, IBV_QPS_INIT);
	down();
}

/* Addresses that reach no RDMA peer, and address vectors the router does
 * not take: refused, and the device never sees them. */
static void test_rtr_refused(void)
{
	static const struct {
		const char *what;
		const char *ip6;  /* the GID as an IPv6 address */
		uint32_t len;     /* of the GID */
		bool local;       /* is_global cleared */
		uint32_t port;
		int err;
	} bad[] = {
		{"not a container", "::ffff:10.9.9.9", 16, false, 1, EHOSTUNREACH},
		{"host without RDMA", "::ffff:10.3.0.1", 16, false, 1, EHOSTUNREACH},
		{"host with an IPv6 address", "::ffff:10.4.0.1", 16, false, 1, EHOSTUNREACH},
		{"container address, other prefix", "fe80::1:10.1.0.2", 16, false, 1, EHOSTUNREACH},
		{"multicast", "ff02::1", 16, false, 1, EINVAL},
		{"zero", "::", 16, false, 1, EINVAL},
		{"loopback", "::ffff:127.0.0.1", 16, false, 1, EINVAL},
		{"short GID", "::ffff:10.1.0.2", 4, false, 1, EINVAL},
		{"no GRH", "::ffff:10.1.0.2", 16, true, 1, EINVAL},
		{"port 2", "::ffff:10.1.0.2", 16, false, 2, EINVAL},
	};
	struct vt_qp qa, qb;
	uint8_t g[16];

	up();
	qp_ready(&xa, &qa);
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xb, &qb), 0);
	fake_ibv_reset();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		Ff__VerbsAh ah = FF__VERBS_AH__INIT;

		fprintf(stderr, "refused: %s\n", bad[i].what);
		CU_ASSERT_FATAL(inet_pton(AF_INET6, bad[i].ip6, g) == 1);
		ah.dgid.data = g;
		ah.dgid.len = bad[i].len;
		ah.is_global = !bad[i].local;
		ah.port_num = bad[i].port;
		ah.sgid_index = 1;
		CU_ASSERT_EQUAL(rtr_ah(&xa, qa.qp, &ah, qb.qpn), bad[i].err);
	}
	CU_ASSERT_EQUAL(rtr_ah(&xa, qa.qp, NULL, qb.qpn), EINVAL); /* no address at all */
	CU_ASSERT_EQUAL(rtr_no_av(&xa, qa.qp, qb.qpn), EINVAL); /* a QP number, no address */
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 0);
	assert_no_dest(&xa, &qa, IBV_QPS_INIT);
	/* the QP is still good for a real peer */
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", qb.qpn), 0);
	down();
}

/* ---- peer checks ---- */

static void test_peer_must_be_the_addressed_containers(void)
{
	struct vt_qp qa, qa2, qb, qc;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xa, &qa2);
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xb, &qb), 0);
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xc, &qc), 0);
	fake_ibv_reset();
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", qc.qpn), EINVAL);  /* c's QP, b's address */
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", qa2.qpn), EINVAL); /* a's own */
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", 0xfffff0), EINVAL); /* no such QP */
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.3", qb.qpn), EINVAL);  /* b's QP, c's address */
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 0);
	assert_no_dest(&xa, &qa, IBV_QPS_INIT);
	/* the right pairs */
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", qb.qpn), 0);
	CU_ASSERT_EQUAL(rtr(&xa, &qa2, "10.1.0.1", qa2.qpn), 0); /* itself: its own container */
	down();
}

static void test_peer_not_connected_elsewhere(void)
{
	struct vt_qp qa, qb, qc, qb2;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xb, &qb);
	qp_ready(&xc, &qc);
	qp_ready(&xb, &qb2);
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", qb.qpn), 0);
	CU_ASSERT_EQUAL(rtr(&xb, &qb, "10.1.0.1", qa.qpn), 0); /* each other: fine */
	fake_ibv_reset();
	/* a and b talk to each other: c may join neither */
	CU_ASSERT_EQUAL(rtr(&xc, &qc, "10.1.0.2", qb.qpn), EINVAL);
	CU_ASSERT_EQUAL(rtr(&xc, &qc, "10.1.0.1", qa.qpn), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 0);
	assert_no_dest(&xc, &qc, IBV_QPS_INIT);
	/* a only talks to b so far: b's other QP may not take a either */
	CU_ASSERT_EQUAL(rtr(&xb, &qb2, "10.1.0.1", qa.qpn), EINVAL);
	/* c's QP to b's free one */
	CU_ASSERT_EQUAL(rtr(&xc, &qc, "10.1.0.2", qb2.qpn), 0);
	down();
}

/* q chose a new peer: a QP here still connected to q from before is cut
 * off (error state), so only the chosen one reaches q. */
static void test_old_peer_cut_off(void)
{
	struct vt_qp qa, qb, qc, qa2, qc2;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xb, &qb);
	qp_ready(&xc, &qc);
	CU_ASSERT_EQUAL(rtr(&xc, &qc, "10.1.0.1", qa.qpn), 0); /* a's QP was free */
	CU_ASSERT_EQUAL(fq(qc.qpn)->qp.state, IBV_QPS_RTR);
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", qb.qpn), 0); /* a chooses b */
	CU_ASSERT_EQUAL(fq(qc.qpn)->qp.state, IBV_QPS_ERR);
	CU_ASSERT_EQUAL(fq(qb.qpn)->qp.state, IBV_QPS_INIT);
	CU_ASSERT_EQUAL(fq(qa.qpn)->qp.state, IBV_QPS_RTR);
	/* choosing the one that talks to it cuts off nobody */
	qp_ready(&xa, &qa2);
	qp_ready(&xc, &qc2);
	CU_ASSERT_EQUAL(rtr(&xc, &qc2, "10.1.0.1", qa2.qpn), 0);
	CU_ASSERT_EQUAL(rtr(&xa, &qa2, "10.1.0.3", qc2.qpn), 0);
	CU_ASSERT_EQUAL(fq(qc2.qpn)->qp.state, IBV_QPS_RTR);
	down();
}

/* A QP reset to RESET talks to nobody: it may be taken again. */
static void test_reset_frees_peer(void)
{
	struct vt_qp qa, qb, qc;
	Ff__VerbsQpAttr m = FF__VERBS_QP_ATTR__INIT;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xb, &qb);
	qp_ready(&xc, &qc);
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", qb.qpn), 0);
	CU_ASSERT_EQUAL(rtr(&xb, &qb, "10.1.0.1", qa.qpn), 0);
	CU_ASSERT_EQUAL(rtr(&xc, &qc, "10.1.0.2", qb.qpn), EINVAL);
	m.mask = IBV_QP_STATE;
	m.qp_state = IBV_QPS_RESET;
	CU_ASSERT_EQUAL(vt_modify_qp(&xb, qb.qp, &m), 0);
	CU_ASSERT_EQUAL(fq(qb.qpn)->qp.state, IBV_QPS_RESET);
	CU_ASSERT_EQUAL(rtr(&xc, &qc, "10.1.0.2", qb.qpn), 0);
	/* b now chooses c: a, still pointed at b, is cut off */
	CU_ASSERT_EQUAL(vt_qp_init(&xb, qb.qp), 0);
	CU_ASSERT_EQUAL(rtr(&xb, &qb, "10.1.0.3", qc.qpn), 0);
	CU_ASSERT_EQUAL(fq(qa.qpn)->qp.state, IBV_QPS_ERR);
	CU_ASSERT_EQUAL(fq(qc.qpn)->qp.state, IBV_QPS_RTR);
	down();
}

/* The device refused the RTR: the QP talks to nobody, for query_qp and
 * for the peer checks. */
static void test_device_refuses_rtr(void)
{
	struct vt_qp qa, qb, qc;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xb, &qb);
	qp_ready(&xc, &qc);
	fake_ibv_fail(FAKE_MODIFY_QP, EINVAL, 0);
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", qb.qpn), EINVAL);
	assert_no_dest(&xa, &qa, IBV_QPS_INIT);
	CU_ASSERT_EQUAL(rtr(&xc, &qc, "10.1.0.1", qa.qpn), 0);
	down();
}

/* The container whose QP it was is gone; another took its address: the
 * old QP is not the new container's. */
static void test_peer_of_unregistered_container(void)
{
	struct vt_qp qa, qb;

	up();
	qp_ready(&xa, &qa);
	qp_ready(&xb, &qb);
	CU_ASSERT_EQUAL_FATAL(vt_unregister("b"), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL_FATAL(vt_register("b2", "10.1.0.2", NULL), FF__STATUS__ST_OK);
	CU_ASSERT_EQUAL(rtr(&xa, &qa, "10.1.0.2", qb.qpn), EINVAL);
	assert_no_dest(&xa, &qa, IBV_QPS_INIT);
	down();
}

/* ---- other attributes ---- */

static void test_modify_rules(void)
{
	Ff__VerbsQpAttr m = FF__VERBS_QP_ATTR__INIT;
	struct vt_qp qa;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xa, &qa), 0);
	fake_ibv_reset();
	m.qp_state = IBV_QPS_INIT;
	m.port_num = 1;
	m.mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
	m.pkey_index = 1; /* one P_Key only */
	CU_ASSERT_EQUAL(vt_modify_qp(&xa, qa.qp, &m), EINVAL);
	m.pkey_index = 0;
	m.port_num = 2; /* one port only */
	CU_ASSERT_EQUAL(vt_modify_qp(&xa, qa.qp, &m), EINVAL);
	m.port_num = 1;
	m.mask |= IBV_QP_ALT_PATH;
	CU_ASSERT_EQUAL(vt_modify_qp(&xa, qa.qp, &m), EOPNOTSUPP);
	m.mask = IBV_QP_CAP;
	CU_ASSERT_EQUAL(vt_modify_qp(&xa, qa.qp, &m), EOPNOTSUPP);
	m.mask = IBV_QP_RATE_LIMIT;
	CU_ASSERT_EQUAL(vt_modify_qp(&xa, qa.qp, &m), EOPNOTSUPP);
	CU_ASSERT_EQUAL(vt_modify_qp(&xa, qa.qp + 1, &m), EINVAL); /* no such QP */
	CU_ASSERT_EQUAL(vt_modify_qp(&xa, qa.cq, &m), EINVAL);     /* a CQ */
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 0);
	CU_ASSERT_EQUAL(fq(qa.qpn)->qp.state, IBV_QPS_RESET);
	/* the device's own refusal reaches the app */
	m.mask = IBV_QP_STATE;
	m.qp_state = IBV_QPS_RTS;
	CU_ASSERT_EQUAL(vt_modify_qp(&xa, qa.qp, &m), EINVAL);
	CU_ASSERT_EQUAL(fake_ibv_calls(FAKE_MODIFY_QP), 1);
	down();
}

static void test_query_reports_what_was_set(void)
{
	struct vt_qp qa, qb;
	Ff__VerbsQpAttr *a;
	Ff__Reply *rep;
	uint8_t g[16];
	int err;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xa, &qa), 0);
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xb, &qb), 0);
	assert_no_dest(&xa, &qa, IBV_QPS_RESET);
	CU_ASSERT_EQUAL(vt_qp_init(&xa, qa.qp), 0);
	assert_no_dest(&xa, &qa, IBV_QPS_INIT);
	vt_gid_ll(g, "10.1.0.2");
	CU_ASSERT_EQUAL(vt_qp_rtr(&xa, qa.qp, g, qb.qpn), 0);
	a = vt_query_qp(&xa, qa.qp, &rep, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(a->qp_state, IBV_QPS_RTR);
	CU_ASSERT_EQUAL(a->dest_qp_num, qb.qpn);
	CU_ASSERT_EQUAL(a->path_mtu, IBV_MTU_1024);
	CU_ASSERT_EQUAL(a->qp_type, IBV_QPT_RC);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a->ah_attr);
	/* the app's view: the GID it gave, not the host's */
	CU_ASSERT_EQUAL(a->ah_attr->dgid.len, 16);
	CU_ASSERT_EQUAL(memcmp(a->ah_attr->dgid.data, g, 16), 0);
	CU_ASSERT_EQUAL(a->ah_attr->sgid_index, 1);
	CU_ASSERT_EQUAL(a->ah_attr->hop_limit, 7);
	CU_ASSERT_EQUAL(a->ah_attr->port_num, 1);
	CU_ASSERT_TRUE(a->ah_attr->is_global);
	ff__reply__free_unpacked(rep, NULL);
	/* a query of something else */
	CU_ASSERT_PTR_NULL(vt_query_qp(&xa, qa.cq, &rep, &err));
	CU_ASSERT_EQUAL(err, EINVAL);
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	CU_ASSERT_PTR_NULL(vt_query_qp(&xc, qa.qp, &rep, &err)); /* another context's */
	if (rep)
		ff__reply__free_unpacked(rep, NULL);
	down();
}

/* ---- rdma_cm's way in ---- */

/* ffr_vqp_connect (what rdma_cm calls once both sides agreed) takes a
 * QP from RESET to RTS towards the peer's overlay address, with the same
 * translation, and leaves query_qp the peer's virtual GID. */
static void test_cm_connect(void)
{
	struct ffr_qp_conn pc = {.dest_qpn = 0x777777, .rq_psn = 1, .sq_psn = 2, .retry_cnt = 7,
				 .rnr_retry = 7, .max_rd_atomic = 1, .max_dest_rd_atomic = 1};
	struct ff_ip ip = {.family = AF_INET, .ip = {10, 2, 0, 1}};
	struct vt_qp qa, qa2;
	struct ffr_vqp *q;
	uint8_t hb[16], g[16];
	struct fake_qp *f;
	Ff__VerbsQpAttr *a;
	Ff__Reply *rep;
	int err;

	up();
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xa, &qa), 0);
	q = ffr_vqp_of(vt_rd, ffr_container_find(vt_r, "a"), qa.qpn);
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_PTR_NULL(ffr_vqp_of(vt_rd, ffr_container_find(vt_r, "b"), qa.qpn));
	CU_ASSERT_TRUE(ffr_vqp_connectable(q));
	CU_ASSERT_EQUAL(ffr_vqp_connect(q, &ip, &pc), 0);
	f = fq(qa.qpn);
	vt_gid_v4(hb, "198.51.100.7");
	CU_ASSERT_EQUAL(f->qp.state, IBV_QPS_RTS);
	CU_ASSERT_EQUAL(memcmp(f->attr.ah_attr.grh.dgid.raw, hb, 16), 0);
	CU_ASSERT_EQUAL(f->attr.dest_qp_num, 0x777777);
	CU_ASSERT_EQUAL(f->attr.path_mtu, IBV_MTU_1024); /* the port's active MTU */
	CU_ASSERT_FALSE(ffr_vqp_connectable(q));
	a = vt_query_qp(&xa, qa.qp, &rep, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	vt_gid_v4(g, "10.2.0.1");
	CU_ASSERT_EQUAL(memcmp(a->ah_attr->dgid.data, g, 16), 0);
	ff__reply__free_unpacked(rep, NULL);
	/* not to a host without RDMA */
	CU_ASSERT_EQUAL_FATAL(vt_qp_new(&xa, &qa2), 0);
	q = ffr_vqp_of(vt_rd, ffr_container_find(vt_r, "a"), qa2.qpn);
	ip.ip[1] = 3; /* 10.3.0.1, on host C */
	CU_ASSERT_EQUAL(ffr_vqp_connect(q, &ip, &pc), -EHOSTUNREACH);
	CU_ASSERT_NOT_EQUAL(fq(qa2.qpn)->qp.state, IBV_QPS_RTR);
	CU_ASSERT_EQUAL(fq(qa2.qpn)->attr.dest_qp_num, 0);
	CU_ASSERT_EQUAL(ffr_vqp_set_error(q), 0);
	CU_ASSERT_EQUAL(fq(qa2.qpn)->qp.state, IBV_QPS_ERR);
	down();
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"create", test_create},
		{"create_fails_clean", test_create_fails_clean},
		{"rtr_local", test_rtr_local},
		{"rtr_remote_unchecked", test_rtr_remote_unchecked},
		{"rtr_refused", test_rtr_refused},
		{"peer_must_be_the_addressed_containers", test_peer_must_be_the_addressed_containers},
		{"peer_not_connected_elsewhere", test_peer_not_connected_elsewhere},
		{"old_peer_cut_off", test_old_peer_cut_off},
		{"reset_frees_peer", test_reset_frees_peer},
		{"device_refuses_rtr", test_device_refuses_rtr},
		{"peer_of_unregistered_container", test_peer_of_unregistered_container},
		{"modify_rules", test_modify_rules},
		{"query_reports_what_was_set", test_query_reports_what_was_set},
		{"cm_connect", test_cm_connect},
		{0},
	};

	return cu_run("rdma_qp", tests);
}
