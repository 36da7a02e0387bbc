/* ffctl host add HOST --addr IP:PORT [--rdma] | host rm HOST | host list [--json]
 * ffctl publish NAME HOSTPORT:PORT | unpublish NAME HOSTPORT */
#include "ffctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int host_add(struct ffc_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"addr", required_argument, NULL, 'a'},
		{"rdma", no_argument, NULL, 'r'},
		{0},
	};
	Ff__Request req = FF__REQUEST__INIT;
	Ff__HostAdd m = FF__HOST_ADD__INIT;
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
	return ffc_change(ctx, &req, "host add", "host %s: its router at %s", m.name, m.addr);
}

static int host_rm(struct ffc_ctx *ctx, int argc, char **argv)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__HostRemove m = FF__HOST_REMOVE__INIT;

	if (argc != 2) {
		fprintf(stderr, "usage: ffctl host rm HOST\n");
		return 2;
	}
	m.name = argv[1];
	req.body_case = FF__REQUEST__BODY_HOST_REMOVE;
	req.host_remove = &m;
	return ffc_change(ctx, &req, "host rm", "removed host %s", m.name);
}

void ffc_print_hosts(Ff__Host **h, size_t n)
{
	char a[FF_ADDRSTRLEN];

	printf("%-20s %-28s %5s %10s\n", "HOST", "ROUTER", "RDMA", "CONTAINERS");
	for (size_t i = 0; i < n; i++) {
		if (h[i]->self)
			snprintf(a, sizeof(a), "(this router)");
		else
			ffc_addr_str(h[i]->addr, a, sizeof(a));
		printf("%-20s %-28s %5s %10u\n", h[i]->name, a, h[i]->rdma ? "yes" : "no",
		       h[i]->containers);
	}
}

struct json_object *ffc_hosts_json(Ff__Host **h, size_t n)
{
	struct json_object *v = json_object_new_array();
	char a[FF_ADDRSTRLEN];

	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "name", ffc_json_string(h[i]->name));
		json_object_object_add(o, "addr", ffc_json_string(h[i]->self ? "" :
					ffc_addr_str(h[i]->addr, a, sizeof(a))));
		json_object_object_add(o, "self", json_object_new_boolean(h[i]->self));
		json_object_object_add(o, "rdma", json_object_new_boolean(h[i]->rdma));
		json_object_object_add(o, "containers", json_object_new_uint64(h[i]->containers));
		json_object_array_add(v, o);
	}
	return v;
}

static void print_list(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n)
{
	if (ctx->json)
		ffc_json_print(ffc_hosts_json(reps[0]->hosts->hosts, reps[0]->hosts->n_hosts));
	else
		ffc_print_hosts(reps[0]->hosts->hosts, reps[0]->hosts->n_hosts);
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
	char spec[32], *colon;

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
		return ffc_change(ctx, &req, argv[0], "unpublished host port %u", m.host_port);
	return ffc_change(ctx, &req, argv[0], "host port %u -> %s:%u", m.host_port, m.container,
			  m.port);
}
