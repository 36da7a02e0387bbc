/* The seccomp supervisor: what ffrouter.c may use. Programs the shim cannot
 * reach run under ffexec, whose keeper hands the router a seccomp listener
 * (Supervise); the router then answers their socket set-up calls with the
 * paths a shim gets. Everything else continues untouched. */
#pragma once

#include "core.h"

/* Registers the Supervise request and the feature's hooks. */
int ffr_unotify_attach(struct ffr_router *r);
