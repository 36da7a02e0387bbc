/* What the CNI plugin and the OCI runtime wrapper share: the router
 * requests they make (through hostlib/admin.c) and the records of what
 * they registered (marks.c). */
#pragma once

#include "admin.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define FFN_NAME_MAX 63 /* the router's limit on a container name */
#define FFN_MAX_IPS  8  /* and on its addresses */

struct ffn_ips {
	char v[FFN_MAX_IPS][64];
	size_t n;
};

/* What one registrar (a CNI attachment, a runtime's container) registered:
 * MARKS/NAME, see marks.c. */
struct ffn_mark {
	char ifname[64];
	char netns[4096];
	dev_t dev;
	ino_t ino;
};

/* The router's name for a container ID: the ID itself, cut at 63
 * characters (runtimes' IDs are 64 hex digits); -1 if the ID is not one
 * (alphanumeric first, then alphanumerics, '_', '-', '.'). */
int ffn_name_of(const char *cid, char *name, size_t cap);

/* One request: its status (FF__STATUS__ST_OK...), or -1 on a transport
 * failure; the reason in a->err. Replies are kept in *reps only on
 * success and if reps is not NULL. */
int ffn_call(struct ff_admin *a, Ff__Request *req, Ff__Reply ***reps, size_t *n);
/* Registers name; a stale registration recorded in marks that stands in
 * its way is cleared first (ffn_clear_stale). */
int ffn_register(struct ff_admin *a, const char *marks, const char *name,
		 const struct ffn_ips *ips, const char *netns, const char *who);
int ffn_unregister(struct ff_admin *a, const char *name);
/* The router's containers; free with ff_admin_replies_free. */
int ffn_list(struct ff_admin *a, Ff__Reply ***reps, size_t *n);
const Ff__Container *ffn_find(Ff__Reply **reps, size_t n, const char *name);
bool ffn_same_ips(const Ff__Container *k, const struct ffn_ips *ips);
/* Registrations recorded in marks whose namespace is gone (their removal
 * was missed: the router was down) and that stand in the way of name or
 * ips (all of them if name is NULL): unregistered, with a line on stderr
 * prefixed by who. How many were, or -1. */
int ffn_clear_stale(struct ff_admin *a, const char *marks, const char *name,
		    const struct ffn_ips *ips, const char *who);

/* marks.c: MARKS is a directory (made 0700 on the first write). 0 or a
 * negative errno (-ENOENT: no mark). */
int ffn_mark_read(const char *marks, const char *name, struct ffn_mark *m);
int ffn_mark_write(const char *marks, const char *name, const char *ifname, const char *netns);
int ffn_mark_remove(const char *marks, const char *name);
/* Writes data as path, whole or not at all: through tmp (same directory,
 * exclusive, mode), fsync, rename. 0 or a negative errno. */
int ffn_write_file(const char *tmp, const char *path, const char *data, size_t len, mode_t mode);
/* Whether m's namespace is gone (or is another one now). */
bool ffn_mark_stale(const struct ffn_mark *m);
/* Calls fn for every name with a mark; stops at fn's first non-zero. */
int ffn_mark_each(const char *marks, int (*fn)(const char *name, void *arg), void *arg);
