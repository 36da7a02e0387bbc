/* Sockets over RDMA as a feature of the router: the transport xhost tries
 * before host TCP for a connect to a container on another host, the
 * ingress's preamble kind for QP pairs, and what status shows. A connect
 * goes over RDMA when this router has a device, the feature is on
 * (--sock-rdma auto) and the map says the target's host has RDMA; if the
 * pair cannot be set up it goes over TCP before the app sees a result
 * (counted in fallbacks, logged). */
#include "internal.h"

#include "log.h"

#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void rs_free(void *priv)
{
	struct rs *rs = priv;
	struct rs_pair *p;

	while ((p = TAILQ_FIRST(&rs->pairs)))
		rs_pair_free(p);
	free(rs);
}

/* The channel that asked for these connects is gone: nobody to answer. */
static void rs_chan_free(void *priv, struct ffr_chan *ch)
{
	struct rs *rs = priv;
	struct rs_pair *p;

	TAILQ_FOREACH (p, &rs->pairs, link) {
		for (uint32_t i = 0; i < p->cap; i++) {
			struct rs_conn *c = p->tab[i];

			if (!c || c->ch != ch)
				continue;
			c->ch = NULL;
			if (c->state == RC_WAIT)
				rs_conn_free(c);
		}
	}
}

static const char *pair_state(const struct rs_pair *p)
{
	return p->state == RP_UP ? "up" : p->state == RP_CONNECTING ? "connecting" : "down";
}

static void *rs_status(void *priv, Ff__StatusReply *sr)
{
	struct rs *rs = priv;
	struct rs_pair *p;
	size_t n = 0, i = 0;
	struct {
		Ff__RsockStatus st;
		Ff__RsockPair **v;
		Ff__RsockPair *pairs;
	} *m;

	TAILQ_FOREACH (p, &rs->pairs, link)
		n++;
	m = calloc(1, sizeof(*m) + n * (sizeof(Ff__RsockPair *) + sizeof(Ff__RsockPair)));
	if (!m)
		return NULL;
	m->v = (Ff__RsockPair **)(m + 1);
	m->pairs = (Ff__RsockPair *)(m->v + n);
	ff__rsock_status__init(&m->st);
	TAILQ_FOREACH (p, &rs->pairs, link) {
		Ff__RsockPair *o = &m->pairs[i];

		ff__rsock_pair__init(o);
		o->host = p->host;
		o->state = (char *)pair_state(p);
		o->qpn = p->qp ? p->qp->qp_num : 0;
		o->peer_qpn = p->peer_qpn;
		o->conns = p->nconns;
		o->tx_bytes = p->tx_bytes;
		o->rx_bytes = p->rx_bytes;
		o->mem_bytes = p->memlen;
		o->staged_bytes = p->staged;
		o->tx_msgs = p->tx_msgs;
		o->rx_msgs = p->rx_msgs;
		o->active = p->active;
		m->v[i++] = o;
	}
	m->st.n_pairs = n;
	m->st.pairs = m->v;
	m->st.conns = rs->conns;
	m->st.conns_total = rs->conns_total;
	m->st.fallbacks = rs->fallbacks;
	m->st.refused = rs->refused;
	m->st.pairs_total = rs->pairs_total;
	m->st.pair_failures = rs->pair_failures;
	m->st.copies = rs->copies;
	m->st.enabled = rs->enabled;
	sr->rsock = &m->st;
	return m;
}

