/* QP pairs between routers. The router that first needs one (active)
 * creates its QP, opens a TCP connection to the other router's ingress and
 * sends a sealed preamble with its QP number, PSN and buffer sizes
 * (XSockPair); the other router (passive) checks that the sender is a host
 * of its map with RDMA, creates its own QP, connects it and answers with a
 * MAC'd XSockMsg; the active side connects its QP and the pair is up. The
 * TCP connection stays open as the lifeline: closing it, from either side
 * or by a router's death, ends the pair.
 * A pair owns its QP, CQ, completion channel, PD, memory region and
 * buffers; the memory region only allows local writes: no rkey exists, the
 * other router can only SEND into receive buffers we posted.
 * Invariants: ntxfree send buffers are free, cur (if >= 0) is being filled
 * and the other npost are posted, in posted[] in the order of posting; all RS_NBUF receive buffers are posted while
 * the pair is up; credits never exceed what the other side posted. */
#include "internal.h"

#include "log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

/* 4.096 us * 2^18: 1.07 s before a send is retried, near what rdma_cm
 * sets on RoCE paths. 67 ms (14) was shorter than a loaded rxe under
 * emulation takes to acknowledge: it retried sends that were not lost. */
#define RS_PORT_TIMEOUT 18
#define RS_RETRY 7
#define RS_RNR_RETRY 7 /* infinite: control records may outrun credits */

static void lline_read_cb(evutil_socket_t fd, short what, void *arg);
static void lline_write_cb(evutil_socket_t fd, short what, void *arg);
static void cq_cb(evutil_socket_t fd, short what, void *arg);
static void flush_cb(evutil_socket_t fd, short what, void *arg);

static uint8_t *txbuf(struct rs_pair *p, uint32_t i)
{
	return p->mem + (size_t)i * RS_BUF_SIZE;
}

static uint8_t *rxbuf(struct rs_pair *p, uint32_t i)
{
	return p->mem + (size_t)(RS_NBUF + i) * RS_BUF_SIZE;
}

void rs_pair_free(struct rs_pair *p)
{
	const struct ffr_ibv *ibv = p->rs->rd->ibv;

	for (uint32_t i = 0; i < p->cap; i++)
		if (p->tab[i])
			rs_conn_free(p->tab[i]);
	TAILQ_REMOVE(&p->rs->pairs, p, link);
	if (p->lrev)
		event_free(p->lrev);
	if (p->lwev)
		event_free(p->lwev);
	if (p->ccev)
		event_free(p->ccev);
	if (p->flush_ev)
		event_free(p->flush_ev);
	if (p->l.fd >= 0)
		close(p->l.fd);
	if (p->qp)
		ibv->destroy_qp(p->qp);
	if (p->cq)
		ibv->destroy_cq(p->cq);
	if (p->cc)
		ibv->destroy_comp_channel(p->cc);
	if (p->mr)
		ibv->dereg_mr(p->mr);
	if (p->pd)
		ibv->dealloc_pd(p->pd);
	if (p->mem)
		munmap(p->mem, p->memlen);
	free(p->tab);
	free(p->gen);
	free(p);
}

void rs_pair_down(struct rs_pair *p, const char *why)
{
	struct rs_conn *c;

	if (p->state == RP_DOWN)
		return;
	ff_info("sockets over RDMA: pair with %s (%s) down: %s; %u connection(s) end", p->host,
		p->active ? "ours" : "theirs", why, p->nconns);
	p->state = RP_DOWN;
	p->rs->pair_failures++;
	/* every connection: the waiting ones go over TCP, the others end */
	while ((c = TAILQ_FIRST(&p->waiting)))
		rs_conn_pair_lost(c);
	for (uint32_t i = 0; i < p->cap; i++)
		if (p->tab[i])
			rs_conn_pair_lost(p->tab[i]);
	rs_pair_free(p);
}

/* ---- the device's part ---- */

