/* ffctl status [--json] [--watch [SECONDS]] [--count N]: containers,
 * listeners, connections (path, bytes each way) and the router's counters,
 * its own and its cluster part's. --watch asks again every SECONDS on one
 * channel until SIGINT (exit 0), N frames, or the router's loss (exit 1);
 * frames clear a terminal, elsewhere a blank line separates them. */
#include "ffctl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WATCH_MAX_S 86400.0

static void print_listeners(Ff__Reply **reps, size_t n)
{
	char a[FF_ADDRSTRLEN];

	printf("\n%-6s %-20s %-28s %8s %10s\n", "ID", "CONTAINER", "ADDRESS", "PENDING",
	       "ACCEPTED");
	for (size_t k = 0; k < n; k++) {
		Ff__StatusReply *s = reps[k]->status_reply;

		for (size_t i = 0; i < s->n_listeners; i++) {
			Ff__ListenerInfo *l = s->listeners[i];

			ffc_addr_str(l->addr, a, sizeof(a));
			printf("%-6" PRIu64 " %-20s %-28s %8u %10" PRIu64 "\n", l->id, l->container,
			       a, l->pending, l->accepted);
		}
	}
}

static struct json_object *listeners_json(Ff__Reply **reps, size_t n)
{
	struct json_object *v = json_object_new_array();
	char a[FF_ADDRSTRLEN];

	for (size_t k = 0; k < n; k++) {
		Ff__StatusReply *s = reps[k]->status_reply;

		for (size_t i = 0; i < s->n_listeners; i++) {
			Ff__ListenerInfo *l = s->listeners[i];
			struct json_object *o = json_object_new_object();

			ffc_addr_str(l->addr, a, sizeof(a));
			json_object_object_add(o, "id", json_object_new_uint64(l->id));
			json_object_object_add(o, "container", ffc_json_string(l->container));
			json_object_object_add(o, "addr", ffc_json_string(a));
			json_object_object_add(o, "pending", json_object_new_uint64(l->pending));
			json_object_object_add(o, "accepted", json_object_new_uint64(l->accepted));
			json_object_array_add(v, o);
		}
	}
	return v;
}

static void print_conns(Ff__Reply **reps, size_t n)
{
	char ca[FF_ADDRSTRLEN], sa[FF_ADDRSTRLEN];

	printf("\n%-6s %-10s %-16s %-24s %-16s %-24s %14s %14s\n", "ID", "PATH", "CLIENT",
	       "CLIENT-ADDR", "SERVER", "SERVER-ADDR", "BYTES-C2S", "BYTES-S2C");
	for (size_t k = 0; k < n; k++) {
		Ff__StatusReply *s = reps[k]->status_reply;

		for (size_t i = 0; i < s->n_conns; i++) {
			Ff__ConnInfo *c = s->conns[i];

			ffc_addr_str(c->client_addr, ca, sizeof(ca));
			ffc_addr_str(c->server_addr, sa, sizeof(sa));
			printf("%-6" PRIu64 " %-10s %-16s %-24s %-16s %-24s %14" PRIu64
			       " %14" PRIu64 "\n",
			       c->id, ffc_path_name(c->path), c->client, ca, c->server, sa,
			       c->bytes_c2s, c->bytes_s2c);
		}
	}
}

static struct json_object *conn_json(const Ff__ConnInfo *c)
{
	struct json_object *o = json_object_new_object();
	char a[FF_ADDRSTRLEN];

	json_object_object_add(o, "id", json_object_new_uint64(c->id));
	json_object_object_add(o, "path", ffc_json_string(ffc_path_name(c->path)));
	json_object_object_add(o, "client", ffc_json_string(c->client));
	json_object_object_add(o, "client_addr",
			       ffc_json_string(ffc_addr_str(c->client_addr, a, sizeof(a))));
	json_object_object_add(o, "server", ffc_json_string(c->server));
	json_object_object_add(o, "server_addr",
			       ffc_json_string(ffc_addr_str(c->server_addr, a, sizeof(a))));
	json_object_object_add(o, "bytes_c2s", json_object_new_uint64(c->bytes_c2s));
	json_object_object_add(o, "bytes_s2c", json_object_new_uint64(c->bytes_s2c));
	return o;
}

