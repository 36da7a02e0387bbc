/* ffrouter/xhost/store-etcd.c against a fake etcd: an evhttp server in the test's
 * own loop that answers as etcd 3.4's JSON gateway does (the shapes were
 * captured from a real one). A router with one local container must put
 * its host and container records, base64-encoded, under the lease it was
 * granted; read the map (hosts before their containers, its own records
 * and undecodable ones ignored); follow the watch stream (a garbage line
 * skipped, a PUT, a DELETE, a container waiting for its host); keep the
 * lease alive; and when a keepalive says the lease is gone, start over:
 * new lease, records put again, a full resync that drops what vanished. */
#include "cu.h"

#include "json-read.h"
#include "xhost.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HEADER(rev)                                                                                \
	"\"header\":{\"cluster_id\":\"15875391935852295136\",\"member_id\":"                       \
	"\"7383792418829112008\",\"revision\":\"" rev "\",\"raft_term\":\"2\"}"
#define LEASE1 "1353510092082904325"
#define LEASE2 "7587862094236829189"

struct put {
	char key[128], value[256], lease[32];
};

static struct fake {
	struct evhttp *http;
	uint16_t port;
	int grants, keepalives, ranges, watches;
	int keepalives_at_regrant;
	struct put puts[16];
	int nputs;
	char start_revision[32]; /* of the first watch */
	struct evhttp_request *watch; /* the open stream, if any */
} f;

static struct event_base *base;
static struct ffr_router *r;

/* ---- the fake gateway ---- */

static void reply(struct evhttp_request *req, const char *json)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add_printf(b, "%s", json);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* base64 of s into out (cap bytes). */
static const char *b64(const char *s, char *out, size_t cap)
{
	return sodium_bin2base64(out, cap, (const unsigned char *)s, strlen(s),
				 sodium_base64_VARIANT_ORIGINAL);
}

/* A kvs/kv member as the gateway writes one, the value given as base64. */
static void kv_raw(char *buf, size_t cap, const char *key, const char *value_b64, const char *rev)
{
	char k[256];

	snprintf(buf, cap,
		 "{\"key\":\"%s\",\"create_revision\":\"%s\",\"mod_revision\":\"%s\","
		 "\"version\":\"1\",\"value\":\"%s\",\"lease\":\"" LEASE1 "\"}",
		 b64(key, k, sizeof(k)), rev, rev, value_b64);
}

static void kv(char *buf, size_t cap, const char *key, const char *value, const char *rev)
{
	char v[512];

	kv_raw(buf, cap, key, b64(value, v, sizeof(v)), rev);
}

/* Decodes member key of o (base64) into out. */
static void unb64(const struct json_object *o, const char *key, char *out, size_t cap)
{
	const char *s = ff_json_str(o, key);
	size_t n = 0;

	if (!s || sodium_base642bin((unsigned char *)out, cap - 1, s, strlen(s), NULL, &n, NULL,
				    sodium_base64_VARIANT_ORIGINAL) < 0)
		n = 0;
	out[n] = '\0';
}

static struct json_object *body(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);

	return ff_json_parse((const char *)evbuffer_pullup(in, -1), len);
}

static void on_put(struct evhttp_request *req, struct json_object *j)
{
	struct put *p = &f.puts[f.nputs < 16 ? f.nputs++ : 15];
	const char *lease = ff_json_str(j, "lease");

	unb64(j, "key", p->key, sizeof(p->key));
	unb64(j, "value", p->value, sizeof(p->value));
	snprintf(p->lease, sizeof(p->lease), "%s", lease ? lease : "");
	reply(req, "{" HEADER("2") "}");
}

/* The first read: containers sort before hosts, as etcd sorts keys. */
static void on_range_1(struct evhttp_request *req)
{
	char a[512], b[512], c[512], d[512], e[512], out[4096];

	kv(a, sizeof(a), "/ffnet/v1/container/b1", "container b1 ips=10.78.0.2 host=B", "3");
	kv(b, sizeof(b), "/ffnet/v1/container/c9", "container c9 ips=10.78.0.9 host=Z", "3");
	kv_raw(c, sizeof(c), "/ffnet/v1/container/x", "Zm9", "3"); /* not base64 */
	kv(d, sizeof(d), "/ffnet/v1/host/A", "host A addr=10.0.0.1:7000", "2");
	kv(e, sizeof(e), "/ffnet/v1/host/B", "host B addr=10.0.0.2:7000", "2");
	snprintf(out, sizeof(out), "{" HEADER("3") ",\"kvs\":[%s,%s,%s,%s,%s],\"count\":\"5\"}", a,
		 b, c, d, e);
	reply(req, out);
}

