/* ffrouter: one per host. Runs in the foreground, logs to stderr, stops
 * cleanly on SIGTERM/SIGINT. Everything else lives in libffrouter.a. */
#include "core.h"

#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: ffrouter --rundir DIR [--state FILE] [--log-level LEVEL]\n"
		   "  --rundir DIR       run directory (admin socket DIR/ffrouter.sock,\n"
		   "                     container sockets DIR/c/NAME/ffrouter.sock)\n"
		   "  --state FILE       registrations (default DIR/state)\n"
		   "  --log-level LEVEL  error, warn, info or debug (default info)\n"
		   "  --max-conns N      connections per container (default 65536)\n"
		   "  --max-listeners N  listeners per container (default 4096)\n"
		   "  --max-channels N   shim channels per container (default 4096)\n"
		   "  --sockbuf BYTES    buffer size of same-host connections (default 1048576;\n"
		   "                     0 keeps the kernel's default)\n"
		   "  --host-id NAME     this host's name in the locality map (default: hostname)\n"
		   "  --ingress IP:PORT  accept connections from other routers here\n"
		   "  --secret-file FILE the cluster secret (mode 600), needed across hosts\n"
		   "  --xconnect-ms N    timeout of a connect to another router (default 3000)\n"
		   "  --store URL        etcd://HOST:PORT: share the locality map through etcd\n"
		   "  --advertise IP:PORT where other routers reach this one (default: --ingress)\n"
		   "  --rdma-dev NAME    RDMA device for containers' verbs (default: the first\n"
		   "                     one, if any; none: no RDMA)\n"
		   "  --rdma-poll-us N   after verbs work, poll the data path for N us before\n"
		   "                     sleeping again (default 2000; 0: never)\n"
		   "  --verbs-path PATH  direct: apps post to and poll the device's queues\n"
		   "                     themselves (soft-RoCE only; native speed, native RDMA\n"
		   "                     trust between QPs); ring: every work request passes\n"
		   "                     through the router, which can then refuse any of them;\n"
		   "                     auto (default): direct where the device has it\n");
}

