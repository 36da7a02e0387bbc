/* ffrouter: one per host. Runs in the foreground, logs to stderr, stops
 * cleanly on SIGTERM/SIGINT. Parses the options into struct ffr_options
 * (one table: name, argument, help, setter) and runs the event loop;
 * everything else lives in libffrouter.a (ffrouter.h). */
#include "ffrouter.h"

#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* How an option's value is stored: a string, a number in [min, max] (what
 * says what it is when it is bad), or by its own setter. */
enum opt_kind { OPT_STR, OPT_U32, OPT_INT, OPT_FN };

struct opt {
	const char *name, *arg;
	enum opt_kind kind;
	size_t off; /* where in struct ffr_options */
	uint32_t min, max;
	const char *what;
	int (*set)(struct ffr_options *o, const char *v);
	const char *help;
};

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

static int set_host_allow(struct ffr_options *o, const char *v)
{
	if (ffr_host_allow_add(&o->xhost, v) == 0)
		return 0;
	fprintf(stderr, "ffrouter: bad --host-allow '%s' (CIDR[:PORT], at most %d)\n", v,
		FFR_HOST_ALLOW_MAX);
	return -1;
}

static int set_warm_conns(struct ffr_options *o, const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (!*v || *end || n < 0 || n > FFR_WARM_CONNS_MAX) {
		fprintf(stderr, "ffrouter: bad --warm-conns '%s' (0 to %d)\n", v, FFR_WARM_CONNS_MAX);
		return -1;
	}
	o->xhost.warm_conns = (int)n;
	o->xhost.warm_set = true;
	return 0;
}

static int set_verbs_path(struct ffr_options *o, const char *v)
{
	if (ffr_verbs_path_parse(v, &o->rdma.path) < 0) {
		fprintf(stderr, "ffrouter: bad verbs path '%s' (auto, direct or ring)\n", v);
		return -1;
	}
	return 0;
}

static int set_metrics(struct ffr_options *o, const char *v)
{
	struct ff_sa a;

	if (ffr_metrics_parse(v, &a) < 0) {
		fprintf(stderr, "ffrouter: bad --metrics '%s' (IP:PORT, [IPv6]:PORT)\n", v);
		return -1;
	}
	o->core.metrics = v;
	return 0;
}

static int set_sock_rdma(struct ffr_options *o, const char *v)
{
	if (ffr_rsock_mode_parse(v) < 0) {
		fprintf(stderr, "ffrouter: bad --sock-rdma '%s' (auto or off)\n", v);
		return -1;
	}
	o->rsock.mode = v;
	return 0;
}

#define STR(n, a, field, h) {n, a, OPT_STR, offsetof(struct ffr_options, field), 0, 0, NULL, NULL, h}
#define NUM(n, a, k, field, lo, hi, w, h)                                                          \
	{n, a, k, offsetof(struct ffr_options, field), lo, hi, w, NULL, h}
#define FN(n, a, fn, h) {n, a, OPT_FN, 0, 0, 0, NULL, fn, h}

