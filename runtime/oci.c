/* ffnet-runtime [--ffnet-OPTION=VALUE...] RUNTIME-ARGS...
 *
 * An OCI runtime that is another one (runc by default) with ffnet added,
 * the way NVIDIA's container runtime adds GPUs: on `create` (and `run`) it
 * edits the bundle's config.json (oci-spec.c), on `exec --process FILE`
 * (docker exec) that process's file for a container it registered, then
 * execs the real runtime with the same arguments minus its own; everything
 * else goes straight to the real runtime. Its own options are among the
 * global ones, before the command (Docker's runtimeArgs, podman's
 * --runtime-flag):
 *   --ffnet-rundir=DIR    the router's run directory (/run/ffnet)
 *   --ffnet-runtime=PATH  the real runtime (runc, from PATH)
 *   --ffnet-shim=PATH     the shim to mount into containers
 *   --ffnet-exec=PATH     ffexec, likewise (both default to the installed)
 *   --ffnet-log=FILE      also append log lines to FILE
 *   --ffnet-strict        a failure of ffnet's fails the container (else it
 *                         starts unaccelerated, with a log line)
 *   --ffnet-help          the usage
 * `ffnet-runtime [--ffnet-...] hook create|poststop` is the hooks' entry. */
#include "oci.h"

#include <ff/wire.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef FFN_LIBDIR
#define FFN_LIBDIR "/usr/local/lib/ffnet"
#endif

void ffo_log(const struct ffo_conf *cf, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f = cf->log ? fopen(cf->log, "ae") : NULL;
	if (!f) {
		fprintf(stderr, "ffnet-runtime: %s\n", msg);
	} else {
		char ts[32];
		time_t t = time(NULL);
		struct tm tm;

		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		fprintf(f, "%s ffnet-runtime[%d]: %s\n", ts, (int)getpid(), msg);
		fclose(f);
	}
}

/* runc's global options that take a value (before the command). */
static bool global_takes_value(const char *a)
{
	static const char *const v[] = {"--root", "--log", "--log-format", "--criu", "--rootless"};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (!strcmp(a, v[i]))
			return true;
	return false;
}

/* create's, run's and exec's options that take a value. */
static bool cmd_takes_value(const char *a)
{
	static const char *const v[] = {
		"--bundle", "-b", "--console-socket", "--pid-file", "--preserve-fds", "--process",
		"-p", "--cwd", "--env", "-e", "--user", "-u", "--additional-gids", "-g",
		"--process-label", "--apparmor", "--cap", "-c", "--cgroup",
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (!strcmp(a, v[i]))
			return true;
	return false;
}

struct cmdline {
	const char *cmd;     /* create, run or exec */
	const char *bundle;  /* create, run */
	const char *process; /* exec --process */
	const char *id;
};

/* The real runtime's command, and for create, run and exec what it acts
 * on; false for any other command (passed through untouched). */
static bool parse_cmd(int argc, char **argv, struct cmdline *c)
{
	int i = 0;

	while (i < argc && argv[i][0] == '-')
		i += global_takes_value(argv[i]) ? 2 : 1;
	if (i >= argc ||
	    (strcmp(argv[i], "create") && strcmp(argv[i], "run") && strcmp(argv[i], "exec")))
		return false;
	*c = (struct cmdline){.cmd = argv[i], .bundle = "."};
	for (i++; i < argc && !c->id; i++) {
		const char *a = argv[i], *eq = strchr(a, '=');
		size_t n = eq ? (size_t)(eq - a) : strlen(a);
		const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);

		if (a[0] != '-') {
			c->id = a; /* for exec, the command follows: not ours to read */
			continue;
		}
		if ((n == 8 && !strncmp(a, "--bundle", n)) || (n == 2 && !strncmp(a, "-b", n)))
			c->bundle = v;
		else if ((n == 9 && !strncmp(a, "--process", n)) || (n == 2 && !strncmp(a, "-p", n)))
			c->process = v;
		if (!eq && cmd_takes_value(a))
			i++;
	}
	return c->id && c->bundle;
}

static const char usage[] =
	"usage: ffnet-runtime [OPTION...] RUNTIME-ARGS...  (an OCI runtime: runc's arguments)\n"
	"       ffnet-runtime [OPTION...] hook create|poststop  (the hooks it adds)\n"
	"  --ffnet-rundir=DIR    the router's run directory (" FF_DEFAULT_RUNDIR ")\n"
	"  --ffnet-runtime=PATH  the real runtime (runc)\n"
	"  --ffnet-shim=PATH     the shim mounted into containers (" FFN_LIBDIR "/libffshim.so)\n"
	"  --ffnet-exec=PATH     ffexec, likewise (" FFN_LIBDIR "/ffexec)\n"
	"  --ffnet-log=FILE      log lines go to FILE (else to stderr)\n"
	"  --ffnet-strict        a failure of ffnet's fails the container\n"
	"  --ffnet-help          this text\n";

