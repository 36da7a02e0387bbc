/* Requests from ffctl on the admin socket: register, unregister, list,
 * status. A registration is validated completely before anything is
 * created, and rolled back if it cannot be persisted. */
#include "internal.h"

#include "log.h"
#include "msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Status listings are split so no reply datagram exceeds FF_REPLY_MAX:
 * these counts bound the size of each piece (names <= 63 bytes). */
#define CHUNK_CONTAINERS 64
#define CHUNK_LISTENERS 200
#define CHUNK_CONNS 120
#define STATUS_WAIT_MS 2000

/* Scratch strings for one reply; freed in one go. */
struct strpool {
	char **v;
	size_t n, cap;
};

static char *pool_fmt_ip(struct strpool *p, const struct ff_ip *ip)
{
	char buf[INET6_ADDRSTRLEN], *s;

	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		char **v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return (char *)"?";
		p->v = v;
		p->cap = cap;
	}
	s = strdup(ff_ip_fmt(ip, buf, sizeof(buf)));
	if (!s)
		return (char *)"?";
	p->v[p->n++] = s;
	return s;
}

static void pool_free(struct strpool *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
}

static void container_msg(const struct ffr_container *c, Ff__Container *m, char **ips,
			  struct strpool *p)
{
	ff__container__init(m);
	m->name = (char *)c->name;
	m->host = (char *)c->host;
	m->policy = (char *)(c->policy == FFR_POLICY_HOST ? "host" : "container");
	m->transport = (char *)(c->tcp_only ? "tcp" : "auto");
	for (int i = 0; i < c->nips; i++)
		ips[i] = pool_fmt_ip(p, &c->ips[i]);
	m->n_ips = (size_t)c->nips;
	m->ips = ips;
	m->channels = c->nchans;
	m->listeners = c->nlisteners;
	m->conns = c->nconns;
}

static int parse_register(struct ffr_router *r, const Ff__Register *m, struct ff_ip *ips,
			  char *err, size_t errlen)
{
	if (!ffr_name_valid(m->name)) {
		snprintf(err, errlen, "invalid container name '%.64s' (letters, digits, '-', '_', '.'; at most %d)",
			 m->name, FFR_NAME_MAX);
		return FF__STATUS__ST_INVALID;
	}
	if (ffr_container_find(r, m->name)) {
		snprintf(err, errlen, "container '%s' is already registered", m->name);
		return FF__STATUS__ST_EXISTS;
	}
	if (m->n_ips < 1 || m->n_ips > FFR_MAX_IPS) {
		snprintf(err, errlen, "give between 1 and %d addresses", FFR_MAX_IPS);
		return FF__STATUS__ST_INVALID;
	}
	for (size_t i = 0; i < m->n_ips; i++) {
		struct ffr_container *o;

		if (ff_ip_parse(m->ips[i], &ips[i]) < 0 || !ff_ip_is_unicast(&ips[i])) {
			snprintf(err, errlen, "'%.64s' is not a unicast IPv4 or IPv6 address", m->ips[i]);
			return FF__STATUS__ST_INVALID;
		}
		o = ffr_container_by_ip(r, &ips[i]);
		for (size_t j = 0; j < i && !o; j++)
			if (ff_ip_equal(&ips[i], &ips[j]))
				o = (struct ffr_container *)1;
		if (o) {
			snprintf(err, errlen, "address %s is already used%s%s", m->ips[i],
				 o == (struct ffr_container *)1 ? "" : " by ",
				 o == (struct ffr_container *)1 ? " twice" : o->name);
			return FF__STATUS__ST_ADDR_IN_USE;
		}
	}
	return FF__STATUS__ST_OK;
}

int ffr_policy_parse(const char *s, enum ffr_policy *out)
{
	if (!s || !*s || !strcmp(s, "container"))
		*out = FFR_POLICY_CONTAINER;
	else if (!strcmp(s, "host"))
		*out = FFR_POLICY_HOST;
	else
		return -EINVAL;
	return 0;
}

int ffr_transport_parse(const char *s, bool *tcp_only)
{
	if (!s || !*s || !strcmp(s, "auto"))
		*tcp_only = false;
	else if (!strcmp(s, "tcp"))
		*tcp_only = true;
	else
		return -EINVAL;
	return 0;
}