static struct json_object *conns_json(Ff__Reply **reps, size_t n)
{
	struct json_object *v = json_object_new_array();

	for (size_t k = 0; k < n; k++) {
		Ff__StatusReply *s = reps[k]->status_reply;

		for (size_t i = 0; i < s->n_conns; i++)
			json_object_array_add(v, conn_json(s->conns[i]));
	}
	return v;
}

static void print_publishes(const Ff__StatusReply *s)
{
	printf("%-10s %-20s %6s %10s\n", "HOSTPORT", "CONTAINER", "PORT", "ACCEPTED");
	for (size_t i = 0; i < s->n_publishes; i++) {
		const Ff__PublishInfo *p = s->publishes[i];

		printf("%-10u %-20s %6u %10" PRIu64 "\n", p->host_port, p->container, p->port,
		       p->accepted);
	}
}

static struct json_object *publishes_json(const Ff__StatusReply *s)
{
	struct json_object *v = json_object_new_array();

	for (size_t i = 0; i < s->n_publishes; i++) {
		const Ff__PublishInfo *p = s->publishes[i];
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "host_port", json_object_new_uint64(p->host_port));
		json_object_object_add(o, "container", ffc_json_string(p->container));
		json_object_object_add(o, "port", json_object_new_uint64(p->port));
		json_object_object_add(o, "accepted", json_object_new_uint64(p->accepted));
		json_object_array_add(v, o);
	}
	return v;
}

static void print_health(const Ff__RouterHealth *h)
{
	if (!h)
		return;
	printf("event loop: %" PRIu64 " stalls%s%s%s\n", h->loop_stalls,
	       *h->last_stall ? " (last: " : "", h->last_stall, *h->last_stall ? ")" : "");
	printf("file descriptors: %u open, limit %u, %" PRIu64 " requests refused near the "
	       "limit, %" PRIu64 " connections closed at accept; %" PRIu64
	       " connects refused by quotas\n\n",
	       h->fds_open, h->fd_limit, h->fd_refusals, h->accepts_shed, h->quota_refusals);
}

static struct json_object *health_json(const Ff__RouterHealth *h)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "loop_stalls", json_object_new_uint64(h ? h->loop_stalls : 0));
	json_object_object_add(o, "last_stall", ffc_json_string(h ? h->last_stall : ""));
	json_object_object_add(o, "fds_open", json_object_new_uint64(h ? h->fds_open : 0));
	json_object_object_add(o, "fd_limit", json_object_new_uint64(h ? h->fd_limit : 0));
	json_object_object_add(o, "fd_refusals", json_object_new_uint64(h ? h->fd_refusals : 0));
	json_object_object_add(o, "accepts_shed", json_object_new_uint64(h ? h->accepts_shed : 0));
	json_object_object_add(o, "quota_refusals",
			       json_object_new_uint64(h ? h->quota_refusals : 0));
	return o;
}

static void print_cluster(const Ff__ClusterHealth *c)
{
	if (!c)
		return;
	printf("ingress: %" PRIu64 " connections without a preamble in time, %" PRIu64
	       " closed over the cap, %" PRIu64 " preambles refused\n",
	       c->ingress_timeouts, c->ingress_overcap, c->preambles_refused);
	printf("other routers' answers refused (bad MAC): %" PRIu64
	       "; policy host: %" PRIu64 " connects refused\n",
	       c->replies_refused, c->outside_refused);
	printf("warm connections: %" PRIu64 " open, %" PRIu64 " taken, %" PRIu64 " cold, %" PRIu64
	       " stale; %" PRIu64 " kept for other routers, %" PRIu64 " refused\n\n",
	       c->warm_open, c->warm_taken, c->warm_cold, c->warm_stale, c->warm_kept,
	       c->warm_refused);
}

