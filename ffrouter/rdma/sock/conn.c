/* The connections a pair carries. Each has the router's end of its app's
 * socketpair: what the app writes is read into the message being filled
 * (one copy, the kernel's), what comes from the other router is written
 * from the receive buffer straight into the socket, and only what the
 * socket cannot take at once is copied into the connection's staging ring
 * (counted in copies). The app keeps a real kernel fd, so poll, epoll,
 * fork, dup and exec are the kernel's, as on one host.
 * Ends: the app's EOF is a FIN to the other side, which shuts its app's
 * writing side once everything before it is written; the app's reset
 * (its end closed with data unread, or gone when we write) is an RST,
 * which closes the other side's socket at once. A connection is freed
 * after FIN both ways with nothing staged, or at an RST either way.
 * Invariant: a connection is in p->tab from rs_conn_new to rs_conn_free;
 * it owns fd, its events and its staging ring. */
#include "internal.h"

#include "log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define ID_BITS 20
#define ID_MASK ((1u << ID_BITS) - 1)

static void rev_cb(evutil_socket_t fd, short what, void *arg);
static void wev_cb(evutil_socket_t fd, short what, void *arg);

struct rs_conn *rs_conn_new(struct rs_pair *p)
{
	struct rs_conn *c;
	uint32_t i;

	for (i = 0; i < p->cap && p->tab[i]; i++)
		;
	if (i == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 64;
		struct rs_conn **tab;
		uint16_t *gen;

		if (cap > ID_MASK + 1)
			return NULL;
		tab = realloc(p->tab, cap * sizeof(*tab));
		if (!tab)
			return NULL;
		p->tab = tab;
		gen = realloc(p->gen, cap * sizeof(*gen));
		if (!gen)
			return NULL;
		p->gen = gen;
		memset(p->tab + p->cap, 0, (cap - p->cap) * sizeof(*tab));
		memset(p->gen + p->cap, 0, (cap - p->cap) * sizeof(*gen));
		p->cap = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->p = p;
	c->fd = -1;
	c->id = (uint32_t)(p->gen[i] & 0xfff) << ID_BITS | i;
	p->tab[i] = c;
	p->nconns++;
	return c;
}

struct rs_conn *rs_conn_get(struct rs_pair *p, uint32_t id)
{
	uint32_t i = id & ID_MASK;

	if (i >= p->cap || !p->tab[i] || p->tab[i]->id != id)
		return NULL;
	return p->tab[i];
}

void rs_conn_free(struct rs_conn *c)
{
	struct rs_pair *p = c->p;
	uint32_t i = c->id & ID_MASK;

	if (c->in_ctl)
		TAILQ_REMOVE(&p->ctl, c, ctl_link);
	if (c->in_blocked)
		TAILQ_REMOVE(&p->blocked, c, block_link);
	if (c->in_wait)
		TAILQ_REMOVE(&p->waiting, c, wait_link);
	if (c->own_port) {
		struct ffr_container *ct = ffr_container_find(p->rs->r, c->cname);

		if (ct && !ct->remote)
			ffr_port_put(ct, c->src.port);
	}
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	if (c->fd >= 0) {
		close(c->fd);
		p->rs->conns--;
	}
	p->staged -= c->slen;
	free(c->stage);
	p->tab[i] = NULL;
	p->gen[i]++;
	p->nconns--;
	free(c);
}

void rs_conn_ctl(struct rs_conn *c)
{
	if (!c->in_ctl) {
		TAILQ_INSERT_TAIL(&c->p->ctl, c, ctl_link);
		c->in_ctl = true;
	}
	rs_flush_soon(c->p);
}

static void start_reading(struct rs_conn *c)
{
	if (!c->reading && !c->rd_eof && c->rev && event_add(c->rev, NULL) == 0)
		c->reading = true;
}

static void stop_reading(struct rs_conn *c)
{
	if (c->reading) {
		event_del(c->rev);
		c->reading = false;
	}
}

void rs_conn_unblock(struct rs_conn *c)
{
	if (c->in_blocked) {
		TAILQ_REMOVE(&c->p->blocked, c, block_link);
		c->in_blocked = false;
	}
	start_reading(c);
}

static void block(struct rs_conn *c)
{
	stop_reading(c);
	if (!c->in_blocked) {
		TAILQ_INSERT_TAIL(&c->p->blocked, c, block_link);
		c->in_blocked = true;
	}
}

/* Whether c is done both ways. */
static bool done(const struct rs_conn *c)
{
	return c->fin_sent && c->peer_fin && !c->slen && !c->need_rst;
}

/* The app is gone (or reset): the other side is told, c ends. */
static void reset(struct rs_conn *c)
{
	stop_reading(c);
	if (c->wev)
		event_del(c->wev);
	c->need_rst = true;
	c->need_fin = false;
	rs_conn_ctl(c);
}

int rs_conn_attach(struct rs_conn *c, int fd)
{
	struct ffr_router *r = c->p->rs->r;

	c->fd = fd;
	c->p->rs->conns++;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	c->rev = event_new(r->base, fd, EV_READ | EV_PERSIST, rev_cb, c);
	c->wev = event_new(r->base, fd, EV_WRITE, wev_cb, c);
	if (!c->rev || !c->wev)
		return -ENOMEM;
	start_reading(c);
	return 0;
}

/* ---- from the app to the other router ---- */

static void rev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rs_conn *c = arg;
	struct rs_pair *p = c->p;

