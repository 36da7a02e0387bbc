/* Assembles a router: the core, then the cluster (xhost), RDMA verbs and
 * rdma_cm, sockets over RDMA and the seccomp supervisor, each registering itself with what it depends on. */
#include "ffrouter.h"

#include "log.h"

#include <ff/sring.h>

#include <string.h>

void ffr_options_default(struct ffr_options *o)
{
	memset(o, 0, sizeof(*o));
	o->core.rundir = FF_DEFAULT_RUNDIR;
	o->core.quota.channels = 4096;
	o->core.quota.listeners = 4096;
	o->core.quota.conns = 65536;
	o->core.quota.pending = 4096;
	o->core.sockbuf = 1 << 20;
	o->core.ring = FF_SRING_DEFAULT;
	o->rdma.poll_us = 2000;
	o->rdma.path = FFR_VPATH_AUTO;
}

struct ffr_router *ffr_start(struct event_base *base, const struct ffr_options *o, int *err)
{
	struct ffr_router *r = ffr_router_new(base, &o->core, err);

	if (!r)
		return NULL;
	*err = ffr_xhost_attach(r, &o->xhost);
	if (!*err) {
		*err = ffr_rdma_attach(r, &o->rdma);
		if (*err)
			ff_err("cannot open RDMA device %s", o->rdma.dev ? o->rdma.dev : "(first)");
	}
	if (!*err)
		*err = ffr_cm_attach(r);
	if (!*err)
		*err = ffr_rsock_attach(r, &o->rsock);
	if (!*err)
		*err = ffr_unotify_attach(r);
	if (*err) {
		ffr_router_free(r);
		return NULL;
	}
	return r;
}