/* Zeros when the router has no cluster part, so the members are always there. */
static struct json_object *cluster_json(const Ff__ClusterHealth *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ingress_timeouts",
			       json_object_new_uint64(c ? c->ingress_timeouts : 0));
	json_object_object_add(o, "ingress_overcap",
			       json_object_new_uint64(c ? c->ingress_overcap : 0));
	json_object_object_add(o, "preambles_refused",
			       json_object_new_uint64(c ? c->preambles_refused : 0));
	json_object_object_add(o, "replies_refused",
			       json_object_new_uint64(c ? c->replies_refused : 0));
	json_object_object_add(o, "outside_refused",
			       json_object_new_uint64(c ? c->outside_refused : 0));
	json_object_object_add(o, "warm_open", json_object_new_uint64(c ? c->warm_open : 0));
	json_object_object_add(o, "warm_taken", json_object_new_uint64(c ? c->warm_taken : 0));
	json_object_object_add(o, "warm_cold", json_object_new_uint64(c ? c->warm_cold : 0));
	json_object_object_add(o, "warm_stale", json_object_new_uint64(c ? c->warm_stale : 0));
	json_object_object_add(o, "warm_kept", json_object_new_uint64(c ? c->warm_kept : 0));
	json_object_object_add(o, "warm_refused", json_object_new_uint64(c ? c->warm_refused : 0));
	json_object_object_add(o, "answered_early",
			       json_object_new_uint64(c ? c->answered_early : 0));
	return o;
}

/* Sockets over RDMA: the pairs with other routers (nothing without). */
static void print_rsock(const Ff__RsockStatus *r)
{
	if (!r)
		return;
	printf("sockets over RDMA: %s; %u connections now, %" PRIu64 " in all, %" PRIu64
	       " went over TCP instead, %" PRIu64 " refused by the other side; %" PRIu64
	       " bytes copied for slow readers\n",
	       r->enabled ? "on" : "off", r->conns, r->conns_total, r->fallbacks, r->refused,
	       r->copies);
	if (!r->n_pairs) {
		printf("\n");
		return;
	}
	printf("%-16s %-10s %-6s %8s %8s %6s %14s %14s %10s %10s\n", "PAIR-HOST", "STATE", "SIDE",
	       "QPN", "PEER-QPN", "CONNS", "BYTES-TX", "BYTES-RX", "MEM", "STAGED");
	for (size_t i = 0; i < r->n_pairs; i++) {
		const Ff__RsockPair *p = r->pairs[i];

		printf("%-16s %-10s %-6s %8u %8u %6u %14" PRIu64 " %14" PRIu64 " %10" PRIu64
		       " %10" PRIu64 "\n",
		       p->host, p->state, p->active ? "ours" : "theirs", p->qpn, p->peer_qpn,
		       p->conns, p->tx_bytes, p->rx_bytes, p->mem_bytes, p->staged_bytes);
	}
	printf("\n");
}

static struct json_object *rsock_json(const Ff__RsockStatus *r)
{
	struct json_object *o = json_object_new_object(), *v = json_object_new_array();