	for (int k = 0; k < RS_READS_PER_TURN; k++) {
		uint64_t win = p->window > c->unacked ? p->window - c->unacked : 0;
		uint32_t room, want = win < RS_MIN_ROOM ? (uint32_t)win : RS_MIN_ROOM;
		uint8_t *buf;
		ssize_t n;

		if (!win) {
			stop_reading(c); /* an ACK starts it again */
			return;
		}
		buf = rs_rec_begin(p, want, true, &room);
		if (!buf) {
			block(c);
			return;
		}
		n = read(fd, buf, room < win ? room : (size_t)win);
		if (n > 0) {
			rs_heat(p->rs);
			rs_rec_end(p, RS_DATA, c->peer_id, 0, (uint32_t)n);
			c->unacked += (uint64_t)n;
			c->tx_bytes += (uint64_t)n;
			p->tx_bytes += (uint64_t)n;
			continue;
		}
		if (n == 0) {
			stop_reading(c);
			c->rd_eof = true;
			c->need_fin = true;
			rs_conn_ctl(c);
			return;
		}
		if (errno != EAGAIN && errno != EINTR)
			reset(c);
		return;
	}
}

/* ---- from the other router to the app ---- */

static void maybe_ack(struct rs_conn *c)
{
	if (c->ack_pending && c->ack_pending >= c->p->window / 4)
		rs_conn_ctl(c);
}

/* The staging ring is empty: what FIN asked for can happen. */
static void drained(struct rs_conn *c)
{
	free(c->stage);
	c->stage = NULL;
	c->shead = 0;
	if (c->peer_fin && !c->wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
}

static int stage(struct rs_conn *c, const uint8_t *b, uint32_t len)
{
	struct rs_pair *p = c->p;
	uint32_t cap = p->window, tail, first;

	if (!c->stage && !(c->stage = malloc(cap)))
		return -ENOMEM;
	if (len > cap - c->slen)
		return RS_BAD(p, "DATA beyond the staging ring");
	tail = (c->shead + c->slen) % cap;
	first = cap - tail < len ? cap - tail : len;
	memcpy(c->stage + tail, b, first);
	memcpy(c->stage, b + first, len - first);
	c->slen += len;
	p->staged += len;
	p->copies += len;
	p->rs->copies += len;
	event_add(c->wev, NULL);
	return 0;
}

static void wev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rs_conn *c = arg;
	struct rs_pair *p = c->p;
	uint32_t cap = p->window;

	while (c->slen) {
		uint32_t first = cap - c->shead < c->slen ? cap - c->shead : c->slen;
		ssize_t n = send(fd, c->stage + c->shead, first, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			event_add(c->wev, NULL);
			break;
		}
		if (n <= 0) {
			reset(c);
			return;
		}
		c->shead = (c->shead + (uint32_t)n) % cap;
		c->slen -= (uint32_t)n;
		p->staged -= (uint64_t)n;
		c->ack_pending += (uint64_t)n;
	}
	if (!c->slen)
		drained(c);
	maybe_ack(c);
	if (!c->slen && c->ack_pending)
		rs_conn_ctl(c); /* the reader caught up: let the writer go on */
	if (done(c))
		rs_conn_ctl(c);
}