static int post_recv(struct rs_pair *p, uint32_t i)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)rxbuf(p, i), .length = RS_BUF_SIZE, .lkey = p->mr->lkey};
	struct ibv_recv_wr wr = {.wr_id = RS_NBUF + i, .sg_list = &sge, .num_sge = 1}, *bad;

	return -ibv_post_recv(p->qp, &wr, &bad);
}

/* PD, buffers, CQ and an INIT QP with every receive posted. */
static int qp_create(struct rs_pair *p)
{
	struct rs *rs = p->rs;
	const struct ffr_ibv *ibv = rs->rd->ibv;
	struct ibv_qp_init_attr ia = {0};
	struct ibv_qp_attr a = {0};
	uint32_t rnd;
	int err;

	p->memlen = (size_t)2 * RS_NBUF * RS_BUF_SIZE;
	p->mem = mmap(NULL, p->memlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->mem == MAP_FAILED) {
		p->mem = NULL;
		return -ENOMEM;
	}
	p->pd = ibv->alloc_pd(rs->rd->probe);
	if (!p->pd)
		return -errno ? -errno : -ENOMEM;
	p->mr = ibv->reg_mr_iova2(p->pd, p->mem, p->memlen, (uintptr_t)p->mem,
				  IBV_ACCESS_LOCAL_WRITE);
	if (!p->mr)
		return -errno ? -errno : -ENOMEM;
	p->cc = ibv->create_comp_channel(rs->rd->probe);
	if (!p->cc)
		return -errno ? -errno : -ENOMEM;
	if (fcntl(p->cc->fd, F_SETFL, fcntl(p->cc->fd, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	p->cq = ibv->create_cq(rs->rd->probe, 2 * RS_NBUF + 16, p, p->cc, 0);
	if (!p->cq)
		return -errno ? -errno : -ENOMEM;
	ia.send_cq = ia.recv_cq = p->cq;
	ia.qp_type = IBV_QPT_RC;
	ia.cap.max_send_wr = RS_NBUF + 8;
	ia.cap.max_recv_wr = RS_NBUF;
	ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
	p->qp = ibv->create_qp(p->pd, &ia);
	if (!p->qp)
		return -errno ? -errno : -ENOMEM;
	a.qp_state = IBV_QPS_INIT;
	a.pkey_index = 0;
	a.port_num = rs->rd->port;
	a.qp_access_flags = 0; /* no RDMA READ or WRITE from the other side */
	err = ibv->modify_qp(p->qp, &a,
			     IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (err)
		return -err;
	for (uint32_t i = 0; i < RS_NBUF; i++) {
		err = post_recv(p, i);
		if (err)
			return err;
	}
	for (uint32_t i = 0; i < RS_NBUF; i++)
		p->txfree[i] = RS_NBUF - 1 - i;
	p->ntxfree = RS_NBUF;
	p->cur = -1;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)random();
	p->psn = rnd & 0xffffff;
	if (ibv_req_notify_cq(p->cq, 0))
		return -EIO;
	p->ccev = event_new(rs->r->base, p->cc->fd, EV_READ | EV_PERSIST, cq_cb, p);
	p->flush_ev = event_new(rs->r->base, -1, 0, flush_cb, p);
	if (!p->ccev || !p->flush_ev || event_add(p->ccev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* INIT -> RTR -> RTS towards the other router's QP. */
static int qp_connect(struct rs_pair *p, const struct ffr_host *h)
{
	struct rs *rs = p->rs;
	const struct ffr_ibv *ibv = rs->rd->ibv;
	struct ibv_qp_attr a = {0};
	union ibv_gid gid;
	int err = ffr_rdma_host_gid(rs->rd, h, &gid);

	if (err)
		return err;
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = rs->rd->active_mtu;
	a.dest_qp_num = p->peer_qpn;
	a.rq_psn = p->peer_psn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 1; /* 0.01 ms: a missing receive is reposted at once */
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = gid;
	a.ah_attr.grh.sgid_index = (uint8_t)rs->rd->gid_index;
	a.ah_attr.grh.hop_limit = 64;
	a.ah_attr.port_num = rs->rd->port;
	err = ibv->modify_qp(p->qp, &a,
			     IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				     IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
				     IBV_QP_MIN_RNR_TIMER);
	if (err)
		return -err;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = RS_PORT_TIMEOUT;
	a.retry_cnt = RS_RETRY;
	a.rnr_retry = RS_RNR_RETRY;
	a.sq_psn = p->psn;
	a.max_rd_atomic = 1;
	err = ibv->modify_qp(p->qp, &a,
			     IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
				     IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
	return -err;
}

static void fill_params(const struct rs_pair *p, Ff__XSockPair *m)
{
	m->qpn = p->qp->qp_num;
	m->psn = p->psn;
	m->rq_depth = RS_NBUF;
	m->buf_size = RS_BUF_SIZE;
	m->window = RS_WINDOW;
}

/* The other side's parameters, checked: 0 or -EPROTO. */
static int take_params(struct rs_pair *p, const Ff__XSockPair *m)
{
	if (!m || !m->qpn || m->qpn > 0xffffff || !m->rq_depth || m->rq_depth > 4096 ||
	    m->buf_size < 4096 || m->buf_size > (16u << 20) || m->window < 4096)
		return -EPROTO;
	p->peer_qpn = m->qpn;
	p->peer_psn = m->psn & 0xffffff;
	p->peer_rq = m->rq_depth;
	p->credits = m->rq_depth;
	p->peer_buf = m->buf_size < RS_BUF_SIZE ? m->buf_size : RS_BUF_SIZE;
	p->window = m->window < RS_WINDOW ? m->window : RS_WINDOW;
	return 0;
}

static struct rs_pair *pair_new(struct rs *rs, const char *host, bool active, int fd)
{
	struct rs_pair *p = calloc(1, sizeof(*p));

	if (!p) {
		close(fd);
		return NULL;
	}
	p->rs = rs;
	p->active = active;
	p->state = RP_CONNECTING;
	snprintf(p->host, sizeof(p->host), "%s", host);
	TAILQ_INIT(&p->ctl);
	TAILQ_INIT(&p->blocked);
	TAILQ_INIT(&p->waiting);
	TAILQ_INSERT_TAIL(&rs->pairs, p, link);
	ffr_xline_init(&p->l, rs->r, fd, FFR_KEY_SOCK, active);
	p->lrev = event_new(rs->r->base, fd, EV_READ | EV_PERSIST, lline_read_cb, p);
	p->lwev = event_new(rs->r->base, fd, EV_WRITE, lline_write_cb, p);
	if (!p->lrev || !p->lwev) {
		rs_pair_free(p);
		return NULL;
	}
	rs->pairs_total++;
	return p;
}

static void pair_up(struct rs_pair *p)
{
	struct rs_conn *c;

	p->state = RP_UP;
	ff_info("sockets over RDMA: pair with %s up (QP %u -> %u, %s)", p->host, p->qp->qp_num,
		p->peer_qpn, p->active ? "ours" : "theirs");
	while ((c = TAILQ_FIRST(&p->waiting)))
		rs_conn_open(c);
}

/* ---- the active side ---- */

static int seal(struct rs_pair *p, const struct ffr_host *h)
{
	Ff__XPreamble pr = FF__XPREAMBLE__INIT;
	Ff__XSockPair sp = FF__XSOCK_PAIR__INIT;
	struct ffr_xbind b;
	int n = ffr_preamble_bind(&pr, &b, h->name, p->l.fd, &h->addr);

	if (n < 0)
		return n;
	pr.src_host = p->rs->r->host_id;
	pr.src_container = "";
	fill_params(p, &sp);
	pr.sock = &sp;
	n = ffr_preamble_seal(p->rs->r, &pr, p->l.out, sizeof(p->l.out));
	if (n < 0)
		return n;
	memcpy(p->l.tag, p->l.out + n - FFR_MAC_LEN, FFR_MAC_LEN);
	p->l.outlen = (size_t)n;
	return 0;
}

struct rs_pair *rs_pair_get(struct rs *rs, const struct ffr_host *h, const char **why)
{
	struct rs_pair *p, *coming = NULL;
	int ms = ffr_xconnect_ms(rs->r), fd, err;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	TAILQ_FOREACH (p, &rs->pairs, link) {
		if (strcmp(p->host, h->name) != 0)
			continue;
		if (p->state == RP_UP)
			return p;
		if (p->state == RP_CONNECTING && p->active)
			coming = p;
	}
	if (coming)
		return coming;
	fd = ffr_xsocket(rs->r, &h->addr);
	if (fd < 0) {
		*why = "cannot reach its router";
		return NULL;
	}
	p = pair_new(rs, h->name, true, fd);
	if (!p) {
		*why = "out of memory";
		return NULL;
	}
	err = qp_create(p);
	if (!err)
		err = seal(p, h);
	if (!err && event_add(p->lwev, &tv) < 0)
		err = -ENOMEM;
	if (err) {
		ff_warn("sockets over RDMA: no pair with %s: %s", h->name, strerror(-err));
		*why = "no QP";
		rs->pair_failures++;
		rs_pair_free(p);
		return NULL;
	}
	return p;
}

static void got_answer(struct rs_pair *p)
{
	Ff__XSockMsg *m = (Ff__XSockMsg *)ffr_xline_open(&p->l, &ff__xsock_msg__descriptor);
	const struct ffr_host *h = ffr_host_find(p->rs->r, p->host);
	char why[200];
	int err;

	if (!m) {
		Ff__Status st;
		char text[160];

		err = ffr_xreply_open(p->rs->r, p->l.tag, p->l.in + 2, p->l.inlen - 2, &st, text,
				      sizeof(text));
		snprintf(why, sizeof(why), "the other router refused: %s",
			 err == -EBADMSG ? "a frame that failed its check" : text);
		rs_pair_down(p, why);
		return;
	}
	if (!m->accept) {
		snprintf(why, sizeof(why), "the other router refused: %.150s", m->error);
		ff__xsock_msg__free_unpacked(m, NULL);
		rs_pair_down(p, why);
		return;
	}
	err = take_params(p, m->accept);
	ff__xsock_msg__free_unpacked(m, NULL);
	if (!err)
		err = h ? qp_connect(p, h) : -EHOSTUNREACH;
	if (err) {
		rs_pair_down(p, err == -EPROTO ? "bad parameters in its answer" : strerror(-err));
		return;
	}
	event_del(p->lrev);
	event_add(p->lrev, NULL); /* no deadline any more */
	pair_up(p);
}

/* ---- the passive side ---- */

static void refuse(struct ffr_router *r, int fd, const uint8_t *tag, const char *why)
{
	struct ffr_xline l;
	Ff__XSockMsg m = FF__XSOCK_MSG__INIT;

	ffr_xline_init(&l, r, fd, FFR_KEY_SOCK, false);
	memcpy(l.tag, tag, FFR_MAC_LEN);
	m.error = (char *)why;
	ffr_xline_send(&l, &m.base);
	close(fd);
}

void rs_pair_incoming(struct ffr_router *r, Ff__XPreamble *pr, int fd, const uint8_t *tag)
{
	struct rs *rs = ffr_rsock_of(r);
	const struct ffr_host *h = ffr_host_find(r, pr->src_host);
	Ff__XSockMsg m = FF__XSOCK_MSG__INIT;
	Ff__XSockPair sp = FF__XSOCK_PAIR__INIT;
	struct rs_pair *p;
	const char *why = NULL;
	int err;

	if (!rs || !rs->enabled)
		why = "sockets over RDMA are off on this host";
	else if (!h || !h->rdma)
		why = "your host has no RDMA in this host's locality map";
	if (why) {
		ff_info("sockets over RDMA: pair asked by %.63s refused: %s", pr->src_host, why);
		ff__xpreamble__free_unpacked(pr, NULL);
		refuse(r, fd, tag, why);
		return;
	}
	p = pair_new(rs, h->name, false, fd);
	if (!p) {
		ff__xpreamble__free_unpacked(pr, NULL);
		return;
	}
	memcpy(p->l.tag, tag, FFR_MAC_LEN);
	err = qp_create(p);
	if (!err)
		err = take_params(p, pr->sock);
	ff__xpreamble__free_unpacked(pr, NULL);
	if (!err)
		err = qp_connect(p, h);
	if (!err) {
		fill_params(p, &sp);
		m.accept = &sp;
		err = ffr_xline_send(&p->l, &m.base);
		if (err == 1)
			event_add(p->lwev, NULL);
	}
	if (err < 0 || event_add(p->lrev, NULL) < 0) {
		ff_warn("sockets over RDMA: pair asked by %s failed: %s", p->host,
			err == -EPROTO ? "bad parameters" : strerror(-err));
		rs->pair_failures++;
		rs_pair_free(p);
		return;
	}
	pair_up(p);
}

/* ---- the lifeline ---- */

static void lline_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rs_pair *p = arg;
	int r;

	if (what & EV_TIMEOUT) {
		rs_pair_down(p, "the other router did not answer in time");
		return;
	}
	r = ffr_xline_read(&p->l);
	if (r == 0)
		return;
	if (r < 0) {
		rs_pair_down(p, r == -ECONNRESET ? "the other router closed the lifeline"
						 : strerror(-r));
		return;
	}
	if (p->active && p->state == RP_CONNECTING)
		got_answer(p);
	else
		rs_pair_down(p, "an unexpected frame on the lifeline");
}

static void lline_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rs_pair *p = arg;
	int ms = ffr_xconnect_ms(p->rs->r);
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	socklen_t len = sizeof(int);
	int err = 0;

	if (what & EV_TIMEOUT) {
		rs_pair_down(p, "the other router did not answer in time");
		return;
	}
	if (p->active && p->state == RP_CONNECTING && !event_pending(p->lrev, EV_READ, NULL)) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			rs_pair_down(p, strerror(err ? err : errno));
			return;
		}
		event_add(p->lrev, &tv);
	}
	err = ffr_xline_flush(&p->l);
	if (err == 1)
		event_add(p->lwev, NULL);
	else if (err < 0)
		rs_pair_down(p, strerror(-err));
}

/* ---- messages ---- */

static struct rs_hdr *cur_hdr(struct rs_pair *p)
{
	return (struct rs_hdr *)txbuf(p, (uint32_t)p->cur);
}

/* Posts the message being filled (or, none, a credit-only one). */
static int post_msg(struct rs_pair *p)
{
	struct ibv_sge sge = {.lkey = p->mr->lkey};
	struct ibv_send_wr wr = {0}, *bad;
	struct rs_hdr *h;
	int err;

	if (p->cur < 0) {
		if (!p->ntxfree)
			return -ENOBUFS;
		p->cur = (int)p->txfree[--p->ntxfree];
		p->curlen = sizeof(struct rs_hdr);
		p->currec = 0;
	}
	h = cur_hdr(p);
	h->magic = htole32(RS_MAGIC);
	h->credits = htole32(p->unreported);
	h->len = htole32(p->curlen);
	h->nrec = htole32(p->currec);
	sge.addr = (uintptr_t)h;
	sge.length = p->curlen;
	wr.wr_id = (uint64_t)p->cur;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_SEND;
	/* a completion wakes the router: ask for one only every so often,
	 * or when free buffers run low */
	if (++p->unsignaled >= RS_SIGNAL_EVERY || p->ntxfree < RS_NBUF / 4) {
		wr.send_flags = IBV_SEND_SIGNALED;
		p->unsignaled = 0;
	}
	err = ibv_post_send(p->qp, &wr, &bad);
	if (err)
		return -err;
	p->posted[(p->phead + p->npost++) % RS_NBUF] = (uint32_t)p->cur;
	p->unreported = 0;
	p->credits--;
	p->tx_msgs++;
	p->cur = -1;
	return 0;
}

uint8_t *rs_rec_begin(struct rs_pair *p, uint32_t want, bool data, uint32_t *room)
{
	uint32_t need = (uint32_t)sizeof(struct rs_rec) + (want ? want : 0);

	if (p->state != RP_UP)
		return NULL;
	if (p->cur >= 0 && p->curlen + need > p->peer_buf) {
		if (p->credits <= 1 || post_msg(p) < 0)
			return NULL;
	}
	if (p->cur < 0) {
		/* a new message takes a credit when posted */
		if (!p->ntxfree || p->credits <= (data ? RS_RESERVE : 1))
			return NULL;
		p->cur = (int)p->txfree[--p->ntxfree];
		p->curlen = sizeof(struct rs_hdr);
		p->currec = 0;
	}
	*room = p->peer_buf - p->curlen - (uint32_t)sizeof(struct rs_rec);
	rs_flush_soon(p);
	return txbuf(p, (uint32_t)p->cur) + p->curlen + sizeof(struct rs_rec);
}

void rs_rec_end(struct rs_pair *p, uint8_t type, uint32_t id, uint32_t arg, uint32_t len)
{
	struct rs_rec rec = {.type = type, .id = htole32(id), .len = htole32(len),
			     .arg = htole32(arg)};

	/* records follow payloads of any length: copied, never aligned */
	memcpy(txbuf(p, (uint32_t)p->cur) + p->curlen, &rec, sizeof(rec));
	p->curlen += (uint32_t)sizeof(rec) + len;
	p->currec++;
}

void rs_flush_soon(struct rs_pair *p)
{
	if (!p->flushing && p->flush_ev) {
		p->flushing = true;
		event_active(p->flush_ev, 0, 0);
	}
}

static void wake_blocked(struct rs_pair *p)
{
	struct rs_conn *c;

	while ((c = TAILQ_FIRST(&p->blocked)))
		rs_conn_unblock(c);
}

static void flush(struct rs_pair *p)
{
	struct rs_conn *c, *next;
	bool posted = false;

	if (p->state != RP_UP)
		return;
	for (c = TAILQ_FIRST(&p->ctl); c; c = next) {
		next = TAILQ_NEXT(c, ctl_link);
		if (!rs_conn_ctl_emit(c))
			break;
	}
	if (p->cur >= 0 && p->currec && p->credits >= 1) {
		int err = post_msg(p);

		if (err) {
			rs_pair_down(p, "cannot post a send");
			return;
		}
		posted = true;
	}
	if (!posted && p->unreported >= RS_NBUF / 2 && p->credits >= 1 &&
	    (p->cur >= 0 || p->ntxfree)) {
		if (post_msg(p) < 0)
			rs_pair_down(p, "cannot post a send");
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rs_pair *p = arg;

	p->flushing = false;
	flush(p);
}

/* One received message, checked record by record. 0 or -EPROTO. */
static int got_msg(struct rs_pair *p, const uint8_t *m, uint32_t len)
{
	const struct rs_hdr *h = (const struct rs_hdr *)m;
	uint32_t off = sizeof(*h), n, credits;

	if (len < sizeof(*h) || le32toh(h->magic) != RS_MAGIC)
		return RS_BAD(p, "no header");
	if (le32toh(h->len) != len)
		return RS_BAD(p, "a header length other than the received one");
	credits = le32toh(h->credits);
	if (credits > p->peer_rq || p->credits + credits > p->peer_rq)
		return RS_BAD(p, "credits for more buffers than posted");
	p->credits += credits;
	n = le32toh(h->nrec);
	p->rx_msgs++;
	for (uint32_t i = 0; i < n; i++) {
		struct rs_rec rec;
		uint32_t rlen;
		struct rs_conn *c;
		int err = 0;

		if (len - off < sizeof(rec))
			return RS_BAD(p, "more records than the message holds");
		memcpy(&rec, m + off, sizeof(rec));
		off += sizeof(rec);
		rlen = le32toh(rec.len);
		if (rlen > len - off)
			return RS_BAD(p, "a record longer than the message");
		rec.id = le32toh(rec.id);
		rec.len = rlen;
		rec.arg = le32toh(rec.arg);
		if (rec.type == RS_OPEN) {
			struct rs_open o;

			if (rlen != sizeof(o))
				return RS_BAD(p, "an OPEN of the wrong size");
			memcpy(&o, m + off, sizeof(o));
			rs_conn_incoming(p, rec.id, &o);
		} else if (rec.type >= RS_ACCEPT && rec.type <= RS_RST) {
			c = rs_conn_get(p, rec.id);
			if (c) /* else a connection that ended meanwhile */
				err = rs_conn_record(c, &rec, m + off);
		} else {
			return RS_BAD(p, "a record of no known type");
		}
		if (err)
			return err;
		if (p->state != RP_UP)
			return 0;
		off += rlen;
	}
	return off == len ? 0 : RS_BAD(p, "bytes after the last record");
}

/* Takes what the completion queue holds: how many completions, or -1 if
 * the pair went down (p is freed then). */
int rs_cq_drain(struct rs_pair *p)
{
	struct ibv_wc wc[16];
	bool freed = false;
	int n, did = 0;

	while ((n = ibv_poll_cq(p->cq, 16, wc)) > 0) {
		did += n;
		for (int i = 0; i < n; i++) {
			uint64_t w = wc[i].wr_id;

			if (wc[i].status != IBV_WC_SUCCESS) {
				char why[160];

				snprintf(why, sizeof(why),
					 "completion error (status %d, %s, buffer %" PRIu64
					 ", after %" PRIu64 " messages sent and %" PRIu64
					 " received)",
					 (int)wc[i].status, w < RS_NBUF ? "send" : "receive",
					 w % RS_NBUF, p->tx_msgs, p->rx_msgs);
				rs_pair_down(p, why);
				return -1;
			}
			if (w < RS_NBUF) {
				/* w and every send posted before it */
				bool found = false;

				while (p->npost && !found) {
					uint32_t b = p->posted[p->phead];

					p->phead = (p->phead + 1) % RS_NBUF;
					p->npost--;
					p->txfree[p->ntxfree++] = b;
					found = b == w;
				}
				if (!found) {
					rs_pair_down(p, "a completion for no send");
					return -1;
				}
				freed = true;
				continue;
			}
			if (w >= 2 * RS_NBUF || got_msg(p, rxbuf(p, (uint32_t)(w - RS_NBUF)),
						       wc[i].byte_len) < 0) {
				char why[200];

				snprintf(why, sizeof(why),
					 "a malformed message from the other router (%s; %u B, "
					 "its %" PRIu64 "th)",
					 w >= 2 * RS_NBUF ? "no such buffer" : p->bad ? p->bad : "?",
					 wc[i].byte_len,
					 p->rx_msgs);
				rs_pair_down(p, why);
				return -1;
			}
			if (post_recv(p, (uint32_t)(w - RS_NBUF)) < 0) {
				rs_pair_down(p, "cannot repost a receive");
				return -1;
			}
			p->unreported++;
			freed = true;
		}
	}
	if (n < 0) {
		rs_pair_down(p, "cannot poll the completion queue");
		return -1;
	}
	if (freed)
		wake_blocked(p);
	if (p->unreported >= RS_NBUF / 2 || !TAILQ_EMPTY(&p->ctl))
		rs_flush_soon(p);
	if (did)
		rs_heat(p->rs);
	return did;
}

static void cq_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rs_pair *p = arg;
	struct ibv_cq *cq;
	void *ctx;

	if (p->rs->rd->ibv->get_cq_event(p->cc, &cq, &ctx) == 0) {
		p->rs->rd->ibv->ack_cq_events(cq, 1);
		ibv_req_notify_cq(p->cq, 0);
	}
	rs_cq_drain(p);
}
