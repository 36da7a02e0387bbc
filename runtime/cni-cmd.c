/* The CNI plugin's commands (cni.c says what each does). Every router
 * exchange goes through hostlib/admin.c; every failure ends in one CNI
 * error (ffn_error). */
#include "cni.h"

#include "json-read.h"
#include "msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether prevResult's ip entry is on the container's side: its
 * "interface" names an interface with a "sandbox" (no index: assume so). */
static bool in_sandbox(struct json_object *prev, struct json_object *ip)
{
	struct json_object *idx, *ifs = ff_json_arr(prev, "interfaces"), *itf;
	const char *sb;
	int64_t i;

	if (!json_object_object_get_ex(ip, "interface", &idx))
		return true;
	if (!json_object_is_type(idx, json_type_int) || !ifs)
		return false;
	i = json_object_get_int64(idx);
	if (i < 0 || (size_t)i >= json_object_array_length(ifs))
		return false;
	itf = json_object_array_get_idx(ifs, (size_t)i);
	sb = json_object_is_type(itf, json_type_object) ? ff_json_str(itf, "sandbox") : NULL;
	return sb && *sb;
}

/* The container's addresses in prevResult ("ips": [{"address": "IP/LEN"}]). */
static int prev_ips(struct ffn_cni *c, struct ffn_ips *out)
{
	struct json_object *prev = ff_json_obj(c->conf, "prevResult");
	struct json_object *arr = ff_json_arr(prev, "ips");
	size_t n = arr ? json_object_array_length(arr) : 0;

	if (!prev)
		return ffn_error(c, FFN_E_CONFIG,
				 "no prevResult: ffnet is a chained plugin and goes after the plugin that "
				 "makes the interface (bridge, ptp, ...)");
	out->n = 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *ip = json_object_array_get_idx(arr, i);
		const char *a = json_object_is_type(ip, json_type_object) ? ff_json_str(ip, "address")
									 : NULL;
		size_t len = a ? strcspn(a, "/") : 0;

		if (!a || !len || len >= sizeof(out->v[0]))
			return ffn_error(c, FFN_E_CONFIG, "prevResult: ips[%zu] has no valid address", i);
		if (!in_sandbox(prev, ip))
			continue;
		if (out->n == FFN_MAX_IPS)
			return ffn_error(c, FFN_E_CONFIG, "prevResult: more than %d container addresses",
					 FFN_MAX_IPS);
		snprintf(out->v[out->n++], sizeof(out->v[0]), "%.*s", (int)len, a);
	}
	if (!out->n)
		return ffn_error(c, FFN_E_CONFIG, "prevResult has no address in the container");
	return 0;
}

static int open_router(struct ffn_cni *c, struct ff_admin *a, int code)
{
	return ff_admin_open(a, c->rundir) < 0 ? ffn_error(c, code, "%s", a->err) : 0;
}

/* An ADD the runtime retried: ours already, same attachment, namespace
 * and addresses. */
static bool done_before(struct ffn_cni *c, struct ff_admin *a, const struct ffn_ips *ips)
{
	struct ffn_mark m;
	const Ff__Container *k;
	Ff__Reply **reps;
	size_t n;
	bool same;

	if (ffn_mark_read(c->marks, c->name, &m) || strcmp(m.ifname, c->ifname) ||
	    strcmp(m.netns, c->netns) || ffn_mark_stale(&m) || ffn_list(a, &reps, &n))
		return false;
	k = ffn_find(reps, n, c->name);
	same = k && ffn_same_ips(k, ips);
	ff_admin_replies_free(reps, n);
	return same;
}

static int do_register(struct ffn_cni *c, struct ff_admin *a, struct ffn_ips *ips)
{
	int st = ffn_register(a, c->marks, c->name, ips, c->netns, "ffnet-cni");

	if (st == FF__STATUS__ST_EXISTS && done_before(c, a, ips))
		return 0;
	if (st < 0)
		return ffn_error(c, FFN_E_AGAIN, "%s", a->err);
	if (st)
		return ffn_error(c, FFN_E_REFUSED, "the router refused to register %s: %s", c->name,
				 a->err);
	st = ffn_mark_write(c->marks, c->name, c->ifname, c->netns);
	if (st < 0) {
		ffn_unregister(a, c->name);
		return ffn_error(c, FFN_E_IO, "cannot record the registration in %s: %s",
				 c->marks, strerror(-st));
	}
	return 0;
}

int ffn_cmd_add(struct ffn_cni *c)
{
	struct json_object *prev = ff_json_obj(c->conf, "prevResult");
	struct ff_admin a;
	struct ffn_ips ips;
	int rc;

	if (!c->netns || !*c->netns)
		return ffn_error(c, FFN_E_ENV, "CNI_NETNS must be set");
	rc = prev_ips(c, &ips);
	if (!rc)
		rc = open_router(c, &a, FFN_E_AGAIN);
	if (rc)
		return rc;
	rc = do_register(c, &a, &ips);
	ff_admin_close(&a);
	if (!rc) {
		json_object_get(prev);
		json_object_object_add(prev, "cniVersion", json_object_new_string(c->version));
		ffn_print(prev);
		fprintf(stderr, "ffnet-cni: registered %s (%s) with %s\n", c->name, c->netns,
			ips.v[0]);
	}
	return rc;
}