static const struct opt opts[] = {
	STR("rundir", "DIR", core.rundir,
	    "run directory, default " FF_DEFAULT_RUNDIR " (admin socket\n"
	    "DIR/ffrouter.sock, container sockets DIR/c/NAME/ffrouter.sock)"),
	STR("state", "FILE", xhost.state, "registrations (default DIR/state)"),
	FN("log-level", "LEVEL", set_log_level, "error, warn, info or debug (default info)"),
	NUM("max-conns", "N", OPT_U32, core.quota.conns, 1, UINT32_MAX, "number",
	    "connections per container (default 65536)"),
	NUM("max-listeners", "N", OPT_U32, core.quota.listeners, 1, UINT32_MAX, "number",
	    "listeners per container (default 4096)"),
	NUM("max-channels", "N", OPT_U32, core.quota.channels, 1, UINT32_MAX, "number",
	    "shim channels per container (default 4096)"),
	NUM("max-inflight", "N", OPT_U32, core.quota.inflight, 1, 1u << 20, "number",
	    "connects under way per shim channel (default 64)"),
	NUM("fd-reserve", "N", OPT_U32, core.fd_reserve, 1, 1u << 20, "number",
	    "refuse new work this near RLIMIT_NOFILE (default a\n"
	    "16th of the limit, 16 to 1024)"),
	NUM("watchdog-ms", "N", OPT_U32, core.watchdog_ms, 100, 3600000, "period",
	    "log and count a stall of the event loop this long\n"
	    "(default 5000)"),
	NUM("same-host-rings", "BYTES", OPT_U32, core.ring, 0, 64u << 20, "size",
	    "same-host connections move their bytes through two\n"
	    "shared-memory rings of BYTES each (a power of two,\n"
	    "4096 to 64 MiB; default 524288; 0: no rings, the\n"
	    "socketpair alone)"),
	NUM("max-ring-mem", "MIB", OPT_U32, core.quota.ring_mib, 1, 1u << 20, "size",
	    "ring memory per container, MiB (default 256); past it\n"
	    "new connections use the socketpair alone"),
	NUM("sockbuf", "BYTES", OPT_INT, core.sockbuf, 0, 1u << 30, "size",
	    "buffer size of same-host connections (default 1048576;\n"
	    "0 keeps the kernel's default; at most 1 GiB)"),
	STR("host-id", "NAME", core.host_id, "this host's name in the locality map (default: hostname)"),
	STR("ingress", "IP:PORT", xhost.ingress, "accept connections from other routers here"),
	STR("secret-file", "FILE", xhost.secret_file, "the cluster secret (mode 600), needed across hosts"),
	NUM("xconnect-ms", "N", OPT_INT, xhost.xconnect_ms, 1, 600000, "timeout",
	    "timeout of a connect to another router (default 3000)"),
	STR("store", "URL", xhost.store, "etcd://HOST:PORT: share the locality map through etcd"),
	STR("advertise", "IP:PORT", xhost.advertise,
	    "where other routers reach this one (default: --ingress)"),
	NUM("preamble-ms", "N", OPT_INT, xhost.preamble_ms, 100, 600000, "timeout",
	    "ingress: a connection's time for its preamble (default 5000)"),
	NUM("ingress-pending", "N", OPT_U32, xhost.ingress_pending, 1, 1u << 20, "number",
	    "ingress: connections waiting for a preamble (default 4096)"),
	NUM("ingress-per-ip", "N", OPT_U32, xhost.ingress_per_source, 1, 1u << 20, "number",
	    "ingress: ... of them from one address (default 256)"),
	STR("addr-check", "on|off", xhost.addr_check,
	    "ingress: a preamble must come from its host's address\n"
	    "in the map, on the connection it was sealed for\n"
	    "(default on; off only through NAT between hosts)"),
	FN("warm-conns", "N", set_warm_conns,
	   "connections to keep opened and authenticated ahead of\n"
	   "need to each host containers connect to (default 4;\n"
	   "0: none, each connect opens its own)"),
	FN("host-allow", "CIDR", set_host_allow,
	   "policy host: let containers reach CIDR[:PORT] even if\n"
	   "it is the host's or the cluster's own (repeatable)"),
	STR("rdma-dev", "NAME", rdma.dev,
	    "RDMA device for containers' verbs (default: the first\n"
	    "one, if any; none: no RDMA)"),
	NUM("rdma-poll-us", "N", OPT_U32, rdma.poll_us, 0, 10000000, "poll time",
	    "after verbs work or data over RDMA sockets, poll the\n"
	    "data path for N us before sleeping again (default\n"
	    "2000; 0: never)"),
	FN("verbs-path", "PATH", set_verbs_path,
	   "direct: apps post to and poll the device's queues\n"
	   "themselves (soft-RoCE only; native speed, native RDMA\n"
	   "trust between QPs); ring: every work request passes\n"
	   "through the router, which can then refuse any of them;\n"
	   "auto (default): direct where the device has it"),
	FN("sock-rdma", "MODE", set_sock_rdma,
	   "auto (default): TCP connections to containers on hosts\n"
	   "with RDMA in the map go over RDMA between the routers;\n"
	   "off: always over host TCP"),
	FN("metrics", "IP:PORT", set_metrics,
	   "serve Prometheus metrics at http://IP:PORT/metrics\n"
	   "(default: off; bind to a trusted address)"),
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* Stores v where op says; -1 (said on stderr) if it is not a valid value.
 * A size beyond the maximum is taken as the maximum. */
static int opt_set(const struct opt *op, struct ffr_options *o, const char *v)
{
	char *field = (char *)o + op->off, *end;
	unsigned long n;

	if (op->kind == OPT_FN)
		return op->set(o, v);
	if (op->kind == OPT_STR) {
		*(const char **)field = v;
		return 0;
	}
	errno = 0;
	n = strtoul(v, &end, 10);
	if (!errno && !*end && *v && *v != '-' && n > op->max && !strcmp(op->what, "size"))
		n = op->max;
	if (errno || *end || !*v || *v == '-' || n < op->min || n > op->max) {
		fprintf(stderr, "ffrouter: bad %s '%s'\n", op->what, v);
		return -1;
	}
	if (op->kind == OPT_U32)
		*(uint32_t *)field = (uint32_t)n;
	else
		*(int *)field = (int)n;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ffrouter [OPTION...]\n");
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
			if (opt_set(&opts[c - 256], o, optarg) < 0)
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

	/* A root daemon keeps no file its starter left open: a shell's pipe
	 * would never see EOF, and the fd counts ffctl status shows would
	 * depend on who started it. (systemd starts it clean anyway.) */
	close_range(3, ~0U, 0);
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
