/* The CNI plugin's parts (cni.c: entry, input, errors; cni-cmd.c: the
 * commands; reg.c and marks.c, shared with the runtime wrapper: router
 * requests and what was registered). */
#pragma once

#include "reg.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

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
	char marks[4096]; /* RUNDIR/cni: what this plugin registered */
};

/* Prints CNI error JSON (and a line on stderr) and returns 1. */
int ffn_error(const struct ffn_cni *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prints o as one line of JSON; consumes o. */
void ffn_print(struct json_object *o);

int ffn_cmd_add(struct ffn_cni *c);
int ffn_cmd_del(struct ffn_cni *c);
int ffn_cmd_check(struct ffn_cni *c);
int ffn_cmd_status(struct ffn_cni *c);
int ffn_cmd_gc(struct ffn_cni *c);