static void op_register(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	const Ff__Register *m = req->register_;
	struct ffr_router *r = ch->r;
	struct ff_ip ips[FFR_MAX_IPS];
	struct ffr_container *c;
	enum ffr_policy policy;
	bool tcp_only;
	struct stat st = {0};
	char err[256];
	int st_code, e;

	st_code = parse_register(r, m, ips, err, sizeof(err));
	if (st_code) {
		ffr_reply_status(ch, req->id, st_code, "%s", err);
		return;
	}
	if (!ffr_is_self(r, m->host) && !ffr_features_host_known(r, m->host)) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_NOT_FOUND,
				 "unknown host '%.64s' (declare it with ffctl host add)", m->host);
		return;
	}
	if (ffr_policy_parse(m->policy, &policy) < 0) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID,
				 "policy is 'container' or 'host', not '%.32s'", m->policy);
		return;
	}
	if (ffr_transport_parse(m->transport, &tcp_only) < 0) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID,
				 "transport is 'auto' or 'tcp', not '%.32s'", m->transport);
		return;
	}
	if (*m->netns && stat(m->netns, &st) < 0) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID, "netns %.200s: %s", m->netns,
				 strerror(errno));
		return;
	}
	e = ffr_container_new(r, m->name, ips, (int)m->n_ips, m->host, policy, st.st_dev, st.st_ino,
			      &c);
	if (!e) {
		c->tcp_only = tcp_only;
		e = ffr_features_registered(c);
		if (e)
			ffr_container_free(c);
	}
	if (e) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INTERNAL, "cannot register %s: %s",
				 m->name, strerror(-e));
		return;
	}
	ffr_map_publish(r);
	ff_info("registered %s (%s)", c->name, c->remote ? c->host : c->dir);
	ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, NULL);
}

static void op_unregister(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_router *r = ch->r;
	struct ffr_container *c = ffr_container_find(r, req->unregister->name);
	char name[FFR_NAME_MAX + 1], *dir;
	bool remote;

	if (!c) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_NOT_FOUND,
				 "no container named '%.64s'", req->unregister->name);
		return;
	}
	dir = c->dir ? strdup(c->dir) : NULL;
	snprintf(name, sizeof(name), "%s", c->name);
	remote = c->remote;
	ffr_container_free(c);
	ffr_map_publish(r);
	/* A running container may still have it mounted; that is fine. */
	if (dir && rmdir(dir) < 0 && errno != ENOENT)
		ff_info("leaving %s: %s", dir, strerror(errno));
	free(dir);
	ffr_features_unregistered(r, name, remote);
	ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, NULL);
}