/* One --ffnet- option into cf: 0, or -1 after saying what is wrong. */
static int own_option(struct ffo_conf *cf, const char *arg)
{
	const char *o = arg + 8, *eq = strchr(o, '='), *v = eq ? eq + 1 : NULL;
	size_t n = eq ? (size_t)(eq - o) : strlen(o);

	if (n == 6 && !strncmp(o, "strict", n) && !v)
		cf->strict = true;
	else if (v && *v && n == 6 && !strncmp(o, "rundir", n))
		cf->rundir = v;
	else if (v && *v && n == 7 && !strncmp(o, "runtime", n))
		cf->runtime = v;
	else if (v && *v && n == 4 && !strncmp(o, "shim", n))
		cf->shim = v;
	else if (v && *v && n == 4 && !strncmp(o, "exec", n))
		cf->exec = v;
	else if (v && *v && n == 3 && !strncmp(o, "log", n))
		cf->log = v;
	else if (n == 4 && !strncmp(o, "help", n) && !v) {
		fputs(usage, stdout);
		exit(0);
	} else {
		fprintf(stderr, "ffnet-runtime: unknown option '%s'\n%s", arg, usage);
		return -1;
	}
	return 0;
}

/* Takes the --ffnet-* options out of the global options (before the
 * command: engines put theirs around ours, conmon its --systemd-cgroup
 * first) into cf->args; the rest, in order, into *rest (NULL-terminated,
 * *rest[-1] free for the real runtime's name). How many are left, or -1. */
static int own_options(struct ffo_conf *cf, int argc, char **argv, char ***rest)
{
	char **own = calloc((size_t)argc + 1, sizeof(*own));
	char **keep = calloc((size_t)argc + 2, sizeof(*keep));
	int i, nown = 0, nkeep = 0;

	if (!own || !keep) {
		fprintf(stderr, "ffnet-runtime: out of memory\n");
		return -1;
	}
	keep++; /* keep[-1]: the real runtime's argv[0] */
	for (i = 0; i < argc && argv[i][0] == '-'; i++) {
		if (!strncmp(argv[i], "--ffnet-", 8)) {
			if (own_option(cf, argv[i]) < 0)
				return -1;
			own[nown++] = argv[i];
			continue;
		}
		keep[nkeep++] = argv[i];
		if (global_takes_value(argv[i]) && i + 1 < argc)
			keep[nkeep++] = argv[++i];
	}
	while (i < argc)
		keep[nkeep++] = argv[i++];
	cf->args = own;
	cf->nargs = nown;
	*rest = keep;
	return nkeep;
}

int main(int argc, char **argv)
{
	struct ffo_conf cf = {
		.rundir = FF_DEFAULT_RUNDIR,
		.runtime = "runc",
		.shim = FFN_LIBDIR "/libffshim.so",
		.exec = FFN_LIBDIR "/ffexec",
	};
	struct cmdline c;
	char **rest;
	int nrest, rc;

	nrest = own_options(&cf, argc - 1, argv + 1, &rest);
	if (nrest < 0)
		return 2;
	if (nrest >= 1 && !strcmp(rest[0], "hook")) {
		if (nrest != 2 || (strcmp(rest[1], "create") && strcmp(rest[1], "poststop"))) {
			fprintf(stderr, "usage: ffnet-runtime [--ffnet-...] hook create|poststop "
					"(the container's state on stdin)\n");
			return 2;
		}
		rc = ffo_hook(&cf, rest[1]);
		free(cf.args);
		free(rest - 1);
		return rc;
	}
	if (parse_cmd(nrest, rest, &c)) {
		rc = strcmp(c.cmd, "exec") ? ffo_edit(&cf, c.bundle, c.id)
		     : c.process ? ffo_edit_exec(&cf, c.process, c.id) : 0;

		if (rc < 0 && cf.strict) {
			fprintf(stderr, "ffnet-runtime: --ffnet-strict: not starting %s\n", c.id);
			return 1;
		}
	}
	/* the real runtime gets our argv minus our options */
	rest[-1] = (char *)cf.runtime;
	execvp(cf.runtime, rest - 1);
	fprintf(stderr, "ffnet-runtime: cannot run %s: %s\n", cf.runtime, strerror(errno));
	return 127;
}
