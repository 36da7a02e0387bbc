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

static void print_ctx_json(const Ff__VerbsCtxInfo *c)
{
	printf("{\"container\": ");
	ffc_json_str(stdout, c->container);
	printf(", \"pid\": %u, \"pds\": %u, \"mrs\": %u, \"mr_bytes\": %" PRIu64
	       ", \"memfds\": %u, \"memfd_bytes\": %" PRIu64 ", \"cqs\": %u, \"qps\": %u"
	       ", \"srqs\": %u, \"channels\": %u, \"completions\": %" PRIu64 ", \"qp\": [",
	       c->pid, c->pds, c->mrs, c->mr_bytes, c->memfds, c->memfd_bytes, c->cqs, c->qps,
	       c->srqs, c->channels, c->completions);
	for (size_t i = 0; i < c->n_qp; i++)
		printf("%s{\"qp_num\": %u, \"state\": \"%s\", \"posted\": %" PRIu64 "}",
		       i ? ", " : "", c->qp[i]->qp_num, qp_state(c->qp[i]->state), c->qp[i]->posted);
	printf("]}");
}

static void print_rdma(struct ffc_ctx *ctx, const Ff__VerbsStatusReply *s)
{
	char a[FF_ADDRSTRLEN];

	if (!s->device || !*s->device) {
		printf(ctx->json ? "null" : "\nRDMA: no device\n");
		return;
	}
	if (ctx->json) {
		printf("{\"device\": ");
		ffc_json_str(stdout, s->device);
		printf(", \"virtual_device\": ");
		ffc_json_str(stdout, s->virtual_device);
		printf(", \"data_path\": ");
		ffc_json_str(stdout, s->data_path ? s->data_path : "");
		printf(", \"contexts_total\": %" PRIu64 ", \"bad_wqes\": %" PRIu64
		       ", \"cm_conns_total\": %" PRIu64 ", \"contexts\": [",
		       s->contexts_total, s->bad_wqes, s->cm_conns_total);
		for (size_t i = 0; i < s->n_ctxs; i++) {
			printf(i ? ", " : "");
			print_ctx_json(s->ctxs[i]);
		}
		printf("], \"cm_listeners\": [");
		for (size_t i = 0; i < s->n_cm_listeners; i++) {
			printf("%s{\"container\": ", i ? ", " : "");
			ffc_json_str(stdout, s->cm_listeners[i]->container);
			printf(", \"addr\": \"%s\"}", ffc_addr_str(s->cm_listeners[i]->addr, a, sizeof(a)));
		}
		printf("]}");
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

/* Asks the router and prints the section; an older router without verbs
 * support gets "null" / nothing. */
void ffc_print_rdma(struct ffc_ctx *ctx)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsStatus m = FF__VERBS_STATUS__INIT;
	Ff__Reply **reps;
	size_t n;

	req.body_case = FF__REQUEST__BODY_VERBS_STATUS;
	req.verbs_status = &m;
	if (ffc_call(ctx, &req, &reps, &n)) {
		printf(ctx->json ? "null" : "");
		return;
	}
	if (reps[0]->status || reps[0]->body_case != FF__REPLY__BODY_VERBS_STATUS)
		printf(ctx->json ? "null" : "");
	else
		print_rdma(ctx, reps[0]->verbs_status);
	ffc_replies_free(reps, n);
}
