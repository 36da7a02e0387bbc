/* The cluster store: etcd (v3, through its JSON gateway), selected with
 * --store etcd://HOST:PORT. Each router keeps a lease and puts, under it,
 * its own host record and its local containers, in the state file's line
 * format (/ffnet/v1/host/ID, /ffnet/v1/container/NAME). It reads the whole
 * prefix once, then watches it: other routers' records become hosts and
 * remote containers here, and go away when deleted or when their router's
 * lease expires (a dead host's containers expire with it). After any
 * failure it starts over: new lease, records put again, full resync.
 *
 * Invariant: only records learned here are flagged from_store; they are
 * never saved in the state file, and never displace a local registration. */
#include "internal.h"

#include "json-read.h"
#include "log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "/ffnet/v1/"
#define LEASE_TTL 10
#define KEEPALIVE_S 3
#define RETRY_S 1
#define BODY_MAX (4 << 20)
#define PENDING_MAX 256

struct ffr_etcd {
	struct ffr_router *r;
	char host[256];
	uint16_t port;
	char advertise[FF_ADDRSTRLEN];
	struct evhttp_connection *conn;  /* requests */
	struct evhttp_connection *wconn; /* the watch stream */
	char lease[32];                  /* "" while none */
	bool up;
	struct event *timer;
	struct evbuffer *wbuf; /* watch stream, newline-delimited JSON */
	char *pending[PENDING_MAX]; /* container records whose host is not known yet */
	int npending;
};

static void cycle(struct ffr_etcd *e);

static void retry_later(struct ffr_etcd *e, const char *why)
{
	struct timeval tv = {.tv_sec = RETRY_S};

	if (e->up || e->lease[0])
		ff_warn("etcd %s:%u: %s; starting over", e->host, e->port, why);
	e->up = false;
	e->lease[0] = '\0';
	if (e->wconn) {
		evhttp_connection_free(e->wconn);
		e->wconn = NULL;
	}
	evtimer_add(e->timer, &tv);
}

/* POSTs a JSON body; cb gets the parsed answer (NULL on failure). */
typedef void (*etcd_cb)(struct ffr_etcd *e, const struct json_object *j);

struct call {
	struct ffr_etcd *e;
	etcd_cb cb;
};

static void call_done(struct evhttp_request *req, void *arg)
{
	struct call *c = arg;
	struct json_object *j = NULL;

	if (req && evhttp_request_get_response_code(req) == 200) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(in);

		if (len && len < BODY_MAX)
			j = ff_json_parse((const char *)evbuffer_pullup(in, -1), len);
	}
	c->cb(c->e, j);
	json_object_put(j);
	free(c);
}

static struct evhttp_request *request(struct ffr_etcd *e, void (*done)(struct evhttp_request *,
								       void *),
				      void *arg, const char *body)
{
	struct evhttp_request *req = evhttp_request_new(done, arg);

	if (!req)
		return NULL;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", e->host);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	return req;
}

static void post(struct ffr_etcd *e, const char *path, const char *body, etcd_cb cb)
{
	struct call *c = calloc(1, sizeof(*c));
	struct evhttp_request *req;

	if (!c)
		return;
	c->e = e;
	c->cb = cb;
	req = request(e, call_done, c, body);
	if (!req || evhttp_make_request(e->conn, req, EVHTTP_REQ_POST, path) < 0) {
		free(c);
		retry_later(e, "cannot send a request");
	}
}

/* s in base64, as etcd wants keys and values; "" if it does not fit
 * (libsodium aborts on a short buffer). */
static void b64(const char *s, char *out, size_t cap)
{
	size_t len = strlen(s);

	if (sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL) > cap)
		out[0] = '\0';
	else
		sodium_bin2base64(out, cap, (const unsigned char *)s, len,
				  sodium_base64_VARIANT_ORIGINAL);
}

/* Decodes a base64 member into a C string; NULL if absent or malformed. */
static char *b64_member(const struct json_object *kv, const char *key)
{
	const char *v = ff_json_str(kv, key);
	size_t n;
	char *out;

	if (!v)
		return NULL;
	out = malloc(strlen(v) + 1);
	if (!out || sodium_base642bin((unsigned char *)out, strlen(v), v, strlen(v), NULL, &n, NULL,
				      sodium_base64_VARIANT_ORIGINAL) < 0) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	return out;
}

/* ---- applying records ---- */

static bool apply_host(struct ffr_etcd *e, const struct ffr_record *rec)
{
	struct ffr_router *r = e->r;
	struct ffr_host *h = ffr_host_find(r, rec->name);

	if (ffr_is_self(r, rec->name))
		return false;
	if (h && !h->from_store) /* declared by ffctl host add: the operator's word wins */
		return false;
	if (!h && ffr_host_add(r, rec->name, &rec->addr, rec->rdma, &h) < 0)
		return false;
	h->addr = rec->addr;
	h->rdma = rec->rdma;
	h->from_store = true;
	h->stale = false;
	return true;
}

