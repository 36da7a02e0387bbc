/* ffctl requests about the cluster: hosts and published ports, and the
 * cluster's part of status and metrics. Each change is persisted before it
 * is answered, and undone if it cannot be. */
#include "internal.h"

#include "log.h"
#include "msg.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void op_host_add(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	const Ff__HostAdd *m = req->host_add;
	struct ffr_router *r = ch->r;
	struct ffr_host *h;
	struct ff_sa addr;
	int err;

	if (ff_sa_parse(m->addr, &addr, 0) < 0) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID,
				 "'%.80s' is not IP:PORT (IPv6: [IP]:PORT)", m->addr);
		return;
	}
	err = ffr_host_add(r, m->name, &addr, m->rdma, &h);
	if (err == -EEXIST) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_EXISTS, "host '%s' is already known", m->name);
		return;
	}
	if (err) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID,
				 ffr_is_self(r, m->name) ? "'%.64s' is this router's own host"
							      : "invalid host name '%.64s'",
				 m->name);
		return;
	}
	if (ffr_state_save(r) < 0) {
		ffr_host_free(r, h);
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INTERNAL, "cannot save the state file");
		return;
	}
	ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, NULL);
}

static void op_host_remove(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_router *r = ch->r;
	struct ffr_host *h = ffr_host_find(r, req->host_remove->name);
	struct ffr_container *c;

	if (!h) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_NOT_FOUND, "no host named '%.64s'",
				 req->host_remove->name);
		return;
	}
	TAILQ_FOREACH (c, &r->containers, link) {
		if (c->remote && !strcmp(c->host, h->name)) {
			ffr_reply_status(ch, req->id, FF__STATUS__ST_EXISTS,
					 "container '%s' is on host '%s': unregister it first", c->name,
					 h->name);
			return;
		}
	}
	ffr_host_free(r, h);
	ffr_state_save(r);
	ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, NULL);
}

/* Fills m (count containers on it); addr storage in ab. */
static void host_to_proto(struct ffr_router *r, const struct ffr_host *h, Ff__Host *m, Ff__Addr *a,
		       uint8_t ab[16])
{
	struct ffr_container *c;
	const char *name = h ? h->name : r->host_id;

	ff__host__init(m);
	m->name = (char *)name;
	m->self = !h;
	if (h) {
		ff_sa_to_proto(&h->addr, a, ab);
		m->addr = a;
		m->rdma = h->rdma;
	}
	TAILQ_FOREACH (c, &r->containers, link)
		m->containers += h ? c->remote && !strcmp(c->host, h->name) : !c->remote;
}

static void op_list_hosts(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_router *r = ch->r;
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__ListHostsReply lr = FF__LIST_HOSTS_REPLY__INIT;
	struct ffr_host *h;
	size_t n = 1, i = 0;
	Ff__Host *m, **mp;
	Ff__Addr *a;
	uint8_t (*ab)[16];

	TAILQ_FOREACH (h, &ffr_xh(r)->hosts, link)
		n++;
	m = calloc(n, sizeof(*m));
	mp = calloc(n, sizeof(*mp));
	a = calloc(n, sizeof(*a));
	ab = calloc(n, sizeof(*ab));
	if (!m || !mp || !a || !ab) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INTERNAL, "out of memory");
		goto out_free;
	}
	host_to_proto(r, NULL, &m[i], &a[i], ab[i]);
	mp[i] = &m[i];
	TAILQ_FOREACH (h, &ffr_xh(r)->hosts, link) {
		i++;
		host_to_proto(r, h, &m[i], &a[i], ab[i]);
		mp[i] = &m[i];
	}
	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_HOSTS;
	rep.hosts = &lr;
	lr.n_hosts = n;
	lr.hosts = mp;
	ffr_reply(ch, &rep, NULL, 0);
out_free:
	free(m);
	free(mp);
	free(a);
	free(ab);
}

static void op_publish(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	const Ff__Publish *m = req->publish;
	struct ffr_router *r = ch->r;
	struct ffr_container *c = ffr_container_find(r, m->container);
	struct ffr_publish *p;
	int err;

	if (m->host_port == 0 || m->host_port > 65535 || m->port > 65535 ||
	    (!m->remove && m->port == 0)) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID, "ports are 1 to 65535");
		return;
	}
	p = ffr_publish_find(r, (uint16_t)m->host_port);
	if (m->remove) {
		if (!p || strcmp(p->container, m->container)) {
			ffr_reply_status(ch, req->id, FF__STATUS__ST_NOT_FOUND,
					 "%.64s has no published host port %u", m->container,
					 m->host_port);
			return;
		}
		ffr_publish_free(p);
		ffr_state_save(r);
		ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, NULL);
		return;
	}
	if (!c || c->remote) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_NOT_FOUND,
				 "no container named '%.64s' on this host", m->container);
		return;
	}
	err = ffr_publish_add(r, m->container, (uint16_t)m->host_port, (uint16_t)m->port, &p);
	if (err) {
		ffr_reply_status(ch, req->id,
				 err == -EADDRINUSE ? FF__STATUS__ST_ADDR_IN_USE
						    : FF__STATUS__ST_INTERNAL,
				 "cannot listen on host port %u: %s", m->host_port, strerror(-err));
		return;
	}
	if (ffr_state_save(r) < 0) {
		ffr_publish_free(p);
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INTERNAL, "cannot save the state file");
		return;
	}
	ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, NULL);
}

#define STATUS_MAX 64 /* hosts and publishes listed in a status reply */

