/* ffrouter: one per host. Runs in the foreground, logs to stderr, stops
 * cleanly on SIGTERM/SIGINT. Parses the options into struct ffr_options
 * (one table: name, argument, help, setter) and runs the event loop;
 * everything else lives in libffrouter.a (ffrouter.h). */
#include "ffrouter.h"

#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Parses a decimal in [min, max]; -1 if it is not one. */
static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || !*s || *s == '-' || v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int bad(const char *what, const char *v)
{
	fprintf(stderr, "ffrouter: bad %s '%s'\n", what, v);
	return -1;
}

static int set_rundir(struct ffr_options *o, const char *v)
{
	o->core.rundir = v;
	return 0;
}

static int set_state(struct ffr_options *o, const char *v)
{
	o->xhost.state = v;
	return 0;
}

static int set_log_level(struct ffr_options *o, const char *v)
{
	int lvl = ff_log_parse_level(v);

	if (lvl < 0) {
		fprintf(stderr, "ffrouter: unknown log level '%s'\n", v);
		return -1;
	}
	ff_log_level = lvl;
	return 0;
}

static int set_max_conns(struct ffr_options *o, const char *v)
{
	return parse_u32(v, 1, UINT32_MAX, &o->core.quota.conns) ? bad("number", v) : 0;
}

static int set_max_listeners(struct ffr_options *o, const char *v)
{
	return parse_u32(v, 1, UINT32_MAX, &o->core.quota.listeners) ? bad("number", v) : 0;
}

static int set_max_channels(struct ffr_options *o, const char *v)
{
	return parse_u32(v, 1, UINT32_MAX, &o->core.quota.channels) ? bad("number", v) : 0;
}

static int set_sockbuf(struct ffr_options *o, const char *v)
{
	uint32_t n;

	if (parse_u32(v, 0, UINT32_MAX, &n))
		return bad("size", v);
	o->core.sockbuf = (int)(n > (1u << 30) ? 1u << 30 : n);
	return 0;
}

static int set_host_id(struct ffr_options *o, const char *v)
{
	o->core.host_id = v;
	return 0;
}

static int set_ingress(struct ffr_options *o, const char *v)
{
	o->xhost.ingress = v;
	return 0;
}

static int set_secret_file(struct ffr_options *o, const char *v)
{
	o->xhost.secret_file = v;
	return 0;
}

static int set_xconnect_ms(struct ffr_options *o, const char *v)
{
	uint32_t n;

	if (parse_u32(v, 1, 600000, &n))
		return bad("timeout", v);
	o->xhost.xconnect_ms = (int)n;
	return 0;
}

static int set_store(struct ffr_options *o, const char *v)
{
	o->xhost.store = v;
	return 0;
}

static int set_advertise(struct ffr_options *o, const char *v)
{
	o->xhost.advertise = v;
	return 0;
}

static int set_rdma_dev(struct ffr_options *o, const char *v)
{
	o->rdma.dev = v;
	return 0;
}

static int set_rdma_poll_us(struct ffr_options *o, const char *v)
{
	return parse_u32(v, 0, 10000000, &o->rdma.poll_us) ? bad("poll time", v) : 0;
}

static int set_verbs_path(struct ffr_options *o, const char *v)
{
	if (ffr_verbs_path_parse(v, &o->rdma.path) < 0) {
		fprintf(stderr, "ffrouter: bad verbs path '%s' (auto, direct or ring)\n", v);
		return -1;
	}
	return 0;
}

struct opt {
	const char *name, *arg;
	int (*set)(struct ffr_options *o, const char *v);
	const char *help;
};