/* After the lease was lost: b2, c9 and Z are gone, b3 came. */
static void on_range_2(struct evhttp_request *req)
{
	char a[512], b[512], out[2048];

	kv(a, sizeof(a), "/ffnet/v1/container/b3", "container b3 ips=10.78.0.4 host=B", "9");
	kv(b, sizeof(b), "/ffnet/v1/host/B", "host B addr=10.0.0.2:7000", "2");
	snprintf(out, sizeof(out), "{" HEADER("9") ",\"kvs\":[%s,%s],\"count\":\"2\"}", a, b);
	reply(req, out);
}

/* The router hung up on the stream: libevent leaves the request to us
 * (detached from its connection), and ending it frees it. */
static void watch_closed(struct evhttp_connection *conn, void *arg)
{
	if (f.watch)
		evhttp_send_reply_end(f.watch);
	f.watch = NULL;
}

static void chunk(const char *line)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add_printf(b, "%s\n", line);
	evhttp_send_reply_chunk(f.watch, b);
	evbuffer_free(b);
}

static void on_watch(struct evhttp_request *req, struct json_object *j)
{
	const char *rev = ff_json_str(ff_json_obj(j, "create_request"), "start_revision");
	char a[512], b[512], c[512], line[2048], key[64];

	if (++f.watches == 1)
		snprintf(f.start_revision, sizeof(f.start_revision), "%s", rev ? rev : "");
	f.watch = req;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), watch_closed, NULL);
	evhttp_send_reply_start(req, 200, "OK");
	chunk("{\"result\":{" HEADER("3") ",\"created\":true}}");
	if (f.watches > 1)
		return;
	chunk("{\"result\":{" HEADER("4") ",\"events\":[{\"kv\":"); /* cut short: skipped */
	kv(a, sizeof(a), "/ffnet/v1/container/b2", "container b2 ips=10.78.0.3 host=B", "4");
	snprintf(line, sizeof(line),
		 "{\"result\":{" HEADER("5") ",\"events\":[{\"kv\":%s},{\"type\":\"DELETE\","
		 "\"kv\":{\"key\":\"%s\",\"mod_revision\":\"5\"}}]}}",
		 a, b64("/ffnet/v1/container/b1", key, sizeof(key)));
	chunk(line);
	kv(b, sizeof(b), "/ffnet/v1/host/Z", "host Z addr=10.0.0.9:7000", "6");
	kv(c, sizeof(c), "/ffnet/v1/container/b1", "not a record", "7");
	snprintf(line, sizeof(line),
		 "{\"result\":{" HEADER("7") ",\"events\":[{\"kv\":%s},{\"kv\":%s}]}}", b, c);
	chunk(line);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct json_object *j = body(req);

	if (!j)
		evhttp_send_error(req, 400, "not JSON");
	else if (!strcmp(uri, "/v3/lease/grant") && ++f.grants == 1)
		reply(req, "{" HEADER("1") ",\"ID\":\"" LEASE1 "\",\"TTL\":\"10\"}");
	else if (!strcmp(uri, "/v3/lease/grant"))
		reply(req, "{" HEADER("8") ",\"ID\":\"" LEASE2 "\",\"TTL\":\"10\"}");
	else if (!strcmp(uri, "/v3/kv/put"))
		on_put(req, j);
	else if (!strcmp(uri, "/v3/kv/range") && ++f.ranges == 1)
		on_range_1(req);
	else if (!strcmp(uri, "/v3/kv/range"))
		on_range_2(req);
	else if (!strcmp(uri, "/v3/watch"))
		on_watch(req, j);
	else if (!strcmp(uri, "/v3/lease/keepalive") && ++f.keepalives == 1)
		reply(req, "{\"result\":{" HEADER("7") ",\"ID\":\"" LEASE1 "\",\"TTL\":\"10\"}}");
	else if (!strcmp(uri, "/v3/lease/keepalive")) /* revoked meanwhile: no TTL */
		reply(req, "{\"result\":{" HEADER("8") ",\"ID\":\"" LEASE1 "\"}}");
	else
		evhttp_send_error(req, 404, "not here");
	if (f.grants == 2 && !f.keepalives_at_regrant)
		f.keepalives_at_regrant = f.keepalives;
	json_object_put(j);
}

static int fake_start(void)
{
	struct evhttp_bound_socket *s;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	f.http = evhttp_new(base);
	s = f.http ? evhttp_bind_socket_with_handle(f.http, "127.0.0.1", 0) : NULL;
	if (!s || getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len) < 0)
		return -1;
	f.port = ntohs(sin.sin_port);
	evhttp_set_gencb(f.http, on_request, NULL);
	return 0;
}

