/* ffctl: registers containers with ffrouter and shows what it is doing.
 *   ffctl [--rundir DIR] [--json] COMMAND [ARGS]
 * Errors go to stderr with a non-zero exit; --json on every read command. */
#include "ffctl.h"

#include <ff/wire.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmd_help(struct ffc_ctx *ctx, int argc, char **argv);

static const struct ffc_cmd cmds[] = {
	{"register", ffc_cmd_register,
	 "NAME --ip IP [--ip IP] [--host HOST] [--policy container|host] [--transport auto|tcp] [--pid PID|--netns PATH]",
	 "register a container; on this host, creates RUNDIR/c/NAME/ to mount at /run/ffnet"},
	{"unregister", ffc_cmd_unregister, "NAME", "forget a container"},
	{"list", ffc_cmd_list, "[--json]", "registered containers"},
	{"host", ffc_cmd_host, "add HOST --addr IP:PORT [--rdma] | rm HOST | list [--json]",
	 "the other hosts of the cluster and their routers"},
	{"publish", ffc_cmd_publish, "NAME HOSTPORT:PORT",
	 "connections to HOSTPORT on this host go to NAME's listener on PORT"},
	{"unpublish", ffc_cmd_publish, "NAME HOSTPORT", "stop publishing"},
	{"status", ffc_cmd_status, "[--json] [--watch [SECONDS]] [--count N]",
	 "containers, listeners, connections with their path and bytes each way"},
	{"help", cmd_help, "", "this text"},
};

static int cmd_help(struct ffc_ctx *ctx, int argc, char **argv)
{
	printf("usage: ffctl [--rundir DIR] [--json] COMMAND [ARGS]\n\n"
	       "  --rundir DIR  the router's run directory (default %s, or $FFNET_RUNDIR)\n\n",
	       FF_DEFAULT_RUNDIR);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		printf("  %-10s %s\n  %-10s   %s\n", cmds[i].name, cmds[i].usage, "", cmds[i].help);
	return 0;
}

int main(int argc, char **argv)
{
	struct ffc_ctx ctx = {.rundir = getenv("FFNET_RUNDIR"), .adm.fd = -1};
	int i = 1, rc;

	if (!ctx.rundir || !*ctx.rundir)
		ctx.rundir = FF_DEFAULT_RUNDIR;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--rundir") && i + 1 < argc) {
			ctx.rundir = argv[++i];
		} else if (!strncmp(argv[i], "--rundir=", 9)) {
			ctx.rundir = argv[i] + 9;
		} else if (!strcmp(argv[i], "--json")) {
			ctx.json = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			return cmd_help(&ctx, 0, NULL);
		} else {
			fprintf(stderr, "ffctl: unknown option %s (try ffctl help)\n", argv[i]);
			return 2;
		}
	}
	if (i == argc) {
		cmd_help(&ctx, 0, NULL);
		return 2;
	}
	for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
		if (strcmp(argv[i], cmds[k].name))
			continue;
		rc = cmds[k].fn(&ctx, argc - i, argv + i);
		ff_admin_close(&ctx.adm);
		return rc;
	}
	fprintf(stderr, "ffctl: unknown command '%s' (try ffctl help)\n", argv[i]);
	return 2;
}