static bool same_ips(const struct ffr_container *c, const struct ffr_record *rec)
{
	if (c->nips != rec->nips || strcmp(c->host, rec->host) || c->policy != rec->policy ||
	    c->tcp_only != rec->tcp_only)
		return false;
	for (int i = 0; i < c->nips; i++)
		if (!ff_ip_equal(&c->ips[i], &rec->ips[i]))
			return false;
	return true;
}

/* 1 applied, 0 ignored, -ENOENT: its host is not known yet. */
static int apply_container(struct ffr_etcd *e, const struct ffr_record *rec)
{
	struct ffr_router *r = e->r;
	struct ffr_container *c = ffr_container_find(r, rec->name);

	if (ffr_is_self(r, rec->host))
		return 0; /* ours: this router's registry is the authority */
	if (!ffr_host_find(r, rec->host))
		return -ENOENT;
	if (c && !c->from_store) {
		ff_warn("etcd: container %s of host %s clashes with one registered here; ignored",
			rec->name, rec->host);
		return 0;
	}
	if (c && same_ips(c, rec)) {
		c->stale = false;
		return 0;
	}
	ffr_container_free(c);
	for (int i = 0; i < rec->nips; i++) {
		struct ffr_container *o = ffr_container_by_ip(r, &rec->ips[i]);

		if (o) {
			ff_warn("etcd: %s@%s claims an address of %s; ignored", rec->name, rec->host,
				o->name);
			return 0;
		}
	}
	if (ffr_container_new(r, rec->name, rec->ips, rec->nips, rec->host, rec->policy, 0, 0,
			      &c) < 0)
		return 0;
	c->from_store = true;
	c->tcp_only = rec->tcp_only;
	return 1;
}

static void retry_pending(struct ffr_etcd *e)
{
	int n = e->npending;

	e->npending = 0;
	for (int i = 0; i < n; i++) {
		struct ffr_record rec;
		char *line = e->pending[i];

		if (ffr_record_parse(line, &rec) == 1 && apply_container(e, &rec) == -ENOENT &&
		    e->npending < PENDING_MAX)
			e->pending[e->npending++] = line;
		else
			free(line);
	}
}

static void apply_value(struct ffr_etcd *e, const char *line)
{
	struct ffr_record rec;

	if (ffr_record_parse(line, &rec) != 1) {
		ff_warn("etcd: unreadable record '%.80s'", line);
		return;
	}
	if (rec.kind == FFR_REC_HOST) {
		if (apply_host(e, &rec))
			retry_pending(e);
	} else if (rec.kind == FFR_REC_CONTAINER && apply_container(e, &rec) == -ENOENT &&
		   e->npending < PENDING_MAX) {
		e->pending[e->npending++] = strdup(line);
	}
}

static void remove_key(struct ffr_etcd *e, const char *key)
{
	struct ffr_router *r = e->r;
	const char *name;

	if (!strncmp(key, PREFIX "container/", strlen(PREFIX "container/"))) {
		struct ffr_container *c;

		name = key + strlen(PREFIX "container/");
		c = ffr_container_find(r, name);
		if (c && c->from_store)
			ffr_container_free(c);
	} else if (!strncmp(key, PREFIX "host/", strlen(PREFIX "host/"))) {
		struct ffr_host *h;
		struct ffr_container *c, *next;

		name = key + strlen(PREFIX "host/");
		h = ffr_host_find(r, name);
		if (!h || !h->from_store)
			return;
		for (c = TAILQ_FIRST(&r->containers); c; c = next) {
			next = TAILQ_NEXT(c, link);
			if (c->from_store && !strcmp(c->host, name))
				ffr_container_free(c);
		}
		ffr_host_free(r, h);
	}
}

/* ---- the watch stream ---- */

static void watch_events(struct ffr_etcd *e, const struct json_object *j)
{
	struct json_object *ev = ff_json_arr(ff_json_obj(j, "result"), "events");

	for (size_t i = 0; ev && i < json_object_array_length(ev); i++) {
		struct json_object *x = json_object_array_get_idx(ev, i);
		struct json_object *kv = ff_json_obj(x, "kv");
		const char *type = ff_json_str(x, "type");
		char *key = b64_member(kv, "key"), *val = b64_member(kv, "value");

		if (key && type && !strcmp(type, "DELETE"))
			remove_key(e, key);
		else if (key && val)
			apply_value(e, val);
		free(key);
		free(val);
	}
	if (ev)
		ffr_map_publish(e->r);
}

