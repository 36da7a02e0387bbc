/* ffverbs server / client: the verbs perftest leaves out, between two
 * processes (two containers) over three RC QPs, with a TCP exchange.
 *
 * Server: two MRs (ibv_reg_mr; ibv_reg_mr_iova2 at an iova unlike its
 * address), a receive CQ on a completion channel, an SRQ shared by two
 * QPs with a limit, one QP with its own receive queue. Client: SEND (two
 * SGEs), SEND_WITH_IMM, SEND inline, RDMA_WRITE by iova,
 * RDMA_WRITE_WITH_IMM, RDMA_READ, two SENDs landing through the SRQ, and
 * atomics when the device has them. Each side checks every completion
 * (status, opcode, byte_len, imm_data, qp_num) and every byte that moved;
 * then queries, refusals (EBUSY, EOPNOTSUPP) and an orderly teardown. */
#include "ffverbs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BUF_LEN	   65536
#define WIN_LEN	   16384
#define WIN_IOVA   0x5a5a00000000ULL /* nothing is mapped there in the app */
#define IMM_SEND   0xdeadbeefu
#define IMM_WRITE  0xcafef00du
#define SRQ_WRS	   8
#define SRQ_LIMIT  (SRQ_WRS - 1)
#define INLINE_LEN 48

/* Server buffer layout */
#define OFF_RECV   0	 /* 4 receives of 4 KiB on the main QP */
#define OFF_SRQ	   16384 /* SRQ_WRS receives of 1 KiB */
#define OFF_WIMM   32768 /* RDMA_WRITE_WITH_IMM target, 256 B */
#define OFF_ATOMIC 40960 /* 8 B counter */
#define OFF_READ   49152 /* RDMA_READ source, 4 KiB */
#define WIN_OFF	   1000	 /* RDMA_WRITE target in the window, 8 KiB */
#define WIN_WRITE  8192

enum { Q_MAIN, Q_S1, Q_S2, NQ };

struct side {
	bool server;
	struct ffv_dev d;
	struct ibv_mr *buf, *win;
	void *win_mem;
	struct ibv_comp_channel *ch;
	struct ibv_cq *scq, *rcq, *srq_cq;
	struct ibv_srq *srq;
	struct ibv_qp *qp[NQ];
	bool atomics;
	int fd;
};

struct wire {
	uint32_t qpn[NQ];
	uint32_t psn;
	uint8_t gid[16];
	uint64_t buf_addr, win_iova, win_addr;
	uint32_t buf_rkey, win_rkey;
};

static int rcq_marker;

/* ---- set-up ---- */

static void check_device(struct side *s)
{
	const struct ffv_dev *d = &s->d;
	union ibv_gid g0;
	__be16 pkey;
	char gs[64];

	FFV_CHECK(d->da.phys_port_cnt == 1 && d->da.max_qp > 0 && d->da.max_cqe > 0 &&
		      d->da.max_mr > 0 && d->da.max_srq > 0 && d->da.node_guid,
		  "ibv_query_device: %d ports, max_qp %d, max_cqe %d, max_srq %d",
		  d->da.phys_port_cnt, d->da.max_qp, d->da.max_cqe, d->da.max_srq);
	FFV_CHECK(d->port.state == IBV_PORT_ACTIVE &&
		      d->port.link_layer == IBV_LINK_LAYER_ETHERNET && d->port.gid_tbl_len >= 2 &&
		      d->port.active_mtu >= IBV_MTU_256,
		  "ibv_query_port: state %d, link layer %d, %d GIDs", d->port.state,
		  d->port.link_layer, d->port.gid_tbl_len);
	FFV_CHECK(!ibv_query_gid(d->ctx, 1, 0, &g0), "ibv_query_gid(0) failed");
	FFV_CHECK(ibv_query_gid(d->ctx, 1, d->port.gid_tbl_len, &g0) != 0,
		  "ibv_query_gid past the table succeeded");
	FFV_CHECK(!ibv_query_pkey(d->ctx, 1, 0, &pkey) && pkey == htons(0xffff),
		  "ibv_query_pkey(0) is not the default P_Key");
	FFV_CHECK(ibv_query_pkey(d->ctx, 1, 1, &pkey) != 0, "ibv_query_pkey(1) succeeded");
	s->atomics = d->da.atomic_cap != IBV_ATOMIC_NONE;
	ffv_ok("device %s: 1 port ACTIVE Ethernet, mtu %d, max_qp %d, atomics %s, gid[1] %s, "
	       "pkey[0] 0xffff",
	       ibv_get_device_name(d->ctx->device), 128 << d->port.active_mtu, d->da.max_qp,
	       s->atomics ? "yes" : "no", ffv_gid_str(d->gid.raw, gs, sizeof(gs)));
}

