/* The --metrics endpoint: GET /metrics answers the Prometheus text format
 * (version 0.0.4) from the router's own loop, made from the counters
 * ffctl status shows; the features add theirs through their metrics hook.
 * Any other path is 404, any other method 405.
 *
 * Invariants: it listens only on the address it was given; every
 * connection serves one request and is closed (Connection: close); a
 * connection idle for IO_TIMEOUT_S, a header block over MAX_HEADERS or any
 * request body ends it; while the router holds more than FD_SHARE_DEN-1 of
 * FD_SHARE_DEN parts of its fd limit, new connections wait in the kernel
 * backlog (PAUSE_MS at a time), so HTTP clients cannot eat the fds that
 * containers' work needs. Label values are escaped: container names are
 * the users'. */
#include "internal.h"

#include "log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IO_TIMEOUT_S 5
#define MAX_HEADERS 8192
#define BACKLOG 16
#define FD_SHARE_DEN 4
#define PAUSE_MS 1000

struct ffr_mserver {
	struct ffr_router *r;
	struct evhttp *http;
	struct evconnlistener *lev; /* owned by http once bound */
	struct event *resume_ev;
};

static const char *const path_names[FFR_PATHS] = {
	[FF__PATH__PATH_NONE] = "kernel",
	[FF__PATH__PATH_SAME_HOST] = "same-host",
	[FF__PATH__PATH_TCP] = "tcp",
	[FF__PATH__PATH_RDMA] = "rdma",
};

int ffr_metrics_parse(const char *s, struct ff_sa *out)
{
	return ff_sa_parse(s, out, FF_SA_PORT0 | FF_SA_STRICT);
}

/* ---- the exposition ---- */

void ffr_metrics_family(struct ffr_metrics *m, const char *name, const char *type, const char *help)
{
	m->family = name;
	evbuffer_add_printf(m->out, "# HELP ffnet_%s %s\n# TYPE ffnet_%s %s\n", name, help, name,
			    type);
}

static void put_escaped(struct evbuffer *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*v == '"')
			evbuffer_add(out, "\\\"", 2);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

void ffr_metrics_sample(struct ffr_metrics *m, uint64_t v, ...)
{
	const char *k, *sep = "{";
	va_list ap;

	evbuffer_add_printf(m->out, "ffnet_%s", m->family);
	va_start(ap, v);
	while ((k = va_arg(ap, const char *))) {
		const char *lv = va_arg(ap, const char *);

		evbuffer_add_printf(m->out, "%s%s=\"", sep, k);
		put_escaped(m->out, lv ? lv : "");
		evbuffer_add(m->out, "\"", 1);
		sep = ",";
	}
	va_end(ap);
	evbuffer_add_printf(m->out, "%s %llu\n", *sep == ',' ? "}" : "", (unsigned long long)v);
}

static void one(struct ffr_metrics *m, const char *name, const char *type, const char *help,
		uint64_t v)
{
	ffr_metrics_family(m, name, type, help);
	ffr_metrics_sample(m, v, NULL);
}

static void core_conns(struct ffr_metrics *m, struct ffr_router *r)
{
	uint64_t open[FFR_PATHS] = {0};
	const struct ffr_conn *cn;

	TAILQ_FOREACH (cn, &r->conns, link)
		if ((unsigned)cn->path < FFR_PATHS)
			open[cn->path]++;
	ffr_metrics_family(m, "connections_total", "counter",
			   "connections handed to containers since the router started, by path");
	for (int p = FF__PATH__PATH_SAME_HOST; p < FFR_PATHS; p++)
		ffr_metrics_sample(m, r->conns_path[p], "path", path_names[p], NULL);
	ffr_metrics_family(m, "connections_open", "gauge",
			   "connections the router tracks (closed ones go at the next sweep, 2 s)");
	for (int p = FF__PATH__PATH_SAME_HOST; p < FFR_PATHS; p++)
		ffr_metrics_sample(m, open[p], "path", path_names[p], NULL);
}

static void core_health(struct ffr_metrics *m, struct ffr_router *r)
{
	unsigned fds, limit;
	uint64_t refusals;

	ffr_fd_usage(r, &fds, &limit, &refusals);
	one(m, "fallbacks_total", "counter", "connects left to the kernel's own sockets",
	    r->fallbacks);
	one(m, "bad_messages_total", "counter",
	    "malformed or refused messages from shims and peers", r->bad_messages);
	one(m, "quota_refusals_total", "counter",
	    "connects refused by a container's quota or a channel's cap", r->quota_refusals);
	one(m, "fd_refusals_total", "counter", "new work refused near the router's fd limit",
	    refusals);
	one(m, "accepts_shed_total", "counter",
	    "connections closed at accept: the router was out of fds", ffr_accepts_shed(r));
	one(m, "loop_stalls_total", "counter", "times the watchdog saw the event loop stuck",
	    ffr_loop_stalls(r, NULL, 0));
	one(m, "fds_open", "gauge", "the router's open file descriptors", fds);
	one(m, "fd_limit", "gauge", "the router's RLIMIT_NOFILE when it started", limit);
}

