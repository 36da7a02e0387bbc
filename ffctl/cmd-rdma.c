/* The RDMA part of `ffctl status`: the router's device and, per verbs
 * context (one app process's ibv_open_device), the objects it holds in
 * the router. A router without RDMA prints one line (JSON: null). */
#include "ffctl.h"

#include <inttypes.h>
#include <string.h>

static const char *qp_state(uint32_t s)
{
	static const char *const n[] = {"RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR"};

	return s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

static void print_ctx_text(const Ff__VerbsCtxInfo *c, bool direct)
{
	printf("%-16s %7u %4u %4u %12" PRIu64 " %6u %12" PRIu64 " %4u %4u %4u %8u %11" PRIu64 "\n",
	       c->container, c->pid, c->pds, c->mrs, c->mr_bytes, c->memfds, c->memfd_bytes, c->cqs,
	       c->qps, c->srqs, c->channels, c->completions);
	for (size_t i = 0; i < c->n_qp; i++) {
		if (direct)
			printf("    QP 0x%06x %s\n", c->qp[i]->qp_num, qp_state(c->qp[i]->state));
		else
			printf("    QP 0x%06x %-5s %" PRIu64 " send requests posted\n",
			       c->qp[i]->qp_num, qp_state(c->qp[i]->state), c->qp[i]->posted);
	}
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static struct json_object *ctx_json(const Ff__VerbsCtxInfo *c)
{
	struct json_object *o = json_object_new_object(), *qps = json_object_new_array();

	json_object_object_add(o, "container", ffc_json_string(c->container));
	add_u64(o, "pid", c->pid);
	add_u64(o, "pds", c->pds);
	add_u64(o, "mrs", c->mrs);
	add_u64(o, "mr_bytes", c->mr_bytes);
	add_u64(o, "memfds", c->memfds);
	add_u64(o, "memfd_bytes", c->memfd_bytes);
	add_u64(o, "cqs", c->cqs);
	add_u64(o, "qps", c->qps);
	add_u64(o, "srqs", c->srqs);
	add_u64(o, "channels", c->channels);
	add_u64(o, "completions", c->completions);
	for (size_t i = 0; i < c->n_qp; i++) {
		struct json_object *q = json_object_new_object();

		add_u64(q, "qp_num", c->qp[i]->qp_num);
		json_object_object_add(q, "state", ffc_json_string(qp_state(c->qp[i]->state)));
		add_u64(q, "posted", c->qp[i]->posted);
		json_object_array_add(qps, q);
	}
	json_object_object_add(o, "qp", qps);
	return o;
}

static struct json_object *rdma_json(const Ff__VerbsStatusReply *s)
{
	struct json_object *o = json_object_new_object(), *ctxs = json_object_new_array(),
			   *ls = json_object_new_array();
	char a[FF_ADDRSTRLEN];

	json_object_object_add(o, "device", ffc_json_string(s->device));
	json_object_object_add(o, "virtual_device", ffc_json_string(s->virtual_device));
	json_object_object_add(o, "data_path", ffc_json_string(s->data_path));
	add_u64(o, "contexts_total", s->contexts_total);
	add_u64(o, "bad_wqes", s->bad_wqes);
	add_u64(o, "cm_conns_total", s->cm_conns_total);
	for (size_t i = 0; i < s->n_ctxs; i++)
		json_object_array_add(ctxs, ctx_json(s->ctxs[i]));
	json_object_object_add(o, "contexts", ctxs);
	for (size_t i = 0; i < s->n_cm_listeners; i++) {
		const Ff__VerbsCmListener *cl = s->cm_listeners[i];
		struct json_object *l = json_object_new_object();

		ffc_addr_str(cl->addr, a, sizeof(a));
		json_object_object_add(l, "container", ffc_json_string(cl->container));
		json_object_object_add(l, "addr", ffc_json_string(a));
		json_object_array_add(ls, l);
	}
	json_object_object_add(o, "cm_listeners", ls);
	return o;
}

static bool has_device(const Ff__VerbsStatusReply *s)
{
	return s->device && *s->device;
}

static void print_rdma(const Ff__VerbsStatusReply *s)
{
	char a[FF_ADDRSTRLEN];

	if (!has_device(s)) {
		printf("\nRDMA: no device\n");
		return;
	}
	printf("\nRDMA: %s (containers see %s, %s data path): %" PRIu64 " contexts opened, %" PRIu64
	       " bad work requests\n%-16s %7s %4s %4s %12s %6s %12s %4s %4s %4s %8s %11s\n",
	       s->device, s->virtual_device, s->data_path && *s->data_path ? s->data_path : "?",
	       s->contexts_total, s->bad_wqes, "CONTAINER", "PID",
	       "PDS", "MRS", "MR-BYTES", "MEMFDS", "MEMFD-BYTES", "CQS", "QPS", "SRQS", "CHANNELS",
	       "COMPLETIONS");
	for (size_t i = 0; i < s->n_ctxs; i++)
		print_ctx_text(s->ctxs[i], s->data_path && !strcmp(s->data_path, "direct"));
	if (s->n_cm_listeners)
		printf("\nrdma_cm listeners (%" PRIu64 " connections made):\n", s->cm_conns_total);
	for (size_t i = 0; i < s->n_cm_listeners; i++)
		printf("    %-16s %s\n", s->cm_listeners[i]->container,
		       ffc_addr_str(s->cm_listeners[i]->addr, a, sizeof(a)));
}

/* Asks the router: its verbs status (in *reps, to free with
 * ffc_replies_free), or NULL from an older router without verbs support. */
static const Ff__VerbsStatusReply *fetch(struct ffc_ctx *ctx, Ff__Reply ***reps, size_t *n)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsStatus m = FF__VERBS_STATUS__INIT;

	req.body_case = FF__REQUEST__BODY_VERBS_STATUS;
	req.verbs_status = &m;
	*n = 0;
	if (ffc_call(ctx, &req, reps, n))
		return NULL;
	if ((*reps)[0]->status || (*reps)[0]->body_case != FF__REPLY__BODY_VERBS_STATUS)
		return NULL;
	return (*reps)[0]->verbs_status;
}

void ffc_print_rdma(struct ffc_ctx *ctx)
{
	Ff__Reply **reps;
	size_t n;
	const Ff__VerbsStatusReply *s = fetch(ctx, &reps, &n);

	if (s)
		print_rdma(s);
	if (n)
		ffc_replies_free(reps, n);
}

struct json_object *ffc_rdma_json(struct ffc_ctx *ctx)
{
	Ff__Reply **reps;
	size_t n;
	const Ff__VerbsStatusReply *s = fetch(ctx, &reps, &n);
	struct json_object *o = s && has_device(s) ? rdma_json(s) : NULL;

	if (n)
		ffc_replies_free(reps, n);
	return o;
}
