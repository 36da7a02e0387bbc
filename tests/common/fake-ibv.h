/* A fake RDMA device for unit tests of rdma/ (struct ffr_ibv): one device
 * "fake0", port 1 active, a RoCE v2 IPv4 GID (::ffff:FAKE_IBV_IP) at
 * index 1. Not soft-RoCE, so the router picks the ring data path. */
#pragma once

#include "rdma.h"

#define FAKE_IBV_NAME "fake0"
#define FAKE_IBV_IP {192, 0, 2, 1} /* TEST-NET-1: the host's RoCE address */

extern const struct ffr_ibv fake_ibv;