struct status_part {
	Ff__Host hm[STATUS_MAX], *hp[STATUS_MAX];
	Ff__Addr ha[STATUS_MAX];
	uint8_t hab[STATUS_MAX][16];
	Ff__PublishInfo pm[STATUS_MAX], *pp[STATUS_MAX];
	Ff__ClusterHealth health;
};

/* What the cluster part counted, for ffctl status. */
static void health_to_proto(const struct ffr_xhost *xh, Ff__ClusterHealth *m)
{
	const struct ffr_xhost_stats *st = &xh->stats;

	ff__cluster_health__init(m);
	m->warm_taken = st->warm_taken;
	m->warm_cold = st->warm_cold;
	m->warm_stale = st->warm_stale;
	m->warm_refused = st->warm_refused;
	m->warm_open = xh->warm_open;
	m->warm_kept = xh->nwarm;
	m->answered_early = st->answered_early;
	m->ingress_timeouts = st->ingress_timeouts;
	m->ingress_overcap = st->ingress_overcap;
	m->preambles_refused = st->preambles_refused;
	m->replies_refused = st->replies_refused;
	m->outside_refused = st->outside_refused;
}

void *ffr_xhost_status(void *priv, Ff__StatusReply *sr)
{
	struct ffr_xhost *xh = priv;
	struct status_part *p = calloc(1, sizeof(*p));
	struct ffr_publish *pb;
	struct ffr_host *h;

	if (!p)
		return NULL;
	health_to_proto(xh, &p->health);
	sr->cluster = &p->health;
	sr->hosts = p->hp;
	TAILQ_FOREACH (h, &xh->hosts, link) {
		size_t i = sr->n_hosts;

		if (i == STATUS_MAX)
			break;
		host_to_proto(xh->r, h, &p->hm[i], &p->ha[i], p->hab[i]);
		p->hp[sr->n_hosts++] = &p->hm[i];
	}
	sr->publishes = p->pp;
	TAILQ_FOREACH (pb, &xh->publishes, link) {
		size_t i = sr->n_publishes;

		if (i == STATUS_MAX)
			break;
		ff__publish_info__init(&p->pm[i]);
		p->pm[i].container = pb->container;
		p->pm[i].host_port = pb->host_port;
		p->pm[i].port = pb->port;
		p->pm[i].accepted = pb->accepted;
		p->pp[sr->n_publishes++] = &p->pm[i];
	}
	return p;
}

void ffr_xhost_metrics(void *priv, struct ffr_metrics *m)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} fam[] = {
		{"ingress_timeouts_total", "ingress connections closed: no whole preamble in time",
		 offsetof(struct ffr_xhost_stats, ingress_timeouts)},
		{"ingress_overcap_total", "ingress connections closed at accept: too many waiting",
		 offsetof(struct ffr_xhost_stats, ingress_overcap)},
		{"preambles_refused_total", "other routers' preambles refused",
		 offsetof(struct ffr_xhost_stats, preambles_refused)},
		{"replies_refused_total", "other routers' answers refused (bad MAC)",
		 offsetof(struct ffr_xhost_stats, replies_refused)},
		{"outside_refused_total", "policy host: connects to the host's or cluster's own refused",
		 offsetof(struct ffr_xhost_stats, outside_refused)},
		{"warm_taken_total", "connects to other hosts that took a warm connection",
		 offsetof(struct ffr_xhost_stats, warm_taken)},
		{"warm_cold_total", "connects to other hosts that found no warm connection ready",
		 offsetof(struct ffr_xhost_stats, warm_cold)},
		{"warm_stale_total", "warm connections found closed when taken (retried cold)",
		 offsetof(struct ffr_xhost_stats, warm_stale)},
		{"warm_refused_total", "other routers' warm connections not kept",
		 offsetof(struct ffr_xhost_stats, warm_refused)},
		{"answered_early_total", "connects handed over before the other router's answer",
		 offsetof(struct ffr_xhost_stats, answered_early)},
	};
	struct ffr_xhost *xh = priv;
	const struct ffr_publish *pb;
	const struct ffr_host *h;
	uint64_t n = 0;

	for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
		ffr_metrics_family(m, fam[i].name, "counter", fam[i].help);
		ffr_metrics_sample(m, *(const uint64_t *)((const char *)&xh->stats + fam[i].off),
				   NULL);
	}
	ffr_metrics_family(m, "warm_open", "gauge", "warm connections open to other routers");
	ffr_metrics_sample(m, xh->warm_open, NULL);
	ffr_metrics_family(m, "warm_kept", "gauge", "other routers' warm connections kept");
	ffr_metrics_sample(m, xh->nwarm, NULL);
	TAILQ_FOREACH (h, &xh->hosts, link)
		n++;
	ffr_metrics_family(m, "hosts", "gauge", "other hosts of the cluster this router knows");
	ffr_metrics_sample(m, n, NULL);
	ffr_metrics_family(m, "published_accepted_total", "counter",
			   "connections accepted on a published host port");
	TAILQ_FOREACH (pb, &xh->publishes, link) {
		char port[8];

		snprintf(port, sizeof(port), "%u", pb->host_port);
		ffr_metrics_sample(m, pb->accepted, "container", pb->container, "host_port", port,
				   NULL);
	}
}

const struct ffr_op ffr_xhost_ops[] = {
	{FF__REQUEST__BODY_HOST_ADD, op_host_add, 0, false, true},
	{FF__REQUEST__BODY_HOST_REMOVE, op_host_remove, 0, false, true},
	{FF__REQUEST__BODY_LIST_HOSTS, op_list_hosts, 0, false, true},
	{FF__REQUEST__BODY_PUBLISH, op_publish, 0, false, true},
};
const size_t ffr_xhost_nops = sizeof(ffr_xhost_ops) / sizeof(ffr_xhost_ops[0]);
