/* ffnet-runtime, an OCI runtime that wraps another (runc by default):
 * oci.c takes the command line apart and execs the real runtime;
 * oci-spec.c edits a bundle's config.json at `create`; oci-hook.c is the
 * hooks that edit adds (register when the network exists, unregister when
 * the container is gone). */
#pragma once

#include "reg.h"

#include <stdbool.h>

/* Inside the container. */
#define FFO_RUN_IN  "/run/ffnet"
#define FFO_SHIM_IN "/opt/ffnet/libffshim.so"
#define FFO_EXEC_IN "/opt/ffnet/ffexec"

struct ffo_conf {
	const char *rundir;  /* the router's run directory */
	const char *runtime; /* the real runtime */
	const char *shim, *exec; /* on the host, bind-mounted read-only */
	const char *log;     /* also append log lines here (NULL: stderr only) */
	bool strict;         /* a failure of ours fails the container */
	/* the --ffnet-* arguments as given, for the hooks' command lines */
	char **args;
	int nargs;
};

/* A line in cf->log (timestamped), or on stderr without one or if it
 * cannot be opened. */
void ffo_log(const struct ffo_conf *cf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Edits BUNDLE/config.json for container id. 0 when done or rightly left
 * alone (opted out, host network, no router: logged), -1 on a failure
 * (logged; the file is unchanged). */
int ffo_edit(const struct ffo_conf *cf, const char *bundle, const char *id);
/* For `exec --process FILE`: the process file edited as the container's
 * was (behind ffexec, LD_PRELOAD if its image takes the shim) when the
 * container is one ffnet-runtime registered; same return values. */
int ffo_edit_exec(const struct ffo_conf *cf, const char *process, const char *id);
/* `hook create` / `hook poststop`: the container's state on stdin. Exit
 * status. */
int ffo_hook(const struct ffo_conf *cf, const char *which);
