/* ffverbs hold / steal: isolation between two containers' verbs objects.
 *
 * hold FILE (container a): an MR filled with a pattern, a CQ and two QPs
 * connected to each other; writes their handles, keys, address and QP
 * number to FILE and waits for FILE.go. Then checks that its MR still
 * holds the pattern and that its objects still work.
 *
 * steal FILE (container b): with its own QPs (connected to each other),
 * posts work naming a's lkey and rkey, gather lists outside its own MR,
 * receive buffers in a's MR, and tries to connect to a's QP. Every such
 * request must end in an error completion or a refused modify_qp, never
 * move a byte; afterwards b's own traffic still flows. */
#include "ffverbs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MR_LEN	  65536
#define HOLD_SEED 9
#define OWN_SEED  10
#define ATTACK_MS 20000

static void wait_file(const char *path, int secs)
{
	struct stat st;

	for (int i = 0; i < secs * 10; i++) {
		if (!stat(path, &st))
			return;
		usleep(100000);
	}
	ffv_fail("%s did not appear in %d s", path, secs);
}

/* One SEND, one RDMA_WRITE and one RDMA_READ between the two QPs. */
static void traffic(struct ffv_dev *d, struct ibv_mr *mr, struct ibv_cq *cq, struct ibv_qp *qp[2],
		    unsigned seed)
{
	uint64_t b = (uintptr_t)mr->addr;
	struct ffv_sge sg = {b, 4096, mr->lkey};
	struct ibv_wc wc;
	int done = 0;

	ffv_fill(mr->addr, 4096, seed + 1, 0);
	FFV_CHECK(!ffv_recv(qp[1], 50, b + 32768, 4096, mr->lkey), "post_recv");
	FFV_CHECK(!ffv_send(qp[0], IBV_WR_SEND, 51, &sg, 1, 0, 0, 0, 0), "post SEND");
	FFV_CHECK(!ffv_send(qp[0], IBV_WR_RDMA_WRITE, 52, &sg, 1, 0, 0, b + 40960, mr->rkey),
		  "post RDMA_WRITE");
	sg.addr = b + 45056;
	FFV_CHECK(!ffv_send(qp[0], IBV_WR_RDMA_READ, 53, &sg, 1, 0, 0, b + 40960, mr->rkey),
		  "post RDMA_READ");
	while (done < 4) {
		ffv_poll(cq, &wc, FFV_TIMEOUT_MS, "own traffic");
		FFV_CHECK(wc.status == IBV_WC_SUCCESS, "own traffic: wr %llu: %s",
			  (unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status));
		done++;
	}
	FFV_CHECK(ffv_same((uint8_t *)mr->addr + 32768, 4096, seed + 1, 0) &&
		      ffv_same((uint8_t *)mr->addr + 40960, 4096, seed + 1, 0) &&
		      ffv_same((uint8_t *)mr->addr + 45056, 4096, seed + 1, 0),
		  "own traffic: wrong bytes");
}

static void teardown(struct ffv_dev *d, struct ibv_mr *mr, struct ibv_cq *cq, struct ibv_qp *qp[2])
{
	int err;

	ffv_qp_destroy(qp[0]);
	ffv_qp_destroy(qp[1]);
	FFV_CHECK(!(err = ibv_destroy_cq(cq)), "ibv_destroy_cq: %s", strerror(err));
	ffv_dereg(mr);
	ffv_dev_close(d);
}

/* Connects the free QP xw[1] to xw[0] once steal has connected one of
 * its own to it (FILE.z), or when told to go on; then says so (FILE.x). */