static const struct opt opts[] = {
	{"rundir", "DIR", set_rundir,
	 "run directory (admin socket DIR/ffrouter.sock,\n"
	 "container sockets DIR/c/NAME/ffrouter.sock)"},
	{"state", "FILE", set_state, "registrations (default DIR/state)"},
	{"log-level", "LEVEL", set_log_level, "error, warn, info or debug (default info)"},
	{"max-conns", "N", set_max_conns, "connections per container (default 65536)"},
	{"max-listeners", "N", set_max_listeners, "listeners per container (default 4096)"},
	{"max-channels", "N", set_max_channels, "shim channels per container (default 4096)"},
	{"sockbuf", "BYTES", set_sockbuf,
	 "buffer size of same-host connections (default 1048576;\n"
	 "0 keeps the kernel's default)"},
	{"host-id", "NAME", set_host_id, "this host's name in the locality map (default: hostname)"},
	{"ingress", "IP:PORT", set_ingress, "accept connections from other routers here"},
	{"secret-file", "FILE", set_secret_file, "the cluster secret (mode 600), needed across hosts"},
	{"xconnect-ms", "N", set_xconnect_ms, "timeout of a connect to another router (default 3000)"},
	{"store", "URL", set_store, "etcd://HOST:PORT: share the locality map through etcd"},
	{"advertise", "IP:PORT", set_advertise, "where other routers reach this one (default: --ingress)"},
	{"rdma-dev", "NAME", set_rdma_dev,
	 "RDMA device for containers' verbs (default: the first\n"
	 "one, if any; none: no RDMA)"},
	{"rdma-poll-us", "N", set_rdma_poll_us,
	 "after verbs work, poll the data path for N us before\n"
	 "sleeping again (default 2000; 0: never)"},
	{"verbs-path", "PATH", set_verbs_path,
	 "direct: apps post to and poll the device's queues\n"
	 "themselves (soft-RoCE only; native speed, native RDMA\n"
	 "trust between QPs); ring: every work request passes\n"
	 "through the router, which can then refuse any of them;\n"
	 "auto (default): direct where the device has it"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: ffrouter --rundir DIR [OPTION...]\n");
	for (size_t i = 0; i < NOPTS; i++) {
		char left[40];
		const char *h = opts[i].help, *nl;

		snprintf(left, sizeof(left), "--%s %s", opts[i].name, opts[i].arg);
		for (bool first = true; h; first = false, h = nl ? nl + 1 : NULL) {
			nl = strchr(h, '\n');
			fprintf(f, "  %-20s %.*s\n", first ? left : "",
				nl ? (int)(nl - h) : (int)strlen(h), h);
		}
	}
	fprintf(f, "  %-20s %s\n  %-20s %s\n", "--help", "this text", "--version",
		"the version");
}

static int opt_index(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (!strcmp(opts[i].name, name))
			return (int)i;
	return -1;
}

/* 0: run; 1: done (help, version); 2: bad usage. */
static int parse_args(int argc, char **argv, struct ffr_options *o)
{
	struct option lo[NOPTS + 3] = {{0}};
	int c;

	for (size_t i = 0; i < NOPTS; i++)
		lo[i] = (struct option){opts[i].name, required_argument, NULL, (int)(256 + i)};
	lo[NOPTS] = (struct option){"help", no_argument, NULL, 'h'};
	lo[NOPTS + 1] = (struct option){"version", no_argument, NULL, 'V'};
	while ((c = getopt_long(argc, argv, "r:s:l:hV", lo, NULL)) != -1) {
		if (c == 'r' || c == 's' || c == 'l')
			c = 256 + opt_index(c == 'r' ? "rundir" : c == 's' ? "state" : "log-level");
		if (c >= 256 && c < 256 + (int)NOPTS) {
			if (opts[c - 256].set(o, optarg) < 0)
				return 2;
		} else if (c == 'h' || c == 'V') {
			if (c == 'h')
				usage(stdout);
			else
				printf("ffrouter %s\n", FF_VERSION);
			return 1;
		} else {
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

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	ff_info("signal %d: stopping", (int)sig);
	event_base_loopexit(arg, NULL);
}

/* The event loop; while a feature is hot (the verbs data path after work)
 * it alternates non-blocking turns of the loop with polling passes
 * instead of sleeping. */
static void run_loop(struct event_base *base, struct ffr_router *r)
{
	unsigned n = 0;

	for (;;) {
		bool hot = ffr_features_hot(r);

		/* a turn of the loop costs a system call: one every 16 passes */
		if (!hot || ++n % 16 == 0) {
			if (event_base_loop(base, hot ? EVLOOP_NONBLOCK : EVLOOP_ONCE) < 0 ||
			    event_base_got_exit(base) || event_base_got_break(base))
				return;
			if (!hot && !event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED))
				return;
		}
		if (hot)
			ffr_features_poll(r);
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
	struct ffr_options o;
	struct event *sigterm, *sigint;
	struct event_base *base;
	struct ffr_router *r;
	int err, rc;

	ff_log_init("ffrouter", FF_LOG_INFO);
	ffr_options_default(&o);
	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	base = event_base_new();
	if (!base) {
		ff_err("cannot create the event loop");
		return 1;
	}
	r = ffr_start(base, &o, &err);
	if (!r) {
		ff_err("cannot start: %s", strerror(-err));
		event_base_free(base);
		return 1;
	}
	sigterm = evsignal_new(base, SIGTERM, stop_cb, base);
	sigint = evsignal_new(base, SIGINT, stop_cb, base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	ff_info("ready: host %s, rundir %s, state %s%s%s", r->host_id, r->rundir,
		ffr_xhost_state(r), o.xhost.ingress ? ", ingress " : "",
		o.xhost.ingress ? o.xhost.ingress : "");
	run_loop(base, r);
	ffr_router_free(r);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(base);
	ff_info("stopped");
	return 0;
}
