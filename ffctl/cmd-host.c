/* ffctl host add HOST --addr IP:PORT [--rdma] | host rm HOST | host list [--json]
 * ffctl publish NAME HOSTPORT:PORT | unpublish NAME HOSTPORT */
#include "ffctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Sends req and reports the router's verdict; exit code. */
static int simple(struct ffc_ctx *ctx, Ff__Request *req, const char *what, const char *done)
{
	Ff__Reply **reps;
	size_t n;
	int rc = 0;

	if (ffc_connect(ctx) || ffc_call(ctx, req, &reps, &n))
		return 1;
	if (reps[0]->status)
		rc = ffc_fail(reps[0], what);
	else if (!ctx->json)
		printf("%s\n", done);
	ffc_replies_free(reps, n);
	return rc;
}

static int host_add(struct ffc_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"addr", required_argument, NULL, 'a'},
		{"rdma", no_argument, NULL, 'r'},
		{0},
	};
	Ff__Request req = FF__REQUEST__INIT;
	Ff__HostAdd m = FF__HOST_ADD__INIT;
	char done[256];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'a')
			m.addr = optarg;
		else if (c == 'r')
			m.rdma = true;
		else
			return 2;
	}
	if (optind != argc - 1 || !*m.addr) {
		fprintf(stderr, "usage: ffctl host add HOST --addr IP:PORT [--rdma]\n");
		return 2;
	}
	m.name = argv[optind];
	req.body_case = FF__REQUEST__BODY_HOST_ADD;
	req.host_add = &m;
	snprintf(done, sizeof(done), "host %s: its router at %s", m.name, m.addr);
	return simple(ctx, &req, "host add", done);
}

static int host_rm(struct ffc_ctx *ctx, int argc, char **argv)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__HostRemove m = FF__HOST_REMOVE__INIT;
	char done[128];

	if (argc != 2) {
		fprintf(stderr, "usage: ffctl host rm HOST\n");
		return 2;
	}
	m.name = argv[1];
	req.body_case = FF__REQUEST__BODY_HOST_REMOVE;
	req.host_remove = &m;
	snprintf(done, sizeof(done), "removed host %s", m.name);
	return simple(ctx, &req, "host rm", done);
}

void ffc_print_hosts(struct ffc_ctx *ctx, Ff__Host **h, size_t n);

void ffc_print_hosts(struct ffc_ctx *ctx, Ff__Host **h, size_t n)
{
	char a[FF_ADDRSTRLEN];

	if (!ctx->json)
		printf("%-20s %-28s %5s %10s\n", "HOST", "ROUTER", "RDMA", "CONTAINERS");
	else
		printf("[");
	for (size_t i = 0; i < n; i++) {
		if (h[i]->self)
			snprintf(a, sizeof(a), "(this router)");
		else
			ffc_addr_str(h[i]->addr, a, sizeof(a));
		if (!ctx->json) {
			printf("%-20s %-28s %5s %10u\n", h[i]->name, a, h[i]->rdma ? "yes" : "no",
			       h[i]->containers);
			continue;
		}
		printf("%s{\"name\": ", i ? ", " : "");
		ffc_json_str(stdout, h[i]->name);
		printf(", \"addr\": \"%s\", \"self\": %s, \"rdma\": %s, \"containers\": %u}",
		       h[i]->self ? "" : a, h[i]->self ? "true" : "false",
		       h[i]->rdma ? "true" : "false", h[i]->containers);
	}
	if (ctx->json)
		printf("]");
}

static void print_list(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n)
{
	ffc_print_hosts(ctx, reps[0]->hosts->hosts, reps[0]->hosts->n_hosts);
	if (ctx->json)
		printf("\n");
}

int ffc_cmd_host(struct ffc_ctx *ctx, int argc, char **argv)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__ListHosts m = FF__LIST_HOSTS__INIT;

	if (argc >= 2 && !strcmp(argv[1], "add"))
		return host_add(ctx, argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "rm"))
		return host_rm(ctx, argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "list")) {
		req.body_case = FF__REQUEST__BODY_LIST_HOSTS;
		req.list_hosts = &m;
		return ffc_query(ctx, argc - 1, argv + 1, "host list", &req, FF__REPLY__BODY_HOSTS,
				 print_list);
	}
	fprintf(stderr, "usage: ffctl host add HOST --addr IP:PORT [--rdma] | host rm HOST | "
			"host list [--json]\n");
	return 2;
}

static int parse_port(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v == 0 || v > 65535)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int ffc_cmd_publish(struct ffc_ctx *ctx, int argc, char **argv)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Publish m = FF__PUBLISH__INIT;
	bool rm = !strcmp(argv[0], "unpublish");
	char spec[32], *colon, done[160];

	if (argc != 3 || strlen(argv[2]) >= sizeof(spec)) {
		fprintf(stderr, rm ? "usage: ffctl unpublish NAME HOSTPORT\n"
				   : "usage: ffctl publish NAME HOSTPORT:PORT\n");
		return 2;
	}
	strcpy(spec, argv[2]);
	colon = strchr(spec, ':');
	if (colon)
		*colon = '\0';
	if ((rm && colon) || (!rm && !colon) || parse_port(spec, &m.host_port) < 0 ||
	    (!rm && parse_port(colon + 1, &m.port) < 0)) {
		fprintf(stderr, "ffctl: %s: '%s' is not %s (ports 1-65535)\n", argv[0], argv[2],
			rm ? "HOSTPORT" : "HOSTPORT:PORT");
		return 2;
	}
	m.container = argv[1];
	m.remove = rm;
	req.body_case = FF__REQUEST__BODY_PUBLISH;
	req.publish = &m;
	if (rm)
		snprintf(done, sizeof(done), "unpublished host port %u", m.host_port);
	else
		snprintf(done, sizeof(done), "host port %u -> %s:%u", m.host_port, m.container,
			 m.port);
	return simple(ctx, &req, argv[0], done);
}