int ffn_cmd_del(struct ffn_cni *c)
{
	struct ffn_mark m;
	struct ff_admin a;
	int st;

	if (ffn_mark_read(c->marks, c->name, &m) || strcmp(m.ifname, c->ifname))
		return 0; /* not ours, or already gone */
	if (ff_admin_open(&a, c->rundir) < 0) {
		fprintf(stderr, "ffnet-cni: DEL %s: %s; left for GC or the next ADD\n", c->cid, a.err);
		return 0;
	}
	st = ffn_unregister(&a, c->name);
	ff_admin_close(&a);
	if (st < 0)
		fprintf(stderr, "ffnet-cni: DEL %s: %s; left for GC or the next ADD\n", c->cid, a.err);
	else if (st && st != FF__STATUS__ST_NOT_FOUND)
		return ffn_error(c, FFN_E_IO, "cannot unregister %s: %s", c->name, a.err);
	else
		ffn_mark_remove(c->marks, c->name);
	return 0;
}

int ffn_cmd_check(struct ffn_cni *c)
{
	const Ff__Container *k;
	struct ff_admin a;
	struct ffn_mark m;
	Ff__Reply **reps;
	struct ffn_ips ips;
	size_t n;
	int rc = prev_ips(c, &ips);

	if (!rc)
		rc = open_router(c, &a, FFN_E_AGAIN);
	if (rc)
		return rc;
	if (ffn_list(&a, &reps, &n)) {
		rc = ffn_error(c, FFN_E_AGAIN, "%s", a.err);
		goto out_close;
	}
	k = ffn_find(reps, n, c->name);
	if (!k)
		rc = ffn_error(c, FFN_E_UNREGISTERED, "%s is not registered with the router", c->name);
	else if (!ffn_same_ips(k, &ips))
		rc = ffn_error(c, FFN_E_DIFFERS, "%s is registered with other addresses", c->name);
	else if (ffn_mark_read(c->marks, c->name, &m) || strcmp(m.ifname, c->ifname))
		rc = ffn_error(c, FFN_E_DIFFERS, "%s was not registered by ffnet for %s", c->name,
			       c->ifname);
	else if (ffn_mark_stale(&m) || (c->netns && *c->netns && strcmp(m.netns, c->netns)))
		rc = ffn_error(c, FFN_E_DIFFERS, "%s was registered for another namespace (%s)",
			       c->name, m.netns);
	ff_admin_replies_free(reps, n);
out_close:
	ff_admin_close(&a);
	return rc;
}

int ffn_cmd_status(struct ffn_cni *c)
{
	struct ff_admin a;
	int rc = open_router(c, &a, FFN_E_UNAVAILABLE);

	if (!rc)
		ff_admin_close(&a);
	return rc;
}

struct gc {
	struct ffn_cni *c;
	struct ff_admin a;
	struct json_object *valid;
	int failed;
};

static bool attached(struct gc *g, const char *name, const char *ifname)
{
	size_t n = json_object_array_length(g->valid);

	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(g->valid, i);
		const char *id = ff_json_str(v, "containerID"), *itf = ff_json_str(v, "ifname");
		char vname[FFN_NAME_MAX + 1];

		if (id && itf && !strcmp(itf, ifname) &&
		    !ffn_name_of(id, vname, sizeof(vname)) && !strcmp(vname, name))
			return true;
	}
	return false;
}

static int gc_one(const char *name, void *arg)
{
	struct gc *g = arg;
	struct ffn_mark m;
	int st;

	if (ffn_mark_read(g->c->marks, name, &m) || attached(g, name, m.ifname))
		return 0;
	st = ffn_unregister(&g->a, name);
	if (st == 0 || st == FF__STATUS__ST_NOT_FOUND) {
		ffn_mark_remove(g->c->marks, name);
		fprintf(stderr, "ffnet-cni: GC: unregistered %s\n", name);
	} else {
		g->failed++;
	}
	return st < 0 ? -1 : 0;
}

int ffn_cmd_gc(struct ffn_cni *c)
{
	struct gc g = {.c = c, .valid = ff_json_arr(c->conf, "cni.dev/valid-attachments")};
	int rc;

	if (!g.valid)
		return ffn_error(c, FFN_E_CONFIG, "GC without cni.dev/valid-attachments");
	rc = open_router(c, &g.a, FFN_E_AGAIN);
	if (rc)
		return rc;
	if (ffn_mark_each(c->marks, gc_one, &g) || g.failed)
		rc = ffn_error(c, FFN_E_IO, "GC: %s", g.a.err);
	ff_admin_close(&g.a);
	return rc;
}