/* The per-container families, of the containers on this host. */
static void core_containers(struct ffr_metrics *m, struct ffr_router *r)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} fam[] = {
		{"container_channels", "shim channels open", offsetof(struct ffr_container, nchans)},
		{"container_listeners", "overlay listeners", offsetof(struct ffr_container, nlisteners)},
		{"container_connections", "connections open", offsetof(struct ffr_container, nconns)},
	};
	const struct ffr_container *c;
	const struct ffr_conn *cn;
	uint64_t n = 0;

	TAILQ_FOREACH (c, &r->containers, link)
		n++;
	one(m, "containers", "gauge", "containers registered (all hosts)", n);
	for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
		ffr_metrics_family(m, fam[i].name, "gauge", fam[i].help);
		TAILQ_FOREACH (c, &r->containers, link)
			if (!c->remote)
				ffr_metrics_sample(m, *(const uint32_t *)((const char *)c + fam[i].off),
						   "container", c->name, NULL);
	}
	ffr_metrics_family(m, "container_bytes", "gauge",
			   "bytes its open connections sent and received");
	TAILQ_FOREACH (c, &r->containers, link) {
		uint64_t tx = 0, rx = 0;

		if (c->remote)
			continue;
		TAILQ_FOREACH (cn, &r->conns, link) {
			const struct ffr_conn_side *s = cn->cli.c == c ? &cn->cli :
							cn->srv.c == c ? &cn->srv : NULL;

			if (s) {
				tx += ffr_conn_side_bytes(s, true);
				rx += ffr_conn_side_bytes(s, false);
			}
		}
		ffr_metrics_sample(m, tx, "container", c->name, "direction", "sent", NULL);
		ffr_metrics_sample(m, rx, "container", c->name, "direction", "received", NULL);
	}
}

static void write_all(struct ffr_router *r, struct evbuffer *out)
{
	struct ffr_metrics m = {.out = out};
	const struct ffr_listener *l;
	uint64_t nl = 0;

	ffr_metrics_family(&m, "router_info", "gauge", "the router's version and host id");
	ffr_metrics_sample(&m, 1, "version", FF_VERSION, "host", r->host_id, NULL);
	core_conns(&m, r);
	core_health(&m, r);
	core_containers(&m, r);
	TAILQ_FOREACH (l, &r->listeners, link)
		nl++;
	one(&m, "listeners", "gauge", "overlay listeners of every container", nl);
	ffr_features_metrics(r, &m);
}

/* ---- the HTTP side ---- */

static void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct ffr_mserver *s = arg;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	ffr_doing(s->r, "metrics", NULL, 0);
	write_all(s->r, evhttp_request_get_output_buffer(req));
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(h, "Connection", "close");
	evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

/* Every other path (evhttp_send_error closes the connection). */
static void other_cb(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, HTTP_NOTFOUND, NULL);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_mserver *s = arg;

	evconnlistener_enable(s->lev);
}

/* Called for every accepted connection (before evhttp reads it): stops
 * accepting for a while if the router's fds run short. NULL: evhttp makes
 * the bufferevent. */
static struct bufferevent *accepted_cb(struct event_base *base, void *arg)
{
	struct ffr_mserver *s = arg;
	struct timeval tv = {PAUSE_MS / 1000, (PAUSE_MS % 1000) * 1000};
	unsigned open, limit;

	ffr_fd_usage(s->r, &open, &limit, NULL);
	if (limit && open > limit / FD_SHARE_DEN * (FD_SHARE_DEN - 1) &&
	    evconnlistener_disable(s->lev) == 0) {
		ff_warn("metrics: the router holds %u of %u fds: not accepting for %d ms", open,
			limit, PAUSE_MS);
		evtimer_add(s->resume_ev, &tv);
	}
	return NULL;
}

static int serve(struct ffr_mserver *s, const struct ff_sa *a)
{
	struct timeval tmo = {IO_TIMEOUT_S, 0};
	int fd = ffr_listen_tcp(a, BACKLOG, true);

	if (fd < 0)
		return fd;
	s->lev = evconnlistener_new(s->r->base, NULL, NULL,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, BACKLOG, fd);
	if (!s->lev) {
		close(fd);
		return -ENOMEM;
	}
	if (!evhttp_bind_listener(s->http, s->lev)) {
		evconnlistener_free(s->lev);
		s->lev = NULL;
		return -ENOMEM;
	}
	evhttp_set_timeout_tv(s->http, &tmo);
	evhttp_set_max_headers_size(s->http, MAX_HEADERS);
	evhttp_set_max_body_size(s->http, 0);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	if (evhttp_set_cb(s->http, "/metrics", metrics_cb, s) < 0)
		return -ENOMEM;
	evhttp_set_gencb(s->http, other_cb, s);
	evhttp_set_bevcb(s->http, accepted_cb, s);
	return 0;
}

/* Where the endpoint listens (the port the kernel chose for port 0). */
static const char *bound_addr(struct ffr_mserver *s, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct ff_sa a;

	if (getsockname(evconnlistener_get_fd(s->lev), (struct sockaddr *)&ss, &sl) < 0 ||
	    ff_sa_from_sockaddr(&a, (struct sockaddr *)&ss, sl) < 0)
		return "?";
	return ff_sa_fmt(&a, buf, len);
}

int ffr_mserver_new(struct ffr_router *r, const char *addr)
{
	struct ffr_mserver *s;
	char buf[FF_ADDRSTRLEN];
	struct ff_sa a;
	int err;

	if (!addr)
		return 0;
	if (ffr_metrics_parse(addr, &a) < 0) {
		ff_err("metrics: '%s' is not IP:PORT", addr);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->r = r;
	r->metrics = s;
	s->http = evhttp_new(r->base);
	s->resume_ev = evtimer_new(r->base, resume_cb, s);
	err = s->http && s->resume_ev ? serve(s, &a) : -ENOMEM;
	if (err)
		ff_err("metrics: cannot serve on %s: %s", addr, strerror(-err));
	else
		ff_info("metrics on http://%s/metrics", bound_addr(s, buf, sizeof(buf)));
	return err;
}

void ffr_mserver_free(struct ffr_mserver *s)
{
	if (!s)
		return;
	if (s->http)
		evhttp_free(s->http); /* with its bound listener and connections */
	if (s->resume_ev)
		event_free(s->resume_ev);
	free(s);
}
