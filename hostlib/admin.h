/* The client side of the router's admin channel (RUNDIR/ffrouter.sock),
 * for the host programs that change or read the router's state: ffctl,
 * the CNI plugin, the runtime wrapper. Errors come back as a negative
 * errno plus a sentence in the caller's buffer; printing them is the
 * caller's business (ffctl to stderr, the CNI plugin as CNI error JSON).
 * Invariant: a struct ff_admin owns its fd (-1 when closed). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ff.pb-c.h"

struct ff_admin {
	int fd;
	uint64_t next_id;
	char err[256]; /* why the last call failed */
};

/* Connects to RUNDIR/ffrouter.sock and says Hello as role "ctl". 0, or a
 * negative errno with a->err set (-ECONNREFUSED/-ENOENT: no router). */
int ff_admin_open(struct ff_admin *a, const char *rundir);
void ff_admin_close(struct ff_admin *a);
/* Sends req (its id filled in) and collects its replies: *reps[0..*n),
 * unpacked, free with ff_admin_replies_free. 0 on a transport success
 * (the caller checks reps[0]->status), else a negative errno and a->err. */
int ff_admin_call(struct ff_admin *a, Ff__Request *req, Ff__Reply ***reps, size_t *n);
void ff_admin_replies_free(Ff__Reply **reps, size_t n);
/* The router's words for a failed reply, or strerror of its status. */
const char *ff_admin_reply_error(const Ff__Reply *rep);