static int got_data(struct rs_conn *c, const uint8_t *b, uint32_t len)
{
	struct rs_pair *p = c->p;
	ssize_t n = 0;

	if (c->state != RC_UP)
		return RS_BAD(p, "DATA before ACCEPT");
	if (c->peer_fin)
		return RS_BAD(p, "DATA after FIN");
	if (c->rx_held + len > p->window)
		return RS_BAD(p, "DATA beyond the window");
	c->rx_held += len;
	c->rx_bytes += len;
	p->rx_bytes += len;
	if (c->need_rst)
		return 0; /* the app is gone: dropped */
	if (!c->slen) {
		n = send(c->fd, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			reset(c);
			return 0;
		}
		if (n < 0)
			n = 0;
		c->ack_pending += (uint64_t)n;
	}
	if ((uint32_t)n < len && stage(c, b + n, len - (uint32_t)n) == -ENOMEM) {
		reset(c);
		return 0;
	}
	maybe_ack(c);
	return 0;
}

/* ---- the client's connect ---- */

static void accepted(struct rs_conn *c, uint32_t peer_id)
{
	struct rs *rs = c->p->rs;
	struct ffr_router *r = rs->r;
	struct ffr_container *ct = ffr_container_find(r, c->cname);
	struct ffr_conn *cn = NULL;
	int sv[2], err;

	c->peer_id = peer_id;
	c->state = RC_UP;
	if (!c->ch || !ct || ct->remote) { /* nobody waits for it any more */
		c->need_rst = true;
		rs_conn_ctl(c);
		return;
	}
	err = ffr_conn_pair(r, sv);
	if (err) {
		ffr_reply_status(c->ch, c->req_id, FF__STATUS__ST_INTERNAL, "socketpair: %s",
				 strerror(-err));
		c->ch = NULL;
		c->need_rst = true;
		rs_conn_ctl(c);
		return;
	}
	cn = ffr_conn_remote(r, ct, true, &c->src, &c->dst, c->peer, sv[0], FF__PATH__PATH_RDMA);
	if (!cn) {
		ffr_reply_status(c->ch, c->req_id, FF__STATUS__ST_INTERNAL,
				 "cannot record connection");
		close(sv[0]);
		close(sv[1]);
		c->ch = NULL;
		c->need_rst = true;
		rs_conn_ctl(c);
		return;
	}
	c->app_ino = cn->cli.ino; /* the app's end, as the record has it */
	if (c->own_port) { /* the conn record returns it from now on */
		cn->cli.own_port = true;
		c->own_port = false;
	}
	ffr_connect_reply(c->ch, c->req_id, cn, sv[0]);
	close(sv[0]);
	c->ch = NULL;
	rs->conns_total++;
	if (rs_conn_attach(c, sv[1]) < 0)
		reset(c);
}

static void refused(struct rs_conn *c, uint32_t st)
{
	struct rs *rs = c->p->rs;
	char d[FF_ADDRSTRLEN];

	if (st != FF__STATUS__ST_UNREACH && st != FF__STATUS__ST_QUOTA && st != FF__STATUS__ST_PERM)
		st = FF__STATUS__ST_REFUSED;
	rs->refused++;
	if (c->ch) {
		ff_dbg("%s -> %s (%s): refused over RDMA (%u)", c->cname,
		       ff_sa_fmt(&c->dst, d, sizeof(d)), c->peer, st);
		ffr_reply_status(c->ch, c->req_id, (Ff__Status)st, "refused by %s", c->peer);
	}
	rs_conn_free(c);
}

void rs_conn_open(struct rs_conn *c)
{
	if (c->in_wait) {
		TAILQ_REMOVE(&c->p->waiting, c, wait_link);
		c->in_wait = false;
	}
	c->state = RC_OPENING;
	c->need_open = true;
	rs_conn_ctl(c);
}

/* The other side reset c: its app sees ECONNRESET, as over TCP, unless
 * the other side had ended its half before (TCP's CLOSE_WAIT, where a
 * reset leaves EPIPE: the plain close gives that). */