static void hold_free_qp(struct ffv_dev *d, struct ibv_qp *xw[2], const char *file)
{
	char z[4096], x[4096], go[4096];
	const char *step;
	struct stat st;
	int err;

	snprintf(z, sizeof(z), "%s.z", file);
	snprintf(x, sizeof(x), "%s.x", file);
	snprintf(go, sizeof(go), "%s.go", file);
	for (int i = 0; i < 6000 && stat(z, &st) && stat(go, &st); i++)
		usleep(100000);
	for (int i = 0; i < 2; i++) {
		err = ffv_qp_connect(d, xw[i], xw[!i]->qp_num, d->gid.raw, 4242, 4242, &step);
		FFV_CHECK(!err, "connecting the free QP (%s): %s", step, strerror(err));
	}
	FFV_CHECK(!close(open(x, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), "%s: %s", x,
		  strerror(errno));
	ffv_ok("the free QP 0x%x is now connected to 0x%x", xw[1]->qp_num, xw[0]->qp_num);
}

int ffv_hold(const char *file, const char *dev)
{
	struct ffv_victim v = {0};
	struct ffv_dev d;
	struct ibv_mr *mr;
	struct ibv_cq *cq;
	struct ibv_qp *qp[2], *xw[2];
	char go[4096];

	ffv_dev_open(&d, dev);
	mr = ffv_reg(&d, MR_LEN,
		     IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	ffv_fill(mr->addr, MR_LEN, HOLD_SEED, 0);
	cq = ibv_create_cq(d.ctx, 64, NULL, NULL, 0);
	FFV_CHECK(cq, "ibv_create_cq: %s", strerror(errno));
	ffv_pair(&d, cq, qp);
	xw[0] = ffv_qp_rc(&d, cq, cq, NULL, 0);
	xw[1] = ffv_qp_rc(&d, cq, cq, NULL, 0);
	v = (struct ffv_victim){.pd = d.pd->handle,
				.mr = mr->handle,
				.cq = cq->handle,
				.qp = qp[1]->handle,
				.qpn = qp[1]->qp_num,
				.lkey = mr->lkey,
				.rkey = mr->rkey,
				.addr = (uintptr_t)mr->addr,
				.len = MR_LEN,
				.free_qpn = xw[1]->qp_num};
	memcpy(v.gid, d.gid.raw, 16);
	ffv_victim_write(file, &v);
	ffv_ok(
	    "holding PD %u, MR %u (lkey 0x%x rkey 0x%x at %p), CQ %u, QP %u (0x%x), free QP 0x%x",
	    v.pd, v.mr, v.lkey, v.rkey, mr->addr, v.cq, v.qp, v.qpn, v.free_qpn);
	hold_free_qp(&d, xw, file);
	snprintf(go, sizeof(go), "%s.go", file);
	wait_file(go, 600);
	FFV_CHECK(ffv_same(mr->addr, MR_LEN, HOLD_SEED, 0),
		  "the MR no longer holds its pattern: someone wrote into it");
	ffv_ok("the MR still holds its pattern");
	traffic(&d, mr, cq, qp, HOLD_SEED);
	traffic(&d, mr, cq, xw, HOLD_SEED + 1);
	ffv_ok("the held PD, MR, CQ and QPs still work (SEND, RDMA_WRITE, RDMA_READ)");
	ffv_qp_destroy(xw[0]);
	ffv_qp_destroy(xw[1]);
	teardown(&d, mr, cq, qp);
	return 0;
}

/* ---- steal ---- */

enum where {
	OWN,	    /* in b's MR */
	VICTIM,	    /* a's address and lkey */
	PAST_END,   /* b's lkey, running past the end of its MR */
	BEFORE,	    /* b's lkey, before its MR */
	ZERO_LKEY,  /* b's address, lkey 0 */
	BOGUS_LKEY, /* b's address, a made-up lkey */
};

struct attack {
	const char *name;
	enum ibv_wr_opcode op;
	enum where local;   /* the request's gather (or scatter, for READ) list */
	bool remote_victim; /* RDMA to a's address with a's rkey */
	bool recv_victim;   /* the receiver's buffer is a's */
	bool remote;	    /* a remote error is wanted, else a local one */
};

/* What a device may say: rxe, for one, reports an unknown lkey as a local
 * QP operation error and a range outside the MR as a protection error. */
static bool local_error(enum ibv_wc_status st)
{
	return st == IBV_WC_LOC_PROT_ERR || st == IBV_WC_LOC_QP_OP_ERR || st == IBV_WC_LOC_LEN_ERR;
}

static bool remote_error(enum ibv_wc_status st)
{
	return st == IBV_WC_REM_ACCESS_ERR || st == IBV_WC_REM_INV_REQ_ERR ||
	       st == IBV_WC_REM_OP_ERR;
}

static const struct attack attacks[] = {
    {"SEND gathering from a's lkey", IBV_WR_SEND, VICTIM, false, false, false},
    {"RDMA_WRITE gathering from a's lkey", IBV_WR_RDMA_WRITE, VICTIM, false, false, false},
    {"RDMA_READ scattering into a's lkey", IBV_WR_RDMA_READ, VICTIM, false, false, false},
    {"a receive into a's lkey", IBV_WR_SEND, OWN, false, true, false},
    {"SEND with an SGE past the end of its MR", IBV_WR_SEND, PAST_END, false, false, false},
    {"SEND with an SGE before its MR", IBV_WR_SEND, BEFORE, false, false, false},
    {"SEND with lkey 0", IBV_WR_SEND, ZERO_LKEY, false, false, false},
    {"SEND with a made-up lkey", IBV_WR_SEND, BOGUS_LKEY, false, false, false},
    {"RDMA_WRITE to a's memory with a's rkey", IBV_WR_RDMA_WRITE, OWN, true, false, true},
    {"RDMA_READ of a's memory with a's rkey", IBV_WR_RDMA_READ, OWN, true, false, true},
};

static struct ffv_sge local_sge(const struct attack *t, const struct ibv_mr *mr,
				const struct ffv_victim *v)
{
	uint64_t b = (uintptr_t)mr->addr;

	switch (t->local) {
	case VICTIM:
		return (struct ffv_sge){v->addr, 4096, v->lkey};
	case PAST_END:
		return (struct ffv_sge){b + MR_LEN - 16, 4096, mr->lkey};
	case BEFORE:
		return (struct ffv_sge){b - 4096, 4096, mr->lkey};
	case ZERO_LKEY:
		return (struct ffv_sge){b, 4096, 0};
	case BOGUS_LKEY:
		return (struct ffv_sge){b, 4096, mr->lkey ^ 0x5a5a00};
	default:
		return (struct ffv_sge){b, 4096, mr->lkey};
	}
}

/* Runs one attack on a fresh pair; returns the sender's status. */
static enum ibv_wc_status attack(struct ffv_dev *d, struct ibv_mr *mr, const struct attack *t,
				 const struct ffv_victim *v)
{
	struct ffv_sge sg = local_sge(t, mr, v);
	uint64_t b = (uintptr_t)mr->addr;
	uint64_t raddr = t->remote_victim ? v->addr : b + 32768;
	uint32_t rkey = t->remote_victim ? v->rkey : mr->rkey;
	struct ibv_cq *cq = ibv_create_cq(d->ctx, 16, NULL, NULL, 0);
	enum ibv_wc_status snd = IBV_WC_GENERAL_ERR, rcv = IBV_WC_SUCCESS;
	struct ibv_qp *qp[2];
	struct ibv_wc wc;
	bool got_snd = false, got_rcv = !t->recv_victim; /* else the receive stays posted */
	int err;

	FFV_CHECK(cq, "ibv_create_cq: %s", strerror(errno));
	ffv_pair(d, cq, qp);
	memset((uint8_t *)mr->addr + 32768, 0, 8192);
	if (t->op == IBV_WR_SEND)
		FFV_CHECK(!ffv_recv(qp[1], 2, t->recv_victim ? v->addr : b + 32768, 4096,
				    t->recv_victim ? v->lkey : mr->lkey),
			  "post_recv");
	if (t->op == IBV_WR_RDMA_READ && !t->remote_victim)
		raddr = b;
	err = ffv_send(qp[0], t->op, 1, &sg, 1, 0, 0, raddr, rkey);
	FFV_CHECK(!err, "%s: post failed with %s (it should fail at the device)", t->name,
		  strerror(err));
	while (!got_snd || !got_rcv) {
		if (!ffv_poll_try(cq, &wc, ATTACK_MS))
			break;
		if (wc.wr_id == 1) {
			snd = wc.status;
			got_snd = true;
		} else if (wc.wr_id == 2) {
			rcv = wc.status;
			got_rcv = true;
		}
	}
	FFV_CHECK(got_snd, "%s: no completion in %d ms", t->name, ATTACK_MS);
	FFV_CHECK(!t->recv_victim || (got_rcv && local_error(rcv) && snd != IBV_WC_SUCCESS),
		  "%s: receive %s, send %s", t->name, ibv_wc_status_str(rcv),
		  ibv_wc_status_str(snd));
	for (int i = 0; i < 8192; i++)
		FFV_CHECK(!((uint8_t *)mr->addr)[32768 + i], "%s: bytes arrived", t->name);
	FFV_CHECK(ffv_same(mr->addr, 4096, OWN_SEED, 0), "%s: bytes arrived in b's MR", t->name);
	ffv_qp_destroy(qp[0]);
	ffv_qp_destroy(qp[1]);
	FFV_CHECK(!(err = ibv_destroy_cq(cq)), "ibv_destroy_cq: %s", strerror(err));
	return t->recv_victim ? rcv : snd;
}

/* modify_qp to RTR towards (gid, qpn); the errno it fails with. A QP
 * whose RTR was refused is still in INIT with no destination. */
static int connect_to(struct ffv_dev *d, struct ibv_cq *cq, const uint8_t gid[16], uint32_t qpn)
{
	static const uint8_t none[16];
	struct ibv_qp *qp = ffv_qp_rc(d, cq, cq, NULL, 0);
	struct ibv_qp_init_attr ia;
	struct ibv_qp_attr a;
	const char *step;
	int err = ffv_qp_connect(d, qp, qpn, gid, 1, 1, &step);

	FFV_CHECK(!err || !strcmp(step, "RTR"), "connect failed at %s: %s", step, strerror(err));
	FFV_CHECK(!ibv_query_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV, &ia), "ibv_query_qp failed");
	FFV_CHECK(!err || (a.qp_state == IBV_QPS_INIT && !memcmp(a.ah_attr.grh.dgid.raw, none, 16)),
		  "after a refused RTR, query_qp says state %d, dgid %02x%02x...%02x", a.qp_state,
		  a.ah_attr.grh.dgid.raw[0], a.ah_attr.grh.dgid.raw[1], a.ah_attr.grh.dgid.raw[15]);
	ffv_qp_destroy(qp);
	return err;
}

static void steal_connect(struct ffv_dev *d, const struct ffv_victim *v)
{
	struct ibv_cq *cq = ibv_create_cq(d->ctx, 16, NULL, NULL, 0);
	struct ibv_qp *own = ffv_qp_rc(d, cq, cq, NULL, 0);
	uint8_t nobody[16] = {[10] = 0xff, [11] = 0xff, 10, 78, 0, 99};
	int e1, e2, e3, err;

	FFV_CHECK(cq, "ibv_create_cq: %s", strerror(errno));
	e1 = connect_to(d, cq, d->gid.raw, v->qpn);
	e2 = connect_to(d, cq, v->gid, own->qp_num);
	e3 = connect_to(d, cq, nobody, own->qp_num);
	FFV_CHECK(e1 == EINVAL, "connecting to a's QP 0x%x under b's own GID: %s", v->qpn,
		  strerror(e1));
	FFV_CHECK(e2 == EINVAL, "connecting to b's QP 0x%x under a's GID: %s", own->qp_num,
		  strerror(e2));
	FFV_CHECK(e3 == EHOSTUNREACH, "connecting to 10.78.0.99 (no container): %s", strerror(e3));
	ffv_ok("modify_qp(RTR) refused: a's QP number under b's GID (EINVAL), b's QP under a's GID "
	       "(EINVAL), a GID no container owns (EHOSTUNREACH)");
	ffv_qp_destroy(own);
	FFV_CHECK(!(err = ibv_destroy_cq(cq)), "ibv_destroy_cq: %s", strerror(err));
}

/* RDMA_WRITE of 64 bytes into a's MR with a's rkey through qp. */
static enum ibv_wc_status write_victim(struct ibv_qp *qp, struct ibv_cq *cq, struct ibv_mr *mr,
				       const struct ffv_victim *v)
{
	struct ffv_sge sg = {(uintptr_t)mr->addr, 64, mr->lkey};
	struct ibv_wc wc;

	FFV_CHECK(!ffv_send(qp, IBV_WR_RDMA_WRITE, 77, &sg, 1, 0, 0, v->addr, v->rkey),
		  "post RDMA_WRITE");
	return ffv_poll_try(cq, &wc, ATTACK_MS) ? wc.status : IBV_WC_RESP_TIMEOUT_ERR;
}

/* Connecting to a's QPs themselves, under a's GID (PSN 4242 as if b knew
 * it): the one already connected is refused; the free one is accepted
 * but cut off once a connects it to its own. */
static void steal_hijack(struct ffv_dev *d, struct ibv_mr *mr, const struct ffv_victim *v,
			 const char *file)
{
	struct ibv_cq *cq = ibv_create_cq(d->ctx, 16, NULL, NULL, 0);
	struct ibv_qp *z = ffv_qp_rc(d, cq, cq, NULL, 0);
	char path[4096];
	const char *step;
	enum ibv_wc_status st;
	int err;

	FFV_CHECK(cq, "ibv_create_cq: %s", strerror(errno));
	err = ffv_qp_connect(d, z, v->qpn, v->gid, 4242, 4242, &step);
	FFV_CHECK(err == EINVAL && !strcmp(step, "RTR"),
		  "connecting to a's QP 0x%x, connected to another: %s at %s", v->qpn,
		  strerror(err), step);
	ffv_ok("connecting to a's QP 0x%x, which is connected to another: EINVAL", v->qpn);
	ffv_qp_destroy(z);
	z = ffv_qp_rc(d, cq, cq, NULL, 0);
	err = ffv_qp_connect(d, z, v->free_qpn, v->gid, 4242, 4242, &step);
	FFV_CHECK(!err, "connecting to a's free QP 0x%x (%s): %s", v->free_qpn, step,
		  strerror(err));
	snprintf(path, sizeof(path), "%s.z", file);
	FFV_CHECK(!close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), "%s: %s", path,
		  strerror(errno));
	snprintf(path, sizeof(path), "%s.x", file);
	wait_file(path, 300);
	st = write_victim(z, cq, mr, v);
	FFV_CHECK(st != IBV_WC_SUCCESS, "RDMA_WRITE into a's MR through a's QP 0x%x succeeded",
		  v->free_qpn);
	ffv_ok("a QP connected to a's free QP 0x%x is cut off when a connects it: RDMA_WRITE "
	       "with a's rkey -> %s, nothing moved",
	       v->free_qpn, ibv_wc_status_str(st));
	ffv_qp_destroy(z);
	FFV_CHECK(!(err = ibv_destroy_cq(cq)), "ibv_destroy_cq: %s", strerror(err));
}

