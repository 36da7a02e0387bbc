/* The CNI plugin's parts (cni.c: entry, input, errors; cni-cmd.c: the
 * commands; cni-state.c: what it registered). */
#pragma once

#include "admin.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define FFN_NAME_MAX 63 /* the router's limit on a container name */
#define FFN_MAX_IPS  8  /* and on its addresses */

/* CNI error codes (spec: "Error codes") and ours (100 and up). */
enum {
	FFN_E_VERSION = 1,
	FFN_E_ENV = 4,
	FFN_E_IO = 5,
	FFN_E_DECODE = 6,
	FFN_E_CONFIG = 7,
	FFN_E_AGAIN = 11,
	FFN_E_UNAVAILABLE = 50,
	FFN_E_REFUSED = 100,     /* the router refused the registration */
	FFN_E_UNREGISTERED = 101, /* CHECK: not registered */
	FFN_E_DIFFERS = 102,     /* CHECK: registered otherwise */
};

struct ffn_cni {
	const char *cmd, *cid, *netns, *ifname, *rundir;
	const char *version;    /* the configuration's cniVersion */
	struct json_object *conf; /* the configuration (owned) */
	char name[FFN_NAME_MAX + 1];
};

/* What this plugin registered for one container (RUNDIR/cni/NAME). */
struct ffn_mark {
	char ifname[64];
	char netns[4096];
	dev_t dev;
	ino_t ino;
};

/* Prints CNI error JSON (and a line on stderr) and returns 1. */
int ffn_error(const struct ffn_cni *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prints o as one line of JSON; consumes o. */
void ffn_print(struct json_object *o);
int ffn_name_of(const char *cid, char *name, size_t cap);

int ffn_cmd_add(struct ffn_cni *c);
int ffn_cmd_del(struct ffn_cni *c);
int ffn_cmd_check(struct ffn_cni *c);
int ffn_cmd_status(struct ffn_cni *c);
int ffn_cmd_gc(struct ffn_cni *c);

/* cni-state.c. 0 or a negative errno (-ENOENT: no mark). */
int ffn_mark_read(const char *rundir, const char *name, struct ffn_mark *m);
int ffn_mark_write(const char *rundir, const char *name, const char *ifname, const char *netns);
int ffn_mark_remove(const char *rundir, const char *name);
/* Whether m's namespace is gone (or is another one now). */
bool ffn_mark_stale(const struct ffn_mark *m);
/* Calls fn for every name with a mark; stops at fn's first non-zero. */
int ffn_mark_each(const char *rundir, int (*fn)(const char *name, void *arg), void *arg);