static void app_reset(struct rs_conn *c)
{
	if (c->fd >= 0 && !c->peer_fin && !c->need_rst)
		rs_reset_app(c->p->rs, c->cname, c->pid, c->app_ino);
}

/* ---- records ---- */

int rs_conn_record(struct rs_conn *c, const struct rs_rec *rec, const uint8_t *payload)
{
	switch (rec->type) {
	case RS_ACCEPT:
		if (c->state != RC_OPENING || c->need_open)
			return RS_BAD(c->p, "ACCEPT of no OPEN");
		accepted(c, rec->arg);
		return 0;
	case RS_REFUSE:
		if (c->state != RC_OPENING || c->need_open)
			return RS_BAD(c->p, "REFUSE of no OPEN");
		refused(c, rec->arg);
		return 0;
	case RS_DATA:
		return got_data(c, payload, rec->len);
	case RS_ACK:
		if (c->state != RC_UP || rec->arg > c->unacked)
			return RS_BAD(c->p, "ACK of bytes not sent");
		c->unacked -= rec->arg;
		if (!c->in_blocked)
			start_reading(c);
		return 0;
	case RS_FIN:
		if (c->state != RC_UP || c->peer_fin)
			return RS_BAD(c->p, "FIN twice or before ACCEPT");
		c->peer_fin = true;
		if (!c->slen)
			drained(c);
		if (done(c))
			rs_conn_ctl(c);
		return 0;
	case RS_RST:
		if (c->state != RC_UP)
			return RS_BAD(c->p, "RST before ACCEPT");
		app_reset(c);
		rs_conn_free(c);
		return 0;
	default:
		return RS_BAD(c->p, "a record of no known type");
	}
}

/* Adds one control record; false if there is no room now. */
static bool ctl_rec(struct rs_conn *c, uint8_t type, uint32_t id, uint32_t arg,
		    const void *payload, uint32_t len)
{
	uint32_t room;
	uint8_t *b = rs_rec_begin(c->p, len, false, &room);

	if (!b)
		return false;
	if (len)
		memcpy(b, payload, len);
	rs_rec_end(c->p, type, id, arg, len);
	return true;
}

bool rs_conn_ctl_emit(struct rs_conn *c)
{
	struct rs_pair *p = c->p;

	if (c->need_open) {
		struct rs_open o = {.family = (uint8_t)c->dst.ip.family};

		o.sport = htole16(c->src.port);
		o.dport = htole16(c->dst.port);
		memcpy(o.sip, c->src.ip.ip, sizeof(o.sip));
		memcpy(o.dip, c->dst.ip.ip, sizeof(o.dip));
		if (!ctl_rec(c, RS_OPEN, c->id, 0, &o, sizeof(o)))
			return false;
		c->need_open = false;
	}
	if (c->refuse) {
		if (!ctl_rec(c, RS_REFUSE, c->peer_id, c->refuse, NULL, 0))
			return false;
		rs_conn_free(c);
		return true;
	}
	if (c->need_accept) {
		if (!ctl_rec(c, RS_ACCEPT, c->peer_id, c->id, NULL, 0))
			return false;
		c->need_accept = false;
	}
	if (c->need_rst) {
		if (c->state == RC_UP && !ctl_rec(c, RS_RST, c->peer_id, 0, NULL, 0))
			return false;
		rs_conn_free(c);
		return true;
	}
	if (c->ack_pending && c->state == RC_UP) {
		if (!ctl_rec(c, RS_ACK, c->peer_id, (uint32_t)c->ack_pending, NULL, 0))
			return false;
		c->rx_held -= c->ack_pending;
		c->ack_pending = 0;
	}
	if (c->need_fin && c->state == RC_UP) {
		if (!ctl_rec(c, RS_FIN, c->peer_id, 0, NULL, 0))
			return false;
		c->need_fin = false;
		c->fin_sent = true;
	}
	TAILQ_REMOVE(&p->ctl, c, ctl_link);
	c->in_ctl = false;
	if (done(c))
		rs_conn_free(c);
	return true;
}

/* ---- the server's side ---- */

