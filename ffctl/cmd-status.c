/* ffctl status [--json]: containers, listeners, connections (path, bytes
 * each way) and the router's counters. */
#include "ffctl.h"

#include <inttypes.h>
#include <string.h>

void ffc_print_containers(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n, bool status);

static void print_listeners(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n)
{
	bool first = true;
	char a[FF_ADDRSTRLEN];

	printf(ctx->json ? "[" : "\n%-6s %-20s %-28s %8s %10s\n", "ID", "CONTAINER", "ADDRESS",
	       "PENDING", "ACCEPTED");
	for (size_t k = 0; k < n; k++) {
		Ff__StatusReply *s = reps[k]->status_reply;

		for (size_t i = 0; i < s->n_listeners; i++) {
			Ff__ListenerInfo *l = s->listeners[i];

			ffc_addr_str(l->addr, a, sizeof(a));
			if (!ctx->json) {
				printf("%-6" PRIu64 " %-20s %-28s %8u %10" PRIu64 "\n", l->id,
				       l->container, a, l->pending, l->accepted);
				continue;
			}
			printf("%s{\"id\": %" PRIu64 ", \"container\": ", first ? "" : ", ", l->id);
			ffc_json_str(stdout, l->container);
			printf(", \"addr\": \"%s\", \"pending\": %u, \"accepted\": %" PRIu64 "}", a,
			       l->pending, l->accepted);
			first = false;
		}
	}
	if (ctx->json)
		printf("]");
}

static void print_conns(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n)
{
	bool first = true;
	char ca[FF_ADDRSTRLEN], sa[FF_ADDRSTRLEN];

	printf(ctx->json ? "[" : "\n%-6s %-10s %-16s %-24s %-16s %-24s %14s %14s\n", "ID", "PATH",
	       "CLIENT", "CLIENT-ADDR", "SERVER", "SERVER-ADDR", "BYTES-C2S", "BYTES-S2C");
	for (size_t k = 0; k < n; k++) {
		Ff__StatusReply *s = reps[k]->status_reply;

		for (size_t i = 0; i < s->n_conns; i++) {
			Ff__ConnInfo *c = s->conns[i];

			ffc_addr_str(c->client_addr, ca, sizeof(ca));
			ffc_addr_str(c->server_addr, sa, sizeof(sa));
			if (!ctx->json) {
				printf("%-6" PRIu64 " %-10s %-16s %-24s %-16s %-24s %14" PRIu64
				       " %14" PRIu64 "\n",
				       c->id, ffc_path_name(c->path), c->client, ca, c->server, sa,
				       c->bytes_c2s, c->bytes_s2c);
				continue;
			}
			printf("%s{\"id\": %" PRIu64 ", \"path\": \"%s\", \"client\": ",
			       first ? "" : ", ", c->id, ffc_path_name(c->path));
			ffc_json_str(stdout, c->client);
			printf(", \"client_addr\": \"%s\", \"server\": ", ca);
			ffc_json_str(stdout, c->server);
			printf(", \"server_addr\": \"%s\", \"bytes_c2s\": %" PRIu64
			       ", \"bytes_s2c\": %" PRIu64 "}",
			       sa, c->bytes_c2s, c->bytes_s2c);
			first = false;
		}
	}
	if (ctx->json)
		printf("]");
}

static void print_publishes(struct ffc_ctx *ctx, const Ff__StatusReply *s)
{
	if (!ctx->json)
		printf("%-10s %-20s %6s %10s\n", "HOSTPORT", "CONTAINER", "PORT", "ACCEPTED");
	else
		printf("[");
	for (size_t i = 0; i < s->n_publishes; i++) {
		const Ff__PublishInfo *p = s->publishes[i];

		if (!ctx->json) {
			printf("%-10u %-20s %6u %10" PRIu64 "\n", p->host_port, p->container, p->port,
			       p->accepted);
			continue;
		}
		printf("%s{\"host_port\": %u, \"container\": ", i ? ", " : "", p->host_port);
		ffc_json_str(stdout, p->container);
		printf(", \"port\": %u, \"accepted\": %" PRIu64 "}", p->port, p->accepted);
	}
	if (ctx->json)
		printf("]");
}

static void print_status(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n)
{
	Ff__StatusReply *s = reps[0]->status_reply;

	if (ctx->json) {
		printf("{\"version\": ");
		ffc_json_str(stdout, s->router_version);
		printf(", \"host\": ");
		ffc_json_str(stdout, s->host);
		printf(", \"conns_total\": %" PRIu64 ", \"fallbacks\": %" PRIu64
		       ", \"bad_messages\": %" PRIu64 ", \"hosts\": ",
		       s->conns_total, s->fallbacks, s->bad_messages);
		ffc_print_hosts(ctx, s->hosts, s->n_hosts);
		printf(", \"publishes\": ");
		print_publishes(ctx, s);
		printf(", \"containers\": ");
	} else {
		printf("ffrouter %s on host %s: %" PRIu64 " connections accelerated, %" PRIu64
		       " fell back to the kernel, %" PRIu64 " bad messages\n\n",
		       s->router_version, s->host, s->conns_total, s->fallbacks, s->bad_messages);
		if (s->n_hosts) {
			ffc_print_hosts(ctx, s->hosts, s->n_hosts);
			printf("\n");
		}
		if (s->n_publishes) {
			print_publishes(ctx, s);
			printf("\n");
		}
	}
	ffc_print_containers(ctx, reps, n, true);
	printf(ctx->json ? ", \"listeners\": " : "");
	print_listeners(ctx, reps, n);
	printf(ctx->json ? ", \"conns\": " : "");
	print_conns(ctx, reps, n);
	printf(ctx->json ? ", \"rdma\": " : "");
	ffc_print_rdma(ctx);
	if (ctx->json)
		printf("}\n");
}

int ffc_cmd_status(struct ffc_ctx *ctx, int argc, char **argv)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__GetStatus m = FF__GET_STATUS__INIT;

	req.body_case = FF__REQUEST__BODY_STATUS;
	req.status = &m;
	return ffc_query(ctx, argc, argv, "status", &req, FF__REPLY__BODY_STATUS_REPLY,
			 print_status);
}