	json_object_object_add(o, "enabled", json_object_new_boolean(r->enabled));
	json_object_object_add(o, "conns", json_object_new_uint64(r->conns));
	json_object_object_add(o, "conns_total", json_object_new_uint64(r->conns_total));
	json_object_object_add(o, "fallbacks", json_object_new_uint64(r->fallbacks));
	json_object_object_add(o, "refused", json_object_new_uint64(r->refused));
	json_object_object_add(o, "pairs_total", json_object_new_uint64(r->pairs_total));
	json_object_object_add(o, "pair_failures", json_object_new_uint64(r->pair_failures));
	json_object_object_add(o, "copies", json_object_new_uint64(r->copies));
	for (size_t i = 0; i < r->n_pairs; i++) {
		const Ff__RsockPair *p = r->pairs[i];
		struct json_object *q = json_object_new_object();

		json_object_object_add(q, "host", ffc_json_string(p->host));
		json_object_object_add(q, "state", ffc_json_string(p->state));
		json_object_object_add(q, "active", json_object_new_boolean(p->active));
		json_object_object_add(q, "qpn", json_object_new_uint64(p->qpn));
		json_object_object_add(q, "peer_qpn", json_object_new_uint64(p->peer_qpn));
		json_object_object_add(q, "conns", json_object_new_uint64(p->conns));
		json_object_object_add(q, "tx_bytes", json_object_new_uint64(p->tx_bytes));
		json_object_object_add(q, "rx_bytes", json_object_new_uint64(p->rx_bytes));
		json_object_object_add(q, "tx_msgs", json_object_new_uint64(p->tx_msgs));
		json_object_object_add(q, "rx_msgs", json_object_new_uint64(p->rx_msgs));
		json_object_object_add(q, "mem_bytes", json_object_new_uint64(p->mem_bytes));
		json_object_object_add(q, "staged_bytes", json_object_new_uint64(p->staged_bytes));
		json_object_array_add(v, q);
	}
	json_object_object_add(o, "pairs", v);
	return o;
}

/* One object; its members in the order scripts have always seen them
 * (new ones last). */
static void print_status_json(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n)
{
	Ff__StatusReply *s = reps[0]->status_reply;
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "version", ffc_json_string(s->router_version));
	json_object_object_add(o, "host", ffc_json_string(s->host));
	json_object_object_add(o, "conns_total", json_object_new_uint64(s->conns_total));
	json_object_object_add(o, "fallbacks", json_object_new_uint64(s->fallbacks));
	json_object_object_add(o, "bad_messages", json_object_new_uint64(s->bad_messages));
	json_object_object_add(o, "hosts", ffc_hosts_json(s->hosts, s->n_hosts));
	json_object_object_add(o, "publishes", publishes_json(s));
	json_object_object_add(o, "containers", ffc_containers_json(reps, n, true));
	json_object_object_add(o, "listeners", listeners_json(reps, n));
	json_object_object_add(o, "conns", conns_json(reps, n));
	json_object_object_add(o, "rdma", ffc_rdma_json(ctx));
	json_object_object_add(o, "health", health_json(s->health));
	json_object_object_add(o, "cluster", cluster_json(s->cluster));
	if (s->rsock)
		json_object_object_add(o, "rsock", rsock_json(s->rsock));
	{
		struct json_object *g = json_object_new_object();

		json_object_object_add(g, "size", json_object_new_uint64(s->ring_size));
		json_object_object_add(g, "conns_total", json_object_new_uint64(s->rings_total));
		json_object_object_add(g, "bytes", json_object_new_uint64(s->ring_bytes));
		json_object_object_add(o, "rings", g);
	}
	ffc_json_print(o);
}

static void print_status(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n)
{
	Ff__StatusReply *s = reps[0]->status_reply;

	if (ctx->json) {
		print_status_json(ctx, reps, n);
		return;
	}
	printf("ffrouter %s on host %s: %" PRIu64 " connections accelerated, %" PRIu64
	       " fell back to the kernel, %" PRIu64 " bad messages\n\n",
	       s->router_version, s->host, s->conns_total, s->fallbacks, s->bad_messages);
	if (s->ring_size)
		printf("same-host rings: %u KiB each way; %" PRIu64 " connections had them, %" PRIu64
		       " KiB now\n\n",
		       s->ring_size >> 10, s->rings_total, s->ring_bytes >> 10);
	print_health(s->health);
	print_cluster(s->cluster);
	print_rsock(s->rsock);
	if (s->n_hosts) {
		ffc_print_hosts(s->hosts, s->n_hosts);
		printf("\n");
	}
	if (s->n_publishes) {
		print_publishes(s);
		printf("\n");
	}
	ffc_print_containers(reps, n, true);
	print_listeners(reps, n);
	print_conns(reps, n);
	ffc_print_rdma(ctx);
}