static void watch_chunk(struct evhttp_request *req, void *arg)
{
	struct ffr_etcd *e = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	char *line;
	size_t len;

	evbuffer_add_buffer(e->wbuf, in);
	while ((line = evbuffer_readln(e->wbuf, &len, EVBUFFER_EOL_LF))) {
		struct json_object *j = len ? ff_json_parse(line, len) : NULL;

		if (j)
			watch_events(e, j);
		json_object_put(j);
		free(line);
	}
	if (evbuffer_get_length(e->wbuf) > BODY_MAX)
		retry_later(e, "watch stream too large");
}

static void watch_done(struct evhttp_request *req, void *arg)
{
	retry_later(arg, "the watch stream ended");
}

static void watch(struct ffr_etcd *e, const char *rev)
{
	char key[64], end[64], body[512];
	struct evhttp_request *req;
	long long start = rev ? atoll(rev) + 1 : 0;

	b64(PREFIX, key, sizeof(key));
	b64("/ffnet/v10", end, sizeof(end)); /* the prefix's range end: last byte + 1 */
	snprintf(body, sizeof(body),
		 "{\"create_request\": {\"key\": \"%s\", \"range_end\": \"%s\", "
		 "\"start_revision\": \"%lld\", \"progress_notify\": true}}",
		 key, end, start);
	e->wconn = evhttp_connection_base_new(e->r->base, NULL, e->host, e->port);
	if (!e->wconn) {
		retry_later(e, "cannot open the watch connection");
		return;
	}
	evhttp_connection_set_timeout(e->wconn, 3600);
	req = request(e, watch_done, e, body);
	if (!req) {
		retry_later(e, "out of memory");
		return;
	}
	evhttp_request_set_chunked_cb(req, watch_chunk);
	if (evhttp_make_request(e->wconn, req, EVHTTP_REQ_POST, "/v3/watch") < 0)
		retry_later(e, "cannot start the watch");
}

/* ---- the initial sync ---- */

static void mark_stale(struct ffr_router *r)
{
	struct ffr_container *c;
	struct ffr_host *h;

	TAILQ_FOREACH (c, &r->containers, link)
		c->stale = c->from_store;
	TAILQ_FOREACH (h, &ffr_xh(r)->hosts, link)
		h->stale = h->from_store;
}

static void drop_stale(struct ffr_router *r)
{
	struct ffr_container *c, *cn;
	struct ffr_host *h, *hn;

	for (c = TAILQ_FIRST(&r->containers); c; c = cn) {
		cn = TAILQ_NEXT(c, link);
		if (c->stale)
			ffr_container_free(c);
	}
	for (h = TAILQ_FIRST(&ffr_xh(r)->hosts); h; h = hn) {
		hn = TAILQ_NEXT(h, link);
		if (h->stale)
			ffr_host_free(r, h);
	}
}

static void range_done(struct ffr_etcd *e, const struct json_object *j)
{
	struct json_object *kvs = ff_json_arr(j, "kvs");

	if (!j) {
		retry_later(e, "cannot read the map");
		return;
	}
	mark_stale(e->r);
	/* hosts first, then what lives on them */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; kvs && i < json_object_array_length(kvs); i++) {
			struct json_object *kv = json_object_array_get_idx(kvs, i);
			char *key = b64_member(kv, "key"), *val = b64_member(kv, "value");
			bool host = key && !strncmp(key, PREFIX "host/", strlen(PREFIX "host/"));

			if (val && host == (pass == 0))
				apply_value(e, val);
			free(key);
			free(val);
		}
	}
	drop_stale(e->r);
	ffr_map_publish(e->r);
	e->up = true;
	ff_info("etcd %s:%u: in sync (lease %s)", e->host, e->port, e->lease);
	watch(e, ff_json_str(ff_json_obj(j, "header"), "revision"));
}

static void put_done(struct ffr_etcd *e, const struct json_object *j)
{
	if (!j)
		retry_later(e, "a put failed");
}

static void put(struct ffr_etcd *e, const char *key, const char *value)
{
	char k[512], v[2048], body[3072];

	b64(key, k, sizeof(k));
	b64(value, v, sizeof(v));
	snprintf(body, sizeof(body), "{\"key\": \"%s\", \"value\": \"%s\", \"lease\": \"%s\"}", k, v,
		 e->lease);
	post(e, "/v3/kv/put", body, put_done);
}

void ffr_etcd_put_container(struct ffr_router *r, const struct ffr_container *c)
{
	char key[128], line[1024];

	if (!ffr_xh(r)->etcd || !ffr_xh(r)->etcd->lease[0] || c->remote ||
	    ffr_record_format(r, c, line, sizeof(line)) < 0)
		return;
	snprintf(key, sizeof(key), PREFIX "container/%s", c->name);
	put(ffr_xh(r)->etcd, key, line);
}