/* ---- the router ---- */

static char dir[64];

static int router_start(void)
{
	char path[128], store[64];
	struct ffr_config cfg = {
		.rundir = dir,
		.quota = {.channels = 8, .listeners = 8, .conns = 8, .pending = 8},
		.host_id = "A",
	};
	struct ffr_xhost_config xc = {.store = store, .advertise = "10.0.0.1:7000"};
	FILE *st;
	int err;

	snprintf(dir, sizeof(dir), "/tmp/fftest.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/state", dir);
	st = fopen(path, "w");
	if (!st)
		return -1;
	fprintf(st, "container a1 ips=10.78.0.1\n");
	fclose(st);
	snprintf(store, sizeof(store), "etcd://127.0.0.1:%u", f.port);
	r = ffr_router_new(base, &cfg, &err);
	if (!r)
		return err;
	return ffr_xhost_attach(r, &xc);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the loop until done() or secs have passed; false on timeout. */
static bool run_until(bool (*done)(void), int secs)
{
	time_t end = time(NULL) + secs;

	while (!done()) {
		if (time(NULL) > end)
			return false;
		event_base_loop(base, EVLOOP_ONCE);
	}
	return true;
}

static bool has(const char *name)
{
	return ffr_container_find(r, name) != NULL;
}

static bool synced(void)
{
	return has("b2") && !has("b1") && has("c9");
}

static bool resynced(void)
{
	return f.watches == 2 && has("b3");
}

static const struct put *put_of(const char *key, int from)
{
	for (int i = from; i < f.nputs; i++)
		if (!strcmp(f.puts[i].key, key))
			return &f.puts[i];
	return NULL;
}

static void test_etcd(void)
{
	struct timeval tv = {.tv_usec = 50000};
	struct event *t;
	const struct put *p;
	struct ffr_host *h;
	char a[FF_ADDRSTRLEN];
	int first;

	base = event_base_new();
	t = event_new(base, -1, EV_PERSIST, tick, NULL);
	event_add(t, &tv);
	CU_ASSERT_EQUAL_FATAL(fake_start(), 0);
	CU_ASSERT_EQUAL_FATAL(router_start(), 0);

	/* lease, our records, the map, the watch stream */
	CU_ASSERT_FATAL(run_until(synced, 10));
	CU_ASSERT_EQUAL(f.grants, 1);
	p = put_of("/ffnet/v1/host/A", 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_STRING_EQUAL(p->value, "host A addr=10.0.0.1:7000");
	CU_ASSERT_STRING_EQUAL(p->lease, LEASE1);
	p = put_of("/ffnet/v1/container/a1", 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_STRING_EQUAL(p->value, "container a1 ips=10.78.0.1 host=A");
	CU_ASSERT_STRING_EQUAL(p->lease, LEASE1);
	CU_ASSERT_STRING_EQUAL(f.start_revision, "4"); /* the range's revision + 1 */
	h = ffr_host_find(r, "B");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT(h->from_store);
	CU_ASSERT_STRING_EQUAL(ff_sa_fmt(&h->addr, a, sizeof(a)), "10.0.0.2:7000");
	CU_ASSERT_PTR_NULL(ffr_host_find(r, "A")); /* ourselves */
	CU_ASSERT(ffr_container_find(r, "b2")->remote);
	CU_ASSERT_STRING_EQUAL(ffr_container_find(r, "c9")->host, "Z"); /* once Z came */
	CU_ASSERT(!has("x"));
	CU_ASSERT(has("a1") && !ffr_container_find(r, "a1")->remote);

	/* a live keepalive, then one that finds the lease gone: start over */
	first = f.nputs;
	CU_ASSERT_FATAL(run_until(resynced, 15));
	CU_ASSERT_EQUAL(f.keepalives_at_regrant, 2);
	p = put_of("/ffnet/v1/container/a1", first);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_STRING_EQUAL(p->lease, LEASE2);
	CU_ASSERT(!has("b2") && !has("c9"));
	CU_ASSERT_PTR_NULL(ffr_host_find(r, "Z"));
	CU_ASSERT_PTR_NOT_NULL(ffr_host_find(r, "B"));

	if (f.watch)
		evhttp_send_reply_end(f.watch);
	f.watch = NULL;
	ffr_router_free(r);
	evhttp_free(f.http);
	event_free(t);
	event_base_free(base);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"etcd", test_etcd},
		{0},
	};

	return cu_run("etcd", tests);
}