static void open_addrs(const struct rs_open *o, struct ff_sa *src, struct ff_sa *dst)
{
	memset(src, 0, sizeof(*src));
	memset(dst, 0, sizeof(*dst));
	src->ip.family = dst->ip.family = o->family;
	memcpy(src->ip.ip, o->sip, sizeof(o->sip));
	memcpy(dst->ip.ip, o->dip, sizeof(o->dip));
	src->port = le16toh(o->sport);
	dst->port = le16toh(o->dport);
}

/* Why an OPEN may not go to a listener here (0: it may). */
static uint32_t open_check(struct rs_pair *p, const struct ff_sa *src, const struct ff_sa *dst,
			   struct ffr_container **s, struct ffr_container **t)
{
	struct ffr_router *r = p->rs->r;

	if ((src->ip.family != AF_INET && src->ip.family != AF_INET6) || !src->port ||
	    !dst->port)
		return FF__STATUS__ST_REFUSED;
	*s = ffr_container_by_ip(r, &src->ip);
	if (!*s || !(*s)->remote || strcmp((*s)->host, p->host) != 0)
		return FF__STATUS__ST_PERM; /* not a container of the asking host */
	*t = ffr_container_by_ip(r, &dst->ip);
	if (!*t || (*t)->remote)
		return FF__STATUS__ST_UNREACH;
	if ((*t)->nconns + (*t)->nconnecting >= r->quota.conns || ffr_fd_budget(r, 2) < 0) {
		r->quota_refusals++;
		return FF__STATUS__ST_QUOTA;
	}
	return 0;
}

void rs_conn_incoming(struct rs_pair *p, uint32_t peer_id, const struct rs_open *o)
{
	struct ffr_router *r = p->rs->r;
	struct ffr_container *s = NULL, *t = NULL;
	struct rs_conn *c = rs_conn_new(p);
	struct ff_sa src, dst;
	char name[FFR_NAME_MAX + FFR_HOST_MAX + 2];
	int sv[2], err;

	if (!c)
		return; /* the client's OPEN stays unanswered until the pair ends */
	c->peer_id = peer_id;
	open_addrs(o, &src, &dst);
	c->refuse = open_check(p, &src, &dst, &s, &t);
	if (c->refuse) {
		rs_conn_ctl(c);
		return;
	}
	if (ffr_conn_pair(r, sv) < 0) {
		c->refuse = FF__STATUS__ST_REFUSED;
		rs_conn_ctl(c);
		return;
	}
	snprintf(name, sizeof(name), "%s@%s", s->name, s->host);
	snprintf(c->cname, sizeof(c->cname), "%s", t->name);
	c->app_ino = ffr_fd_ino(sv[0]);
	err = ffr_ingress_queue(r, t, &dst, &src, name, sv[0], FF__PATH__PATH_RDMA);
	if (err) {
		close(sv[1]);
		c->refuse = FF__STATUS__ST_REFUSED;
		rs_conn_ctl(c);
		return;
	}
	c->state = RC_UP;
	c->src = dst;
	c->dst = src;
	snprintf(c->peer, sizeof(c->peer), "%s", name);
	c->need_accept = true;
	p->rs->conns_total++;
	if (rs_conn_attach(c, sv[1]) < 0)
		reset(c);
	rs_conn_ctl(c);
}

/* ---- the end of a pair ---- */

void rs_connect_fallback(struct rs *rs, struct ffr_chan *ch, uint64_t id, const char *tname,
			 const struct ff_sa *src, const struct ff_sa *dst, const char *why)
{
	struct ffr_container *t = ffr_container_find(rs->r, tname);

	if (!t || !t->remote) {
		ffr_reply_status(ch, id, FF__STATUS__ST_UNREACH, "%s: gone from the map", tname);
		return;
	}
	rs_fallback_log(rs, ch->c ? ch->c->name : "?", t, why);
	ffr_xconn_tcp(ch, id, t, src, dst);
}

void rs_conn_pair_lost(struct rs_conn *c)
{
	if (c->ch && (c->state == RC_WAIT || c->state == RC_OPENING))
		rs_connect_fallback(c->p->rs, c->ch, c->req_id, c->tname, &c->asked_src, &c->dst,
				    "the RDMA pair went down");
	else if (c->state == RC_UP)
		app_reset(c);
	rs_conn_free(c);
}
