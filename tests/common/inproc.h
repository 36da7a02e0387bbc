/* Routers a unit test drives from its own thread, with their internals in
 * reach: for tests of one module of the router (its functions called
 * directly), where fixture.h's router-in-a-thread is only reached through
 * its sockets. */
#pragma once

#include "ffrouter.h"

/* A router in a fresh temp run directory with the core and the cluster
 * part; secret (NULL: none) is written to a mode-600 file and used as the
 * cluster secret. With ibv (a fake device), RDMA verbs and rdma_cm are
 * attached on it; with rdma true and ibv NULL, they are attached with no
 * device. NULL on failure (reported on stderr). */
struct ffr_router *ip_router_new(struct event_base *base, const char *host_id, const char *secret,
				 bool rdma, const struct ffr_ibv *ibv);
/* Frees it and removes its run directory. */
void ip_router_free(struct ffr_router *r);
