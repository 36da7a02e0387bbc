/* The whole router: the core with its features, in dependency order. What
 * main.c, the tests and the fuzz target start. Folders and who may use
 * whom (an arrow: "may include the header of"):
 *
 *   main.c, ffrouter.c -> core, xhost, rdma, rdma/cm, unotify
 *   unotify            -> core
 *   rdma/cm            -> rdma, xhost, core
 *   rdma/sock          -> rdma, xhost, core
 *   rdma               -> xhost (hosts of the map), core
 *   xhost              -> core
 *   core               -> common/ only
 *
 * Each folder's own header (core/core.h, xhost/xhost.h, rdma/rdma.h,
 * rdma/cm/cm.h) is what the others may use; its internal.h is its own. */
#pragma once

#include "cm.h"
#include "core.h"
#include "rdma.h"
#include "sock.h"
#include "unotify.h"
#include "xhost.h"

struct ffr_options {
	struct ffr_config core;
	struct ffr_xhost_config xhost;
	struct ffr_rdma_config rdma;
	struct ffr_rsock_config rsock;
};

/* The options of a router started with no arguments. */
void ffr_options_default(struct ffr_options *o);
/* A router with every feature; NULL and *err on failure (logged). */
struct ffr_router *ffr_start(struct event_base *base, const struct ffr_options *o, int *err);