static void status_req(Ff__Request *req, Ff__GetStatus *m)
{
	ff__get_status__init(m);
	req->body_case = FF__REQUEST__BODY_STATUS;
	req->status = m;
}

struct watch {
	double every_s; /* 0: no --watch */
	unsigned long count; /* 0: until interrupted */
};

static int usage_err(void)
{
	fprintf(stderr, "usage: ffctl status [--json] [--watch [SECONDS]] [--count N]\n");
	return 2;
}

/* 0, or 2 (said why) for bad usage. */
static int parse_watch(struct ffc_ctx *ctx, int argc, char **argv, struct watch *w)
{
	for (int i = 1; i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "--json")) {
			ctx->json = true;
		} else if (!strcmp(argv[i], "--watch")) {
			w->every_s = 1;
			if (i + 1 < argc && argv[i + 1][0] != '-') {
				errno = 0;
				w->every_s = strtod(argv[++i], &end);
				if (errno || *end || !isfinite(w->every_s) || w->every_s <= 0 ||
				    w->every_s > WATCH_MAX_S) {
					fprintf(stderr, "ffctl: bad --watch interval '%s' (seconds, "
							"more than 0)\n", argv[i]);
					return 2;
				}
			}
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			errno = 0;
			w->count = strtoul(argv[++i], &end, 10);
			if (errno || *end || argv[i][0] == '-' || !w->count) {
				fprintf(stderr, "ffctl: bad --count '%s' (frames, at least 1)\n", argv[i]);
				return 2;
			}
		} else {
			return usage_err();
		}
	}
	if (w->count && !w->every_s)
		w->every_s = 1;
	return 0;
}

/* One frame on the open channel: asks, checks, prints. Exit code. */
static int frame(struct ffc_ctx *ctx)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus m;
	Ff__Reply **reps;
	size_t n;
	int rc = 0;

	status_req(&req, &m);
	if (ffc_call(ctx, &req, &reps, &n))
		return 1;
	if (reps[0]->status)
		rc = ffc_fail(reps[0], "status");
	for (size_t k = 0; !rc && k < n; k++)
		if (reps[k]->body_case != FF__REPLY__BODY_STATUS_REPLY) {
			fprintf(stderr, "ffctl: status: unexpected reply from the router\n");
			rc = 1;
		}
	if (!rc)
		print_status(ctx, reps, n);
	ffc_replies_free(reps, n);
	return rc;
}

/* Frames until SIGINT (blocked, and taken only while waiting, so a frame
 * is never cut in the middle), the count, or a failure. */
static int watch(struct ffc_ctx *ctx, const struct watch *w)
{
	time_t whole = (time_t)w->every_s;
	struct timespec ts = {whole, (long)((w->every_s - (double)whole) * 1e9)};
	bool tty = isatty(STDOUT_FILENO);
	sigset_t set;
	int rc;

	/* a shell starts background commands with SIGINT ignored, and an
	 * ignored signal never reaches sigtimedwait */
	signal(SIGINT, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = ffc_connect(ctx);
	for (unsigned long i = 0; !rc; i++) {
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (i)
			putchar('\n');
		rc = frame(ctx);
		fflush(stdout);
		if (rc || (w->count && i + 1 == w->count))
			break;
		if (sigtimedwait(&set, NULL, &ts) == SIGINT)
			break;
	}
	return rc;
}

int ffc_cmd_status(struct ffc_ctx *ctx, int argc, char **argv)
{
	Ff__Request req = FF__REQUEST__INIT;
	struct watch w = {0};
	Ff__GetStatus m;
	int rc = parse_watch(ctx, argc, argv, &w);

	if (rc)
		return rc;
	if (w.every_s)
		return watch(ctx, &w);
	status_req(&req, &m);
	return ffc_query(ctx, 1, argv, "status", &req, FF__REPLY__BODY_STATUS_REPLY, print_status);
}
