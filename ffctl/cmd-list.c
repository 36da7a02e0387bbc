/* ffctl list [--json]: registered containers. */
#include "ffctl.h"

#include <string.h>

static void ips_joined(const Ff__Container *c, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->n_ips && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", c->ips[i]);
}

void ffc_print_containers(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n, bool status);

/* Shared with status: the container table, or its JSON array. */
void ffc_print_containers(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n, bool status)
{
	bool first = true;
	char ips[512];

	if (ctx->json)
		printf("[");
	else
		printf("%-20s %-32s %-10s %8s %9s %6s\n", "NAME", "IPS", "HOST", "CHANNELS",
		       "LISTENERS", "CONNS");
	for (size_t k = 0; k < n; k++) {
		Ff__Container **v = status ? reps[k]->status_reply->containers
					   : reps[k]->list->containers;
		size_t cnt = status ? reps[k]->status_reply->n_containers
				    : reps[k]->list->n_containers;

		for (size_t i = 0; i < cnt; i++) {
			const Ff__Container *c = v[i];

			ips_joined(c, ips, sizeof(ips));
			if (!ctx->json) {
				printf("%-20s %-32s %-10s %8u %9u %6u\n", c->name, ips, c->host,
				       c->channels, c->listeners, c->conns);
				continue;
			}
			printf("%s{\"name\": ", first ? "" : ", ");
			ffc_json_str(stdout, c->name);
			printf(", \"ips\": [");
			for (size_t j = 0; j < c->n_ips; j++) {
				printf("%s", j ? ", " : "");
				ffc_json_str(stdout, c->ips[j]);
			}
			printf("], \"host\": ");
			ffc_json_str(stdout, c->host);
			printf(", \"channels\": %u, \"listeners\": %u, \"conns\": %u}", c->channels,
			       c->listeners, c->conns);
			first = false;
		}
	}
	if (ctx->json)
		printf("]");
}

static void print_list(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n)
{
	ffc_print_containers(ctx, reps, n, false);
	if (ctx->json)
		printf("\n");
}

int ffc_cmd_list(struct ffc_ctx *ctx, int argc, char **argv)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__ListContainers m = FF__LIST_CONTAINERS__INIT;

	req.body_case = FF__REQUEST__BODY_LIST;
	req.list = &m;
	return ffc_query(ctx, argc, argv, "list", &req, FF__REPLY__BODY_LIST, print_list);
}
