/* The verbs half of libffshim: what the rest of the tree may use.
 *
 * Its entry points are the libibverbs and librdmacm names themselves,
 * defined next to what they do (verbs-*.c, cm-*.c) and listed in
 * libffshim.map; nothing else in the shim calls into it. What follows is
 * here for the unit tests, which cannot reach it through LD_PRELOAD. */
#pragma once

#include <pthread.h>
#include <stdint.h>

#include "ff.pb-c.h"

/* One request and its reply on a router socket of the verbs half (a
 * context's or an rdma_cm channel's; verbs-ctx.c): assigns req->id from
 * *next_id, sends req with fds (not consumed) and waits for the reply,
 * one request in flight under lock. Returns 0 with *rep set (free with
 * ff__reply__free_unpacked) and *rfd the fd it carried (or -1; rfd may be
 * NULL when none is expected), or -errno: the router's errno for a
 * refused request, -ETIMEDOUT, or -EIO when the socket failed or the
 * reply does not parse. */
int ffs_sockcall(int *sock, pthread_mutex_t *lock, uint64_t *next_id, Ff__Request *req,
		 const int *fds, int nfds, Ff__Reply **rep, int *rfd);