static const char *rdma_dev;        /* --rdma-dev */
static uint32_t rdma_poll_us = 2000; /* --rdma-poll-us */
static const char *verbs_path = "auto"; /* --verbs-path */

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	ff_info("signal %d: stopping", (int)sig);
	event_base_loopexit(arg, NULL);
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || !*s || v == 0 || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct ffr_config *cfg)
{
	static const struct option opts[] = {
		{"rundir", required_argument, NULL, 'r'},
		{"state", required_argument, NULL, 's'},
		{"log-level", required_argument, NULL, 'l'},
		{"max-conns", required_argument, NULL, 'C'},
		{"max-listeners", required_argument, NULL, 'L'},
		{"max-channels", required_argument, NULL, 'H'},
		{"sockbuf", required_argument, NULL, 'B'},
		{"host-id", required_argument, NULL, 'I'},
		{"ingress", required_argument, NULL, 'G'},
		{"secret-file", required_argument, NULL, 'S'},
		{"xconnect-ms", required_argument, NULL, 'X'},
		{"store", required_argument, NULL, 'E'},
		{"advertise", required_argument, NULL, 'A'},
		{"rdma-dev", required_argument, NULL, 'D'},
		{"rdma-poll-us", required_argument, NULL, 'P'},
		{"verbs-path", required_argument, NULL, 'W'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	uint32_t v = 0;
	int c, lvl;

	while ((c = getopt_long(argc, argv, "r:s:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			cfg->rundir = optarg;
			break;
		case 's':
			cfg->state = optarg;
			break;
		case 'l':
			lvl = ff_log_parse_level(optarg);
			if (lvl < 0) {
				fprintf(stderr, "ffrouter: unknown log level '%s'\n", optarg);
				return 2;
			}
			ff_log_level = lvl;
			break;
		case 'C':
		case 'L':
		case 'H':
			if (parse_u32(optarg, c == 'C'   ? &cfg->quota.conns
					      : c == 'L' ? &cfg->quota.listeners
							 : &cfg->quota.channels) < 0) {
				fprintf(stderr, "ffrouter: bad number '%s'\n", optarg);
				return 2;
			}
			break;
		case 'B':
			if (parse_u32(optarg, &v) < 0 && strcmp(optarg, "0")) {
				fprintf(stderr, "ffrouter: bad size '%s'\n", optarg);
				return 2;
			}
			cfg->sockbuf = strcmp(optarg, "0") ? (int)(v > (1u << 30) ? 1u << 30 : v) : 0;
			break;
		case 'I':
			cfg->host_id = optarg;
			break;
		case 'G':
			cfg->ingress = optarg;
			break;
		case 'S':
			cfg->secret_file = optarg;
			break;
		case 'E':
			cfg->store = optarg;
			break;
		case 'A':
			cfg->advertise = optarg;
			break;
		case 'X':
			if (parse_u32(optarg, &v) < 0 || v > 600000) {
				fprintf(stderr, "ffrouter: bad timeout '%s'\n", optarg);
				return 2;
			}
			cfg->xconnect_ms = (int)v;
			break;
		case 'D':
			rdma_dev = optarg;
			break;
		case 'P':
			if ((parse_u32(optarg, &v) < 0 && strcmp(optarg, "0")) || v > 10000000) {
				fprintf(stderr, "ffrouter: bad poll time '%s'\n", optarg);
				return 2;
			}
			rdma_poll_us = strcmp(optarg, "0") ? v : 0;
			break;
		case 'W':
			if (strcmp(optarg, "auto") && strcmp(optarg, "direct") &&
			    strcmp(optarg, "ring")) {
				fprintf(stderr,
					"ffrouter: bad verbs path '%s' (auto, direct or ring)\n",
					optarg);
				return 2;
			}
			verbs_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("ffrouter %s\n", FF_VERSION);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

/* The event loop; while the verbs data path is hot it alternates
 * non-blocking turns of the loop with polling passes instead of sleeping. */
static void run_loop(struct event_base *base, struct ffr_router *r)
{
	unsigned n = 0;

	for (;;) {
		bool hot = ffr_rdma_hot(r);

		/* a turn of the loop costs a system call: one every 16 passes */
		if (!hot || ++n % 16 == 0) {
			if (event_base_loop(base, hot ? EVLOOP_NONBLOCK : EVLOOP_ONCE) < 0 ||
			    event_base_got_exit(base) || event_base_got_break(base))
				return;
			if (!hot && !event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED))
				return;
		}
		if (hot)
			ffr_rdma_poll(r);
	}
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct ffr_config cfg = {
		.rundir = FF_DEFAULT_RUNDIR,
		.quota = {.channels = 4096, .listeners = 4096, .conns = 65536, .pending = 4096},
		.sockbuf = 1 << 20,
	};
	struct event *sigterm, *sigint;
	struct event_base *base;
	struct ffr_router *r;
	int err, rc;

	ff_log_init("ffrouter", FF_LOG_INFO);
	rc = parse_args(argc, argv, &cfg);
	if (rc)
		return rc == 1 ? 0 : rc;
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	base = event_base_new();
	if (!base) {
		ff_err("cannot create the event loop");
		return 1;
	}
	r = ffr_router_new(base, &cfg, &err);
	if (!r) {
		ff_err("cannot start: %s", strerror(-err));
		event_base_free(base);
		return 1;
	}
	if (ffr_rdma_attach(r, rdma_dev) < 0 || ffr_rdma_set_path(r, verbs_path) < 0) {
		ff_err("cannot open RDMA device %s", rdma_dev);
		ffr_router_free(r);
		event_base_free(base);
		return 1;
	}
	sigterm = evsignal_new(base, SIGTERM, stop_cb, base);
	sigint = evsignal_new(base, SIGINT, stop_cb, base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	ff_info("ready: host %s, rundir %s, state %s%s%s", r->host_id, r->rundir, r->state,
		cfg.ingress ? ", ingress " : "", cfg.ingress ? cfg.ingress : "");
	ffr_rdma_set_poll(r, rdma_poll_us);
	run_loop(base, r);
	ffr_router_free(r);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(base);
	ff_info("stopped");
	return 0;
}