int ffv_steal(const char *file, const char *dev)
{
	struct ffv_victim v;
	struct ffv_dev d;
	struct ibv_mr *mr;
	struct ibv_cq *cq;
	struct ibv_qp *qp[2];

	ffv_victim_read(file, &v);
	ffv_dev_open(&d, dev);
	mr = ffv_reg(&d, MR_LEN,
		     IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	ffv_fill(mr->addr, MR_LEN, OWN_SEED, 0);
	for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		const struct attack *t = &attacks[i];
		enum ibv_wc_status st = attack(&d, mr, t, &v);

		FFV_CHECK(t->remote ? remote_error(st) : local_error(st),
			  "%s: %s (wanted a %s error)", t->name, ibv_wc_status_str(st),
			  t->remote ? "remote" : "local");
		ffv_ok("%s: %s, nothing moved", t->name, ibv_wc_status_str(st));
	}
	steal_connect(&d, &v);
	steal_hijack(&d, mr, &v, file);
	cq = ibv_create_cq(d.ctx, 64, NULL, NULL, 0);
	FFV_CHECK(cq, "ibv_create_cq: %s", strerror(errno));
	ffv_pair(&d, cq, qp);
	traffic(&d, mr, cq, qp, OWN_SEED);
	ffv_ok("after the attempts b's own SEND, RDMA_WRITE and RDMA_READ still work");
	teardown(&d, mr, cq, qp);
	return 0;
}
