/* rdma_cm (rdma/cm/): connection management for the verbs of rdma/, on
 * one host and, through the ingress of xhost/, across hosts. This header
 * is what other folders (the assembly) may use. rdma/cm depends on the
 * core, on rdma/ and on xhost/; neither of those names it. */
#pragma once

#include "core.h"

/* Registers rdma_cm on r, after the RDMA part (ffr_rdma_attach): its
 * request, its kind of ingress preamble and its part of the verbs status.
 * Without an RDMA device it refuses requests, as the router always has. */
int ffr_cm_attach(struct ffr_router *r);