void ffr_etcd_delete_container(struct ffr_router *r, const char *name)
{
	char key[128], k[256], body[512];

	if (!ffr_xh(r)->etcd || !ffr_xh(r)->etcd->up)
		return;
	snprintf(key, sizeof(key), PREFIX "container/%s", name);
	b64(key, k, sizeof(k));
	snprintf(body, sizeof(body), "{\"key\": \"%s\"}", k);
	post(ffr_xh(r)->etcd, "/v3/kv/deleterange", body, put_done);
}

/* Our records under the new lease, then the whole map. */
static void publish_ours(struct ffr_etcd *e)
{
	struct ffr_router *r = e->r;
	struct ffr_container *c;
	char key[128], line[256], k[64], end[64], body[256];

	snprintf(key, sizeof(key), PREFIX "host/%s", r->host_id);
	snprintf(line, sizeof(line), "host %s addr=%s", r->host_id, e->advertise);
	put(e, key, line);
	TAILQ_FOREACH (c, &r->containers, link)
		ffr_etcd_put_container(r, c);
	b64(PREFIX, k, sizeof(k));
	b64("/ffnet/v10", end, sizeof(end));
	snprintf(body, sizeof(body), "{\"key\": \"%s\", \"range_end\": \"%s\"}", k, end);
	post(e, "/v3/kv/range", body, range_done);
}

static void grant_done(struct ffr_etcd *e, const struct json_object *j)
{
	const char *id = ff_json_str(j, "ID");

	if (!id || strlen(id) >= sizeof(e->lease)) {
		retry_later(e, "cannot get a lease");
		return;
	}
	strcpy(e->lease, id);
	publish_ours(e);
}

static void keepalive_done(struct ffr_etcd *e, const struct json_object *j)
{
	const char *ttl = ff_json_str(ff_json_obj(j, "result"), "TTL");

	/* an expired lease comes back without a TTL: our records are gone */
	if (!ttl || atoi(ttl) <= 0)
		retry_later(e, "the lease expired");
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ffr_etcd *e = arg;
	struct timeval tv = {.tv_sec = KEEPALIVE_S};
	char body[64];

	if (!e->lease[0]) {
		cycle(e);
		return;
	}
	snprintf(body, sizeof(body), "{\"ID\": \"%s\"}", e->lease);
	post(e, "/v3/lease/keepalive", body, keepalive_done);
	evtimer_add(e->timer, &tv);
}

static void cycle(struct ffr_etcd *e)
{
	struct timeval tv = {.tv_sec = KEEPALIVE_S};
	char body[64];

	snprintf(body, sizeof(body), "{\"TTL\": %d}", LEASE_TTL);
	post(e, "/v3/lease/grant", body, grant_done);
	evtimer_add(e->timer, &tv);
}

int ffr_etcd_open(struct ffr_router *r, const char *url, const char *advertise)
{
	struct ffr_etcd *e;
	struct ff_sa a;
	unsigned port;
	char host[256];

	if (sscanf(url, "etcd://%255[^:]:%u", host, &port) != 2 || !port || port > 65535) {
		ff_err("--store: want etcd://HOST:PORT, not '%s'", url);
		return -EINVAL;
	}
	if (!advertise || ff_sa_parse(advertise, &a, 0) < 0 || ff_ip_is_any(&a.ip)) {
		ff_err("--store etcd needs the address other routers reach this one at: "
		       "--ingress IP:PORT with a real IP, or --advertise IP:PORT");
		return -EINVAL;
	}
	if (sodium_init() < 0) /* for the base64 of keys and values */
		return -EIO;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->r = r;
	snprintf(e->host, sizeof(e->host), "%s", host);
	e->port = (uint16_t)port;
	ff_sa_fmt(&a, e->advertise, sizeof(e->advertise));
	e->conn = evhttp_connection_base_new(r->base, NULL, e->host, e->port);
	e->wbuf = evbuffer_new();
	e->timer = evtimer_new(r->base, timer_cb, e);
	ffr_xh(r)->etcd = e;
	if (!e->conn || !e->wbuf || !e->timer)
		return -ENOMEM;
	evhttp_connection_set_timeout(e->conn, 5);
	evhttp_connection_set_retries(e->conn, 0);
	cycle(e);
	return 0;
}

void ffr_etcd_close(struct ffr_router *r)
{
	struct ffr_etcd *e = ffr_xh(r)->etcd;

	if (!e)
		return;
	if (e->wconn)
		evhttp_connection_free(e->wconn);
	if (e->conn)
		evhttp_connection_free(e->conn);
	if (e->timer)
		event_free(e->timer);
	if (e->wbuf)
		evbuffer_free(e->wbuf);
	for (int i = 0; i < e->npending; i++)
		free(e->pending[i]);
	free(e);
	ffr_xh(r)->etcd = NULL;
}