static void op_list(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_router *r = ch->r;
	Ff__Reply rep = FF__REPLY__INIT;
	Ff__ListReply lr = FF__LIST_REPLY__INIT;
	Ff__Container cm[CHUNK_CONTAINERS], *cp[CHUNK_CONTAINERS];
	char *ips[CHUNK_CONTAINERS][FFR_MAX_IPS];
	struct ffr_container *c = TAILQ_FIRST(&r->containers);

	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_LIST;
	rep.list = &lr;
	lr.containers = cp;
	do {
		struct strpool pool = {0};

		lr.n_containers = 0;
		for (; c && lr.n_containers < CHUNK_CONTAINERS; c = TAILQ_NEXT(c, link)) {
			size_t i = lr.n_containers++;

			container_msg(c, &cm[i], ips[i], &pool);
			cp[i] = &cm[i];
		}
		rep.more = c != NULL;
		ffr_reply(ch, &rep, NULL, 0);
		pool_free(&pool);
	} while (c);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* One piece of the status listing; returns the number of conns it holds. */
struct status_piece {
	Ff__StatusReply sr;
	Ff__RouterHealth health;
	char last_stall[192];
	Ff__Container cm[CHUNK_CONTAINERS], *cp[CHUNK_CONTAINERS];
	char *ips[CHUNK_CONTAINERS][FFR_MAX_IPS];
	Ff__ListenerInfo lm[CHUNK_LISTENERS], *lp[CHUNK_LISTENERS];
	Ff__ConnInfo km[CHUNK_CONNS], *kp[CHUNK_CONNS];
	Ff__Addr addrs[CHUNK_LISTENERS + 2 * CHUNK_CONNS];
	uint8_t ipb[CHUNK_LISTENERS + 2 * CHUNK_CONNS][16];
	size_t na;
	struct strpool pool;
};

static Ff__Addr *piece_addr(struct status_piece *p, const struct ff_sa *sa)
{
	size_t i = p->na++;

	ff_sa_to_proto(sa, &p->addrs[i], p->ipb[i]);
	return &p->addrs[i];
}

static void piece_conn(struct status_piece *p, const struct ffr_conn *cn)
{
	size_t i = p->sr.n_conns++;
	Ff__ConnInfo *k = &p->km[i];

	ff__conn_info__init(k);
	k->id = cn->id;
	k->path = cn->path;
	k->client = (char *)cn->cli.name;
	k->server = (char *)cn->srv.name;
	k->client_addr = piece_addr(p, &cn->cli.addr);
	k->server_addr = piece_addr(p, &cn->srv.addr);
	k->bytes_c2s = max_u64(ffr_conn_side_bytes(&cn->cli, true),
			       ffr_conn_side_bytes(&cn->srv, false));
	k->bytes_s2c = max_u64(ffr_conn_side_bytes(&cn->srv, true),
			       ffr_conn_side_bytes(&cn->cli, false));
	p->kp[i] = k;
}

static void piece_listener(struct status_piece *p, const struct ffr_listener *l)
{
	size_t i = p->sr.n_listeners++;
	Ff__ListenerInfo *m = &p->lm[i];

	ff__listener_info__init(m);
	m->id = l->id;
	m->container = (char *)l->c->name;
	m->addr = piece_addr(p, &l->addr);
	m->pending = l->npending;
	m->accepted = l->accepted;
	p->lp[i] = m;
}

static void piece_health(struct status_piece *p, struct ffr_router *r)
{
	ff__router_health__init(&p->health);
	p->health.loop_stalls = ffr_loop_stalls(r, p->last_stall, sizeof(p->last_stall));
	p->health.last_stall = p->last_stall;
	ffr_fd_usage(r, &p->health.fds_open, &p->health.fd_limit, &p->health.fd_refusals);
	p->health.quota_refusals = r->quota_refusals;
	p->health.accepts_shed = ffr_accepts_shed(r);
	p->sr.health = &p->health;
}

static void op_status(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_router *r = ch->r;
	struct status_piece *p = malloc(sizeof(*p));
	struct ffr_container *c = TAILQ_FIRST(&r->containers);
	struct ffr_listener *l = TAILQ_FIRST(&r->listeners);
	struct ffr_conn *cn;
	Ff__Reply rep = FF__REPLY__INIT;
	void *fmem[FFR_FEATURES_MAX] = {0}; /* the features' parts of the first piece */
	bool first = true;
	/* thousands of connections take more pieces than the socket holds:
	 * ffctl gets time to read them (a stopped ffctl stalls the loop this
	 * long at most, then loses its channel) */
	int budget_ms = STATUS_WAIT_MS;

	if (!p) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INTERNAL, "out of memory");
		return;
	}
	ffr_conn_sweep(r);
	cn = TAILQ_FIRST(&r->conns);
	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_STATUS_REPLY;
	do {
		memset(&p->pool, 0, sizeof(p->pool));
		ff__status_reply__init(&p->sr);
		p->na = 0;
		p->sr.containers = p->cp;
		p->sr.listeners = p->lp;
		p->sr.conns = p->kp;
		if (first) {
			p->sr.conns_total = r->conns_total;
			p->sr.fallbacks = r->fallbacks;
			p->sr.bad_messages = r->bad_messages;
			p->sr.ring_size = r->ring;
			p->sr.rings_total = r->rings_total;
			p->sr.ring_bytes = r->ring_bytes;
			p->sr.router_version = (char *)FF_VERSION;
			p->sr.host = r->host_id;
			piece_health(p, r);
			ffr_features_status(r, &p->sr, fmem);
		}
		first = false;
		for (; c && p->sr.n_containers < CHUNK_CONTAINERS; c = TAILQ_NEXT(c, link)) {
			size_t i = p->sr.n_containers++;

			container_msg(c, &p->cm[i], p->ips[i], &p->pool);
			p->cp[i] = &p->cm[i];
		}
		for (; l && p->sr.n_listeners < CHUNK_LISTENERS; l = TAILQ_NEXT(l, link))
			piece_listener(p, l);
		for (; cn && p->sr.n_conns < CHUNK_CONNS; cn = TAILQ_NEXT(cn, link))
			piece_conn(p, cn);
		rep.status_reply = &p->sr;
		rep.more = c || l || cn;
		ffr_reply_piece(ch, &rep, &budget_ms);
		pool_free(&p->pool);
		for (int i = 0; i < FFR_FEATURES_MAX; i++) {
			free(fmem[i]);
			fmem[i] = NULL;
		}
	} while (rep.more && ch->fd >= 0);
	free(p);
}

const struct ffr_op ffr_admin_ops[] = {
	{FF__REQUEST__BODY_REGISTER, op_register, 0, false, true},
	{FF__REQUEST__BODY_UNREGISTER, op_unregister, 0, false, true},
	{FF__REQUEST__BODY_LIST, op_list, 0, false, true},
	{FF__REQUEST__BODY_STATUS, op_status, 0, false, true},
};
const size_t ffr_admin_nops = sizeof(ffr_admin_ops) / sizeof(ffr_admin_ops[0]);
