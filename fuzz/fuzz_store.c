/* libFuzzer target: the parsers of what the cluster store hands the
 * router: the state file (xhost/store-file.c: ffr_state_load and its
 * record lines, the format the etcd store shares), and the etcd JSON
 * gateway's answers as hostlib/json-read.c reads them, walked the way
 * store-etcd.c walks a range, a watch event, a lease grant and a
 * keepalive, each base64 value decoded and parsed as a record.
 * Records (harness.h), by aux % 3:
 *   0: the bytes become the state file, which the router loads; what it
 *      registered is then unregistered (fh_restore);
 *   1: each line is parsed as a record (ffr_record_parse);
 *   2: the bytes are one JSON document.
 * The state file is root's, so it may name a and b: b's state is not an
 * oracle here; fds and liveness are. Not covered: store-etcd.c's HTTP
 * flow itself (it needs a fake etcd in the loop: tests/unit/xhost). */
#include "harness.h"

#include "json-read.h"
#include "vt.h"
#include "xhost/internal.h"

#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void state_load(const struct fh_rec *r)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/state", vt_r->rundir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, r->p, r->len) != (ssize_t)r->len)
		abort();
	close(fd);
	ffr_state_load(vt_r);
	unlink(path);
}

static void lines(const struct fh_rec *r)
{
	char *s = strndup((const char *)r->p, r->len), *save = NULL;
	struct ffr_record rec;

	if (!s)
		abort();
	for (char *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		ffr_record_parse(l, &rec);
	free(s);
}

/* A base64 member as store-etcd.c decodes it, parsed as a record. */
static void b64_record(const struct json_object *kv, const char *key)
{
	const char *v = ff_json_str(kv, key);
	struct ffr_record rec;
	size_t n;
	char *out;

	if (!v)
		return;
	out = malloc(strlen(v) + 1);
	if (out && sodium_base642bin((unsigned char *)out, strlen(v), v, strlen(v), NULL, &n, NULL,
				     sodium_base64_VARIANT_ORIGINAL) == 0) {
		out[n] = '\0';
		ffr_record_parse(out, &rec);
	}
	free(out);
}

static void kvs(const struct json_object *arr)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *kv = json_object_array_get_idx(arr, i);

		b64_record(kv, "key");
		b64_record(kv, "value");
		ff_json_str(kv, "lease");
		ff_json_str(kv, "mod_revision");
	}
}

static void json(const struct fh_rec *r)
{
	struct json_object *j = ff_json_parse((const char *)r->p, r->len), *res, *evs;

	if (!j)
		return;
	ff_json_str(ff_json_obj(j, "header"), "revision");
	kvs(ff_json_arr(j, "kvs"));
	ff_json_str(j, "ID");
	ff_json_str(j, "TTL");
	ff_json_str(j, "error");
	res = ff_json_obj(j, "result");
	ff_json_str(res, "TTL");
	ff_json_str(ff_json_obj(res, "header"), "revision");
	evs = ff_json_arr(res, "events");
	for (size_t i = 0; evs && i < json_object_array_length(evs); i++) {
		struct json_object *e = json_object_array_get_idx(evs, i), *kv = ff_json_obj(e, "kv");

		ff_json_str(e, "type");
		b64_record(kv, "key");
		b64_record(kv, "value");
	}
	json_object_put(j);
}

static void seeds(const char *dir)
{
	static const char state[] =
	    "# ffrouter state (host A): hosts, containers, published ports\n"
	    "host h2 addr=192.0.2.7:7000 rdma\n"
	    "container c ips=10.1.0.9,fd00::9 host=h2 policy=host\n"
	    "container d ips=10.1.0.10 host=A netns=3:4026531840\n"
	    "publish d port=8080 host_port=18080\n";
	static const char range[] =
	    "{\"header\":{\"revision\":\"7\"},\"kvs\":[{\"key\":\"L2ZmbmV0L2MvYw==\","
	    "\"value\":\"Y29udGFpbmVyIGMgaXBzPTEwLjEuMC45IGhvc3Q9aDI=\",\"lease\":\"1353\","
	    "\"mod_revision\":\"5\"}],\"count\":\"1\"}";
	static const char watch[] =
	    "{\"result\":{\"header\":{\"revision\":\"8\"},\"events\":[{\"type\":\"DELETE\","
	    "\"kv\":{\"key\":\"L2ZmbmV0L2MvYw==\"}},{\"kv\":{\"key\":\"L2ZmbmV0L2gvaDI=\","
	    "\"value\":\"aG9zdCBoMiBhZGRyPTE5Mi4wLjIuNzo3MDAw\"}}]}}";
	static const char grant[] = "{\"ID\":\"1353510092082904325\",\"TTL\":\"10\"}";

	fh_seed_begin(dir, "state", -1);
	fh_seed_rec(state, sizeof(state) - 1, 0);
	fh_seed_end();
	fh_seed_begin(dir, "lines", -1);
	fh_seed_rec(state, sizeof(state) - 1, 1);
	fh_seed_end();
	fh_seed_begin(dir, "etcd", -1);
	fh_seed_rec(range, sizeof(range) - 1, 2);
	fh_seed_rec(watch, sizeof(watch) - 1, 2);
	fh_seed_rec(grant, sizeof(grant) - 1, 2);
	fh_seed_end();
}

static void init(void)
{
	if (sodium_init() < 0)
		abort();
}

const struct fh_target fh_target = {.seeds = seeds, .init = init, .keep_b = false};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh_in in = {data, size};
	struct fh_rec r;
	bool loaded = false;

	fh_begin();
	while (fh_next(&in, &r)) {
		switch (r.aux % 3) {
		case 0:
			state_load(&r);
			loaded = true;
			break;
		case 1:
			lines(&r);
			break;
		default:
			json(&r);
		}
	}
	if (!loaded || fh_restore())
		fh_end();
	return 0;
}