static void rs_metrics(void *priv, struct ffr_metrics *m)
{
	struct rs *rs = priv;
	struct rs_pair *p;

	ffr_metrics_family(m, "rsock_conns", "gauge", "connections over RDMA now");
	ffr_metrics_sample(m, rs->conns, NULL);
	ffr_metrics_family(m, "rsock_conns_total", "counter", "connections made over RDMA");
	ffr_metrics_sample(m, rs->conns_total, NULL);
	ffr_metrics_family(m, "rsock_fallbacks_total", "counter",
			   "connects that wanted RDMA and went over TCP");
	ffr_metrics_sample(m, rs->fallbacks, NULL);
	ffr_metrics_family(m, "rsock_bytes_total", "counter",
			   "payload bytes over RDMA, by peer host and direction");
	TAILQ_FOREACH (p, &rs->pairs, link) {
		ffr_metrics_sample(m, p->tx_bytes, "host", p->host, "dir", "tx", NULL);
		ffr_metrics_sample(m, p->rx_bytes, "host", p->host, "dir", "rx", NULL);
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rs_heat(struct rs *rs)
{
	if (rs->rd->poll_ns)
		rs->hot_until = now_ns() + rs->rd->poll_ns;
}

static bool rs_hot(void *priv)
{
	struct rs *rs = priv;

	return rs->hot_until != 0;
}

/* One polling pass over the pairs' completion queues (the loop's own
 * non-blocking turns see the apps' sockets). Their queues stay armed: a
 * completion polled here leaves an event that the next turn reads. */
static bool rs_poll(void *priv)
{
	struct rs *rs = priv;
	struct rs_pair *p, *next;
	int did = 0;

	if (!rs->hot_until)
		return false;
	for (p = TAILQ_FIRST(&rs->pairs); p; p = next) {
		int n;

		next = TAILQ_NEXT(p, link);
		if (p->state != RP_UP)
			continue;
		n = rs_cq_drain(p);
		did += n > 0 ? n : 0;
	}
	if (did)
		return true;
	if (now_ns() < rs->hot_until) {
		sched_yield(); /* idle: an app on this CPU gets it at once */
		return true;
	}
	rs->hot_until = 0;
	return false;
}

static const struct ffr_feature rs_feature = {
	.name = "rsock",
	.free = rs_free,
	.chan_free = rs_chan_free,
	.status = rs_status,
	.hot = rs_hot,
	.poll = rs_poll,
	.metrics = rs_metrics,
};

struct rs *ffr_rsock_of(const struct ffr_router *r)
{
	return ffr_feature_priv(r, &rs_feature);
}

/* Whether the device's port is up (asked at most every 200 ms): a port
 * that went down, or a device that went away, sends new connects over
 * TCP at once instead of after the QP's retries. */
static int64_t now_ms(void)
{
	return (int64_t)(now_ns() / 1000000u);
}

static bool port_active(struct rs *rs)
{
	struct ibv_port_attr a;
	int64_t now = now_ms();

	if (rs->port_checked_ms && now - rs->port_checked_ms < 200)
		return true;
	if (rs->rd->ibv->query_port(rs->rd->probe, rs->rd->port, &a) || a.state != IBV_PORT_ACTIVE)
		return false;
	rs->port_checked_ms = now;
	return true;
}

void rs_fallback_log(struct rs *rs, const char *cname, const struct ffr_container *t,
		     const char *why)
{
	int64_t now = now_ms();

	rs->fallbacks++;
	if (rs->fallback_log_ms && now - rs->fallback_log_ms < 1000) {
		rs->fallback_quiet++;
		return;
	}
	ff_info("%s -> %s@%s: over TCP, not RDMA: %s (%" PRIu64 " more since the last such line)",
		cname, t->name, t->host, why, rs->fallback_quiet);
	rs->fallback_log_ms = now;
	rs->fallback_quiet = 0;
}

/* xhost's transport hook: a connect to container t on host h. */
static bool rs_connect(void *arg, struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
		       const struct ffr_host *h, const struct ff_sa *src, const struct ff_sa *dst)
{
	struct rs *rs = arg;
	const char *why = NULL;
	struct rs_pair *p;
	struct rs_conn *c;

	if (!rs->enabled || !h->rdma || ch->c->tcp_only || t->tcp_only)
		return false;
	p = port_active(rs) ? rs_pair_get(rs, h, &why) : NULL;
	if (!p && !why)
		why = "the RDMA port is not active";
	if (!p || !(c = rs_conn_new(p))) {
		rs_fallback_log(rs, ch->c->name, t, why ? why : "out of memory");
		return false;
	}
	c->ch = ch;
	c->req_id = id;
	c->pid = ch->pid;
	snprintf(c->cname, sizeof(c->cname), "%s", ch->c->name);
	snprintf(c->tname, sizeof(c->tname), "%s", t->name);
	snprintf(c->peer, sizeof(c->peer), "%s@%s", t->name, t->host);
	c->src = c->asked_src = *src;
	c->dst = *dst;
	if (!c->src.port) {
		c->src.port = ffr_port_get(ch->c);
		if (!c->src.port) {
			rs_conn_free(c);
			rs_connect_fallback(rs, ch, id, t->name, src, dst, "no client port left");
			return true;
		}
		c->own_port = true;
	}
	if (p->state == RP_UP) {
		rs_conn_open(c);
	} else {
		c->state = RC_WAIT;
		TAILQ_INSERT_TAIL(&p->waiting, c, wait_link);
		c->in_wait = true;
	}
	return true;
}

int ffr_rsock_mode_parse(const char *s)
{
	return !strcmp(s, "auto") || !strcmp(s, "off") ? 0 : -EINVAL;
}

int ffr_rsock_attach(struct ffr_router *r, const struct ffr_rsock_config *cfg)
{
	struct ffr_rdma *rd = ffr_rdma_of(r);
	struct rs *rs;
	int err;

	if (!rd)
		return 0;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	rs->r = r;
	rs->rd = rd;
	rs->enabled = !cfg->mode || strcmp(cfg->mode, "off") != 0;
	TAILQ_INIT(&rs->pairs);
	err = ffr_feature_add(r, &rs_feature, rs);
	if (err < 0) {
		free(rs);
		return err;
	}
	err = ffr_ingress_handle(r, FFR_PREAMBLE_SOCK, rs_pair_incoming);
	if (!err)
		err = ffr_xpath_set(r, rs_connect, rs);
	if (err)
		return err; /* rs is the router's now: freed with it */
	ff_info("sockets over RDMA: %s", rs->enabled ? "on, to hosts with RDMA in the map"
						     : "off (--sock-rdma off)");
	return 0;
}
