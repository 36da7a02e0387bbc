/* ffctl register NAME --ip IP [--ip IP...] [--host HOST] [--pid PID|--netns PATH]
 * ffctl unregister NAME */
#include "ffctl.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IPS 8

static int do_register(struct ffc_ctx *ctx, Ff__Register *m)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Reply **reps;
	char dir[4096];
	size_t n;
	int rc = 0;

	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = m;
	if (ffc_connect(ctx) || ffc_call(ctx, &req, &reps, &n))
		return 1;
	snprintf(dir, sizeof(dir), "%s/c/%s", ctx->rundir, m->name);
	if (reps[0]->status) {
		rc = ffc_fail(reps[0], "register");
	} else if (ctx->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "name", ffc_json_string(m->name));
		json_object_object_add(o, "dir", ffc_json_string(dir));
		ffc_json_print(o);
	} else if (*m->host) {
		printf("registered %s on host %s\n", m->name, m->host);
	} else {
		printf("registered %s: mount %s at /run/ffnet in the container\n", m->name, dir);
	}
	ffc_replies_free(reps, n);
	return rc;
}

int ffc_cmd_register(struct ffc_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"ip", required_argument, NULL, 'i'},   {"host", required_argument, NULL, 'H'},
		{"policy", required_argument, NULL, 'o'},
		{"transport", required_argument, NULL, 't'},
		{"pid", required_argument, NULL, 'p'},  {"netns", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},       {0},
	};
	Ff__Register m = FF__REGISTER__INIT;
	char *ips[MAX_IPS], nspath[64];
	int c;

	m.ips = ips;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (m.n_ips >= MAX_IPS) {
				fprintf(stderr, "ffctl: too many --ip (at most %d)\n", MAX_IPS);
				return 2;
			}
			ips[m.n_ips++] = optarg;
			break;
		case 'H':
			m.host = optarg;
			break;
		case 'o':
			m.policy = optarg;
			break;
		case 't':
			m.transport = optarg;
			break;
		case 'p':
			if (strspn(optarg, "0123456789") != strlen(optarg) || !*optarg) {
				fprintf(stderr, "ffctl: --pid needs a number\n");
				return 2;
			}
			snprintf(nspath, sizeof(nspath), "/proc/%s/ns/net", optarg);
			m.netns = nspath;
			break;
		case 'n':
			m.netns = optarg;
			break;
		case 'j':
			ctx->json = true;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc - 1 || !m.n_ips) {
		fprintf(stderr, "usage: ffctl register NAME --ip IP [--ip IP] [--host HOST] "
				"[--policy container|host] [--transport auto|tcp] "
				"[--pid PID|--netns PATH]\n");
		return 2;
	}
	m.name = argv[optind];
	return do_register(ctx, &m);
}

int ffc_cmd_unregister(struct ffc_ctx *ctx, int argc, char **argv)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unregister m = FF__UNREGISTER__INIT;

	if (argc != 2) {
		fprintf(stderr, "usage: ffctl unregister NAME\n");
		return 2;
	}
	m.name = argv[1];
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &m;
	return ffc_change(ctx, &req, "unregister", "unregistered %s", m.name);
}
