/* Sockets over RDMA (rdma/sock/): a TCP connect from a container to one on
 * another host whose router has RDMA too is carried over an RC QP between
 * the two routers instead of a host TCP connection. Each app holds one end
 * of an AF_UNIX socketpair (a real kernel fd, as on one host); the routers
 * move its bytes between their ends and the QP. One QP pair per pair of
 * routers carries all their connections (internal.h has the protocol).
 * Depends on rdma/ (the device) and xhost/ (hosts, the ingress, the
 * TCP path it falls back to). */
#pragma once

#include "core.h"

struct ffr_rsock_config {
	const char *mode; /* "auto" (NULL): RDMA where both hosts have it; "off": TCP */
};

/* "auto" or "off"; -EINVAL otherwise. */
int ffr_rsock_mode_parse(const char *s);
/* Registers sockets over RDMA on r (after xhost and rdma). Without an RDMA
 * device or cluster part it registers nothing and returns 0. */
int ffr_rsock_attach(struct ffr_router *r, const struct ffr_rsock_config *cfg);