static void setup_mrs(struct side *s)
{
	int acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
		  IBV_ACCESS_REMOTE_ATOMIC;

	uint8_t *mem =
	    mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ibv_mr *pre;
	int err;

	/* the buffer's MR spans three memfd ranges: the middle one comes from
	 * an MR registered (and deregistered) before */
	FFV_CHECK(mem != MAP_FAILED, "mmap: %s", strerror(errno));
	ffv_fill(mem, BUF_LEN, 11, 0);
	pre = ibv_reg_mr(s->d.pd, mem + 8192, 4096, IBV_ACCESS_LOCAL_WRITE);
	FFV_CHECK(pre, "ibv_reg_mr: %s", strerror(errno));
	s->buf = (ibv_reg_mr)(s->d.pd, mem, BUF_LEN, acc);
	FFV_CHECK(s->buf, "ibv_reg_mr: %s", strerror(errno));
	FFV_CHECK(!(err = ibv_dereg_mr(pre)), "ibv_dereg_mr: %s", strerror(err));
	FFV_CHECK(ffv_same(mem, BUF_LEN, 11, 0), "registering changed the buffer's bytes");
	memset(s->buf->addr, 0, BUF_LEN);
	s->win_mem =
	    mmap(NULL, WIN_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	FFV_CHECK(s->win_mem != MAP_FAILED, "mmap: %s", strerror(errno));
	s->win = ibv_reg_mr_iova2(s->d.pd, s->win_mem, WIN_LEN, WIN_IOVA,
				  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	FFV_CHECK(s->win, "ibv_reg_mr_iova2: %s", strerror(errno));
	FFV_CHECK(s->win->addr == s->win_mem && s->win->length == WIN_LEN && s->win->lkey &&
		      s->win->rkey && s->buf->lkey != s->win->lkey,
		  "ibv_reg_mr_iova2 returned addr %p len %zu", s->win->addr, s->win->length);
	ffv_ok("MRs: ibv_reg_mr over 3 memfd ranges (bytes kept), ibv_reg_mr_iova2 at iova 0x%llx",
	       (unsigned long long)WIN_IOVA);
}

static void setup(struct side *s, const char *dev)
{
	struct ibv_srq_init_attr sa = {.attr = {.max_wr = SRQ_WRS, .max_sge = 1}};

	ffv_dev_open(&s->d, dev);
	check_device(s);
	setup_mrs(s);
	s->ch = ibv_create_comp_channel(s->d.ctx);
	FFV_CHECK(s->ch && s->ch->fd >= 0, "ibv_create_comp_channel: %s", strerror(errno));
	s->scq = ibv_create_cq(s->d.ctx, 32, NULL, NULL, 0);
	s->rcq = ibv_create_cq(s->d.ctx, 32, &rcq_marker, s->ch, 0);
	s->srq_cq = ibv_create_cq(s->d.ctx, 32, NULL, NULL, 0);
	FFV_CHECK(s->scq && s->rcq && s->srq_cq, "ibv_create_cq: %s", strerror(errno));
	FFV_CHECK(s->rcq->cqe >= 32 && s->rcq->channel == s->ch, "the CQ has %d entries",
		  s->rcq->cqe);
	if (s->server) {
		s->srq = ibv_create_srq(s->d.pd, &sa);
		FFV_CHECK(s->srq, "ibv_create_srq: %s", strerror(errno));
		FFV_CHECK(sa.attr.max_wr >= SRQ_WRS, "the SRQ has %u entries", sa.attr.max_wr);
	}
	s->qp[Q_MAIN] = ffv_qp_rc(&s->d, s->scq, s->rcq, NULL, 64);
	s->qp[Q_S1] = ffv_qp_rc(&s->d, s->scq, s->srq ? s->srq_cq : s->rcq, s->srq, 0);
	s->qp[Q_S2] = ffv_qp_rc(&s->d, s->scq, s->srq ? s->srq_cq : s->rcq, s->srq, 0);
}

static void exchange(struct side *s, struct wire *peer)
{
	struct wire me = {.psn = s->server ? 1111 : 2222};
	const char *step;
	int err;

	for (int i = 0; i < NQ; i++)
		me.qpn[i] = s->qp[i]->qp_num;
	memcpy(me.gid, s->d.gid.raw, 16);
	me.buf_addr = (uintptr_t)s->buf->addr;
	me.buf_rkey = s->buf->rkey;
	me.win_iova = WIN_IOVA;
	me.win_addr = (uintptr_t)s->win_mem;
	me.win_rkey = s->win->rkey;
	ffv_xchg(s->fd, &me, peer, sizeof(me));
	for (int i = 0; i < NQ; i++) {
		err = ffv_qp_connect(&s->d, s->qp[i], peer->qpn[i], peer->gid, me.psn, peer->psn,
				     &step);
		FFV_CHECK(!err, "QP %d to the peer's 0x%x (%s): %s", i, peer->qpn[i], step,
			  strerror(err));
	}
	ffv_ok("3 RC QPs connected (main 0x%x, srq 0x%x 0x%x)", s->qp[0]->qp_num, s->qp[1]->qp_num,
	       s->qp[2]->qp_num);
}

/* ---- server ---- */

static void post_receives(struct side *s)
{
	uint64_t b = (uintptr_t)s->buf->addr;
	struct ibv_srq_attr a = {.srq_limit = SRQ_LIMIT};
	int err;

	for (int i = 0; i < 4; i++)
		FFV_CHECK(
		    !ffv_recv(s->qp[Q_MAIN], 100 + i, b + OFF_RECV + i * 4096u, 4096, s->buf->lkey),
		    "ibv_post_recv failed");
	for (int i = 0; i < SRQ_WRS; i++)
		FFV_CHECK(
		    !ffv_srq_recv(s->srq, 200 + i, b + OFF_SRQ + i * 1024u, 1024, s->buf->lkey),
		    "ibv_post_srq_recv failed");
	FFV_CHECK(!ibv_modify_srq(s->srq, &a, IBV_SRQ_LIMIT), "ibv_modify_srq(limit) failed");
	memset(&a, 0, sizeof(a));
	FFV_CHECK(!ibv_query_srq(s->srq, &a) && a.srq_limit == SRQ_LIMIT && a.max_wr >= SRQ_WRS,
		  "ibv_query_srq: limit %u, max_wr %u", a.srq_limit, a.max_wr);
	ffv_ok("SRQ: %d receives posted, limit %d set (ibv_modify_srq, ibv_query_srq)", SRQ_WRS,
	       SRQ_LIMIT);
	a.max_wr = 2 * SRQ_WRS;
	err = ibv_modify_srq(s->srq, &a, IBV_SRQ_MAX_WR);
	FFV_CHECK(!!(s->d.da.device_cap_flags & IBV_DEVICE_SRQ_RESIZE) == !err,
		  "the device %s IBV_DEVICE_SRQ_RESIZE, and resizing the SRQ gives %s",
		  s->d.da.device_cap_flags & IBV_DEVICE_SRQ_RESIZE ? "has" : "lacks",
		  strerror(err));
	ffv_ok("SRQ resize: %s, as the device's IBV_DEVICE_SRQ_RESIZE says",
	       err ? strerror(err) : "done");
}

/* Receives on the main QP through the completion channel only. */
static void main_recvs(struct side *s, struct ibv_wc *wc, int want)
{
	int got = 0, events = 0;

	while (got < want) {
		struct pollfd p = {.fd = s->ch->fd, .events = POLLIN};
		struct ibv_cq *cq;
		void *ctx;
		int n = ibv_poll_cq(s->rcq, want - got, wc + got);

		FFV_CHECK(n >= 0, "ibv_poll_cq: %d", n);
		got += n;
		if (got == want || n > 0)
			continue;
		FFV_CHECK(poll(&p, 1, FFV_TIMEOUT_MS) == 1,
			  "no completion event after %d ms (%d of %d receives)", FFV_TIMEOUT_MS,
			  got, want);
		FFV_CHECK(!ibv_get_cq_event(s->ch, &cq, &ctx), "ibv_get_cq_event: %s",
			  strerror(errno));
		FFV_CHECK(cq == s->rcq && ctx == &rcq_marker, "the event names another CQ");
		events++;
		FFV_CHECK(!ibv_req_notify_cq(s->rcq, 0), "ibv_req_notify_cq failed");
	}
	ibv_ack_cq_events(s->rcq, (unsigned)events);
	FFV_CHECK(events >= 1, "no completion event");
	ffv_ok("completion channel: %d event(s) for %d receives (req_notify_cq, get_cq_event, "
	       "ack_cq_events)",
	       events, want);
}

static void check_recv(const struct side *s, const struct ibv_wc *wc, uint64_t wr_id,
		       enum ibv_wc_opcode op, uint32_t len, int64_t imm)
{
	FFV_CHECK(wc->wr_id == wr_id && wc->status == IBV_WC_SUCCESS && wc->opcode == op &&
		      wc->byte_len == len && wc->qp_num == s->qp[Q_MAIN]->qp_num,
		  "receive %llu: wr_id %llu status %s opcode %s byte_len %u qp 0x%x (wanted %s %u)",
		  (unsigned long long)wr_id, (unsigned long long)wc->wr_id,
		  ibv_wc_status_str(wc->status), ffv_opcode_str(wc->opcode), wc->byte_len,
		  wc->qp_num, ffv_opcode_str(op), len);
	if (imm >= 0)
		FFV_CHECK((wc->wc_flags & IBV_WC_WITH_IMM) && wc->imm_data == htonl((uint32_t)imm),
			  "receive %llu: imm_data 0x%x flags 0x%x", (unsigned long long)wr_id,
			  ntohl(wc->imm_data), wc->wc_flags);
	else
		FFV_CHECK(!(wc->wc_flags & IBV_WC_WITH_IMM), "receive %llu has imm_data",
			  (unsigned long long)wr_id);
}

static void server_main(struct side *s)
{
	uint8_t *b = s->buf->addr;
	struct ibv_wc wc[4];

	main_recvs(s, wc, 4);
	check_recv(s, &wc[0], 100, IBV_WC_RECV, 1000, -1);
	FFV_CHECK(ffv_same(b + OFF_RECV, 1000, 1, 0), "SEND (2 SGEs): wrong bytes");
	ffv_ok("SEND from 2 SGEs: RECV, 1000 bytes, data ok");
	check_recv(s, &wc[1], 101, IBV_WC_RECV, 512, IMM_SEND);
	FFV_CHECK(ffv_same(b + OFF_RECV + 4096, 512, 2, 0), "SEND_WITH_IMM: wrong bytes");
	ffv_ok("SEND_WITH_IMM: RECV with imm_data 0x%x, 512 bytes, data ok", IMM_SEND);
	check_recv(s, &wc[2], 102, IBV_WC_RECV, INLINE_LEN, -1);
	FFV_CHECK(ffv_same(b + OFF_RECV + 8192, INLINE_LEN, 3, 0), "SEND inline: wrong bytes");
	ffv_ok("SEND with IBV_SEND_INLINE: RECV, %d bytes, data ok", INLINE_LEN);
	check_recv(s, &wc[3], 103, IBV_WC_RECV_RDMA_WITH_IMM, 256, IMM_WRITE);
	FFV_CHECK(ffv_same(b + OFF_WIMM, 256, 4, 0), "RDMA_WRITE_WITH_IMM: wrong bytes");
	for (int i = 0; i < 4096; i++)
		FFV_CHECK(!b[OFF_RECV + 12288 + i],
			  "RDMA_WRITE_WITH_IMM wrote into the receive buffer");
	ffv_ok("RDMA_WRITE_WITH_IMM: RECV_RDMA_WITH_IMM with imm_data 0x%x, byte_len 256, data ok",
	       IMM_WRITE);
}

static void server_window(struct side *s)
{
	const uint8_t *w = s->win_mem;

	FFV_CHECK(ffv_same(w + WIN_OFF, WIN_WRITE, 8, 0), "RDMA_WRITE by iova: wrong bytes");
	for (size_t i = 0; i < WIN_LEN; i++)
		FFV_CHECK(w[i] == 0 || (i >= WIN_OFF && i < WIN_OFF + WIN_WRITE),
			  "RDMA_WRITE by iova wrote byte %zu of the window", i);
	ffv_ok("RDMA_WRITE to iova 0x%llx+%d (ibv_reg_mr_iova2): %d bytes landed at address %p+%d",
	       (unsigned long long)WIN_IOVA, WIN_OFF, WIN_WRITE, s->win_mem, WIN_OFF);
}

static void server_srq(struct side *s)
{
	uint8_t *b = s->buf->addr;
	uint32_t seen[2] = {0, 0};

	for (int i = 0; i < 2; i++) {
		struct ibv_wc wc;
		uint64_t k;
		unsigned seed;

		ffv_poll(s->srq_cq, &wc, FFV_TIMEOUT_MS, "a receive through the SRQ");
		k = wc.wr_id - 200;
		FFV_CHECK(wc.status == IBV_WC_SUCCESS && wc.opcode == IBV_WC_RECV && k < SRQ_WRS &&
			      wc.byte_len == 256,
			  "SRQ receive: wr_id %llu status %s opcode %s byte_len %u",
			  (unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status),
			  ffv_opcode_str(wc.opcode), wc.byte_len);
		FFV_CHECK(wc.qp_num == s->qp[Q_S1]->qp_num || wc.qp_num == s->qp[Q_S2]->qp_num,
			  "SRQ receive on QP 0x%x", wc.qp_num);
		seen[i] = wc.qp_num;
		seed = wc.qp_num == s->qp[Q_S1]->qp_num ? 6 : 7;
		FFV_CHECK(ffv_same(b + OFF_SRQ + k * 1024, 256, seed, 0),
			  "SRQ receive on QP 0x%x: wrong bytes", wc.qp_num);
	}
	FFV_CHECK(seen[0] != seen[1], "both SRQ receives came from QP 0x%x", seen[0]);
	ffv_ok("SRQ: one SEND on each of 2 QPs received through the SRQ (qp_num 0x%x, 0x%x), "
	       "data ok",
	       seen[0], seen[1]);
}

static void server_srq_limit(struct side *s)
{
	struct pollfd p = {.fd = s->d.ctx->async_fd, .events = POLLIN};
	struct ibv_async_event ev;
	struct ibv_srq_attr a;

	FFV_CHECK(poll(&p, 1, FFV_TIMEOUT_MS) == 1, "no async event after the SRQ fell below "
						    "its limit");
	FFV_CHECK(!ibv_get_async_event(s->d.ctx, &ev), "ibv_get_async_event: %s", strerror(errno));
	FFV_CHECK(ev.event_type == IBV_EVENT_SRQ_LIMIT_REACHED && ev.element.srq == s->srq,
		  "async event %s (%d)", ibv_event_type_str(ev.event_type), ev.event_type);
	ibv_ack_async_event(&ev);
	FFV_CHECK(!ibv_query_srq(s->srq, &a) && a.srq_limit == 0,
		  "the SRQ limit is %u after its event", a.srq_limit);
	ffv_ok("SRQ: IBV_EVENT_SRQ_LIMIT_REACHED on ibv_get_async_event, limit disarmed");
}

static void server_atomics(struct side *s)
{
	uint64_t v;

	memcpy(&v, (uint8_t *)s->buf->addr + OFF_ATOMIC, 8);
	FFV_CHECK(v == 0x7777, "atomics left 0x%llx in the counter", (unsigned long long)v);
	ffv_ok("atomics: FETCH_ADD then COMP_SWAP left 0x7777 in the counter");
}

/* ---- client ---- */

struct expect {
	uint64_t wr_id;
	enum ibv_wc_opcode op;
	uint32_t len;
	const char *what;
	int q;
};

static void client_post(struct side *s, const struct wire *p)
{
	uint64_t b = (uintptr_t)s->buf->addr;
	uint32_t k = s->buf->lkey;
	uint8_t inl[INLINE_LEN];
	struct ffv_sge two[2] = {{b, 600, k}, {b + 2048, 400, k}};
	struct ffv_sge sg;
	struct ibv_qp *m = s->qp[Q_MAIN];

	ffv_fill((void *)(uintptr_t)b, 600, 1, 0);
	ffv_fill((void *)(uintptr_t)(b + 2048), 400, 1, 600);
	ffv_fill((void *)(uintptr_t)(b + 4096), 512, 2, 0);
	ffv_fill(inl, sizeof(inl), 3, 0);
	ffv_fill((void *)(uintptr_t)(b + 8192), WIN_WRITE, 8, 0);
	ffv_fill((void *)(uintptr_t)(b + 20480), 256, 4, 0);
	ffv_fill((void *)(uintptr_t)(b + 24576), 256, 6, 0);
	ffv_fill((void *)(uintptr_t)(b + 28672), 256, 7, 0);
	FFV_CHECK(!ffv_send(m, IBV_WR_SEND, 1, two, 2, 0, 0, 0, 0), "post SEND");
	sg = (struct ffv_sge){b + 4096, 512, k};
	FFV_CHECK(!ffv_send(m, IBV_WR_SEND_WITH_IMM, 2, &sg, 1, 0, IMM_SEND, 0, 0), "post IMM");
	sg = (struct ffv_sge){(uintptr_t)inl, INLINE_LEN, 0};
	FFV_CHECK(!ffv_send(m, IBV_WR_SEND, 3, &sg, 1, IBV_SEND_INLINE, 0, 0, 0), "post inline");
	memset(inl, 0, sizeof(inl)); /* inline data is copied at post time */
	sg = (struct ffv_sge){b + 8192, WIN_WRITE, k};
	FFV_CHECK(
	    !ffv_send(m, IBV_WR_RDMA_WRITE, 4, &sg, 1, 0, 0, p->win_iova + WIN_OFF, p->win_rkey),
	    "post RDMA_WRITE");
	sg = (struct ffv_sge){b + 20480, 256, k};
	FFV_CHECK(!ffv_send(m, IBV_WR_RDMA_WRITE_WITH_IMM, 5, &sg, 1, 0, IMM_WRITE,
			    p->buf_addr + OFF_WIMM, p->buf_rkey),
		  "post RDMA_WRITE_WITH_IMM");
	sg = (struct ffv_sge){b + 32768, 4096, k};
	FFV_CHECK(
	    !ffv_send(m, IBV_WR_RDMA_READ, 6, &sg, 1, 0, 0, p->buf_addr + OFF_READ, p->buf_rkey),
	    "post RDMA_READ");
	sg = (struct ffv_sge){b + 24576, 256, k};
	FFV_CHECK(!ffv_send(s->qp[Q_S1], IBV_WR_SEND, 7, &sg, 1, 0, 0, 0, 0), "post SEND s1");
	sg = (struct ffv_sge){b + 28672, 256, k};
	FFV_CHECK(!ffv_send(s->qp[Q_S2], IBV_WR_SEND, 8, &sg, 1, 0, 0, 0, 0), "post SEND s2");
	if (!s->atomics)
		return;
	sg = (struct ffv_sge){b + 36864, 8, k};
	FFV_CHECK(!ffv_atomic(m, IBV_WR_ATOMIC_FETCH_AND_ADD, 9, &sg, p->buf_addr + OFF_ATOMIC,
			      p->buf_rkey, 0x5555 - 1000, 0),
		  "post FETCH_ADD");
	sg = (struct ffv_sge){b + 36872, 8, k};
	FFV_CHECK(!ffv_atomic(m, IBV_WR_ATOMIC_CMP_AND_SWP, 10, &sg, p->buf_addr + OFF_ATOMIC,
			      p->buf_rkey, 0x5555, 0x7777),
		  "post COMP_SWAP");
}

static void client_completions(struct side *s)
{
	static const struct expect ex[] = {
	    {1, IBV_WC_SEND, 1000, "SEND", Q_MAIN},
	    {2, IBV_WC_SEND, 512, "SEND_WITH_IMM", Q_MAIN},
	    {3, IBV_WC_SEND, INLINE_LEN, "SEND inline", Q_MAIN},
	    {4, IBV_WC_RDMA_WRITE, WIN_WRITE, "RDMA_WRITE", Q_MAIN},
	    {5, IBV_WC_RDMA_WRITE, 256, "RDMA_WRITE_WITH_IMM", Q_MAIN},
	    {6, IBV_WC_RDMA_READ, 4096, "RDMA_READ", Q_MAIN},
	    {7, IBV_WC_SEND, 256, "SEND (SRQ 1)", Q_S1},
	    {8, IBV_WC_SEND, 256, "SEND (SRQ 2)", Q_S2},
	    {9, IBV_WC_FETCH_ADD, 8, "FETCH_ADD", Q_MAIN},
	    {10, IBV_WC_COMP_SWAP, 8, "COMP_SWAP", Q_MAIN},
	};
	int n = s->atomics ? 10 : 8;
	bool seen[11] = {false};

	for (int i = 0; i < n; i++) {
		struct ibv_wc wc;
		const struct expect *e;

		ffv_poll(s->scq, &wc, FFV_TIMEOUT_MS, "a send completion");
		FFV_CHECK(wc.wr_id >= 1 && wc.wr_id <= (uint64_t)n && !seen[wc.wr_id],
			  "send completion with wr_id %llu", (unsigned long long)wc.wr_id);
		seen[wc.wr_id] = true;
		e = &ex[wc.wr_id - 1];
		FFV_CHECK(wc.status == IBV_WC_SUCCESS && wc.opcode == e->op &&
			      wc.qp_num == s->qp[e->q]->qp_num,
			  "%s: status %s opcode %s qp 0x%x (wanted %s)", e->what,
			  ibv_wc_status_str(wc.status), ffv_opcode_str(wc.opcode), wc.qp_num,
			  ffv_opcode_str(e->op));
		/* byte_len is defined for RDMA_READ and atomics only */
		FFV_CHECK(wc.opcode != IBV_WC_RDMA_READ || wc.byte_len == e->len, "%s: byte_len %u",
			  e->what, wc.byte_len);
	}
	ffv_ok("%d send completions: SEND x5, RDMA_WRITE x2, RDMA_READ%s, all successful", n,
	       s->atomics ? ", FETCH_ADD, COMP_SWAP" : "");
}

static void client_data(struct side *s)
{
	const uint8_t *b = s->buf->addr;
	uint64_t old[2];

	FFV_CHECK(ffv_same(b + 32768, 4096, 5, 0), "RDMA_READ: wrong bytes");
	ffv_ok("RDMA_READ: 4096 bytes, data ok");
	if (!s->atomics) {
		ffv_ok("atomics: the device offers none, not tested");
		return;
	}
	memcpy(old, b + 36864, 16);
	FFV_CHECK(old[0] == 1000 && old[1] == 0x5555, "atomics returned %llu and 0x%llx",
		  (unsigned long long)old[0], (unsigned long long)old[1]);
	ffv_ok("atomics: FETCH_ADD returned 1000, COMP_SWAP returned 0x5555");
}

/* An RDMA_WRITE to the window's address instead of its iova. */
static void client_bad_iova(struct side *s, const struct wire *p)
{
	struct ffv_sge sg = {(uintptr_t)s->buf->addr, 64, s->buf->lkey};
	struct ibv_wc wc;

	if (p->win_addr == p->win_iova)
		return;
	FFV_CHECK(!ffv_send(s->qp[Q_S2], IBV_WR_RDMA_WRITE, 11, &sg, 1, 0, 0, p->win_addr + 64,
			    p->win_rkey),
		  "post RDMA_WRITE");
	ffv_poll(s->scq, &wc, FFV_TIMEOUT_MS, "an RDMA_WRITE outside the window's iova");
	FFV_CHECK(wc.wr_id == 11 && wc.status == IBV_WC_REM_ACCESS_ERR,
		  "RDMA_WRITE to the window's address (not its iova): %s",
		  ibv_wc_status_str(wc.status));
	ffv_ok("RDMA_WRITE to the address instead of the iova: %s", ibv_wc_status_str(wc.status));
}

/* ---- both ---- */

static void check_query_qp(struct side *s, const struct wire *p)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	char g[64];

	memset(&a, 0xee, sizeof(a));
	FFV_CHECK(
	    !ibv_query_qp(s->qp[Q_MAIN], &a,
			  IBV_QP_STATE | IBV_QP_AV | IBV_QP_DEST_QPN | IBV_QP_PATH_MTU | IBV_QP_CAP,
			  &ia),
	    "ibv_query_qp failed");
	FFV_CHECK(a.qp_state == IBV_QPS_RTS && a.dest_qp_num == p->qpn[Q_MAIN] &&
		      a.path_mtu == s->d.port.active_mtu &&
		      !memcmp(a.ah_attr.grh.dgid.raw, p->gid, 16),
		  "ibv_query_qp: state %d dest 0x%x mtu %d dgid %s", a.qp_state, a.dest_qp_num,
		  a.path_mtu, ffv_gid_str(a.ah_attr.grh.dgid.raw, g, sizeof(g)));
	FFV_CHECK(ia.qp_type == IBV_QPT_RC && ia.send_cq == s->scq && ia.recv_cq == s->rcq &&
		      !ia.srq && ia.cap.max_inline_data >= 64 && ia.cap.max_send_wr >= 16,
		  "ibv_query_qp init attributes: type %d inline %u", ia.qp_type,
		  ia.cap.max_inline_data);
	ffv_ok("ibv_query_qp: RTS, dest_qp_num 0x%x, dgid %s, mtu %d, inline %u", a.dest_qp_num,
	       ffv_gid_str(p->gid, g, sizeof(g)), 128 << a.path_mtu, ia.cap.max_inline_data);
	FFV_CHECK(!ibv_query_qp(s->qp[Q_S1], &a, IBV_QP_STATE, &ia) && ia.srq == s->srq,
		  "ibv_query_qp on an SRQ QP");
}

static void check_unsupported(struct side *s)
{
	struct ibv_qp_init_attr ud = {
	    .send_cq = s->scq,
	    .recv_cq = s->rcq,
	    .qp_type = IBV_QPT_UD,
	    .cap = {.max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1, .max_recv_sge = 1}};
	struct ibv_ah_attr ah = {.is_global = 1, .port_num = 1, .grh = {.sgid_index = 1}};
	struct ibv_xrcd_init_attr xa = {.comp_mask =
					    IBV_XRCD_INIT_ATTR_FD | IBV_XRCD_INIT_ATTR_OFLAGS,
					.fd = -1,
					.oflags = O_CREAT};
	struct ibv_cq_init_attr_ex cqa = {.cqe = 4};
	struct ibv_send_wr wr = {.opcode = (enum ibv_wr_opcode)99}, *bad = NULL;

	errno = 0;
	FFV_CHECK(!ibv_create_qp(s->d.pd, &ud) && errno == EOPNOTSUPP,
		  "ibv_create_qp(UD): errno %s", strerror(errno));
	errno = 0;
	FFV_CHECK(!ibv_create_ah(s->d.pd, &ah) && errno == EOPNOTSUPP, "ibv_create_ah: errno %s",
		  strerror(errno));
	errno = 0;
	FFV_CHECK(!ibv_alloc_mw(s->d.pd, IBV_MW_TYPE_1) && errno == EOPNOTSUPP,
		  "ibv_alloc_mw: errno %s", strerror(errno));
	errno = 0;
	FFV_CHECK(!ibv_open_xrcd(s->d.ctx, &xa) && errno == EOPNOTSUPP, "ibv_open_xrcd: errno %s",
		  strerror(errno));
	errno = 0;
	FFV_CHECK(!ibv_create_cq_ex(s->d.ctx, &cqa) && errno == EOPNOTSUPP,
		  "ibv_create_cq_ex: errno %s", strerror(errno));
	FFV_CHECK(ibv_resize_cq(s->scq, 64) == EOPNOTSUPP, "ibv_resize_cq did not fail");
	FFV_CHECK(ibv_post_send(s->qp[Q_S1], &wr, &bad) == EINVAL && bad == &wr,
		  "post_send with opcode 99 was not refused");
	ffv_ok("unsupported verbs fail with EOPNOTSUPP: UD QP, create_ah, alloc_mw, open_xrcd, "
	       "create_cq_ex, resize_cq; opcode 99 -> EINVAL + bad_wr");
}

/* The objects others use refuse to go. */
static void check_busy(struct side *s)
{
	int e1 = ibv_destroy_cq(s->rcq), e2 = ibv_dealloc_pd(s->d.pd);
	int e3 = ibv_destroy_comp_channel(s->ch), e4 = s->srq ? ibv_destroy_srq(s->srq) : EBUSY;

	FFV_CHECK(e1 == EBUSY && e2 == EBUSY && e3 == EBUSY && e4 == EBUSY,
		  "destroying objects in use: cq %s, pd %s, channel %s, srq %s", strerror(e1),
		  strerror(e2), strerror(e3), strerror(e4));
	ffv_ok("objects in use are not destroyed: CQ, PD, channel%s -> EBUSY",
	       s->srq ? ", SRQ" : "");
}

static void teardown(struct side *s)
{
	int err;

	for (int i = 0; i < NQ; i++)
		ffv_qp_destroy(s->qp[i]);
	if (s->srq)
		FFV_CHECK(!(err = ibv_destroy_srq(s->srq)), "ibv_destroy_srq: %s", strerror(err));
	FFV_CHECK(!(err = ibv_destroy_cq(s->scq)), "ibv_destroy_cq: %s", strerror(err));
	FFV_CHECK(!(err = ibv_destroy_cq(s->rcq)), "ibv_destroy_cq (channel): %s", strerror(err));
	FFV_CHECK(!(err = ibv_destroy_cq(s->srq_cq)), "ibv_destroy_cq: %s", strerror(err));
	FFV_CHECK(!(err = ibv_destroy_comp_channel(s->ch)), "ibv_destroy_comp_channel: %s",
		  strerror(err));
	ffv_dereg(s->buf);
	FFV_CHECK(!(err = ibv_dereg_mr(s->win)), "ibv_dereg_mr: %s", strerror(err));
	ffv_dev_close(&s->d);
	ffv_ok("teardown: QPs, SRQ, CQs, channel, MRs, PD, context all destroyed");
}

int ffv_coverage(bool server, const char *host, int port, const char *dev)
{
	struct side s = {.server = server};
	struct wire p;
	int lfd = -1;

	if (server)
		lfd = ffv_tcp_listen(port);
	setup(&s, dev);
	s.fd = server ? ffv_tcp_accept(lfd) : ffv_tcp_dial(host, port);
	exchange(&s, &p);
	if (server) {
		ffv_fill((uint8_t *)s.buf->addr + OFF_READ, 4096, 5, 0);
		*(uint64_t *)((uint8_t *)s.buf->addr + OFF_ATOMIC) = 1000;
		memset(s.win_mem, 0, WIN_LEN);
		post_receives(&s);
		FFV_CHECK(!ibv_req_notify_cq(s.rcq, 0), "ibv_req_notify_cq failed");
		ffv_sync(s.fd, 1, 1);
		server_main(&s);
		server_window(&s);
		server_srq(&s);
		server_srq_limit(&s);
		ffv_sync(s.fd, 2, 2);
		if (s.atomics)
			server_atomics(&s);
	} else {
		ffv_sync(s.fd, 1, 1);
		client_post(&s, &p);
		client_completions(&s);
		client_data(&s);
		ffv_sync(s.fd, 2, 2);
		client_bad_iova(&s, &p);
		check_unsupported(&s);
	}
	check_query_qp(&s, &p);
	check_busy(&s);
	ffv_sync(s.fd, 3, 3);
	teardown(&s);
	close(s.fd);
	if (lfd >= 0)
		close(lfd);
	ffv_ok("all checks passed");
	return 0;
}
