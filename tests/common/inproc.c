/* In-process routers for unit tests of one module (inproc.h). */
#include "inproc.h"

#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_secret(const char *path, const char *secret)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, secret, strlen(secret));
	close(fd);
	return n == (ssize_t)strlen(secret) ? 0 : -EIO;
}

static int attach(struct ffr_router *r, const char *dir, const char *secret, bool rdma,
		  const struct ffr_ibv *ibv)
{
	/* no warm connections: tests that talk to a fake other router serve
	 * one connection at a time (test_warm makes routers with them) */
	struct ffr_xhost_config xc = {.warm_set = true, .warm_conns = 0};
	struct ffr_rdma_config rc = {.path = FFR_VPATH_RING};
	char path[PATH_MAX];
	int err = 0;

	if (secret) {
		snprintf(path, sizeof(path), "%s/secret", dir);
		err = write_secret(path, secret);
		xc.secret_file = path;
	}
	if (!err)
		err = ffr_xhost_attach(r, &xc);
	if (!err && (rdma || ibv))
		err = ffr_rdma_attach_ibv(r, &rc, ibv);
	if (!err && (rdma || ibv))
		err = ffr_cm_attach(r);
	return err;
}

struct ffr_router *ip_router_new(struct event_base *base, const char *host_id, const char *secret,
				 bool rdma, const struct ffr_ibv *ibv)
{
	struct ffr_config cfg = {
		.quota = {.channels = 64, .listeners = 64, .conns = 1024, .pending = 256},
		.host_id = host_id,
	};
	char dir[64] = "/tmp/ffunit.XXXXXX";
	struct ffr_router *r;
	int err;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return NULL;
	}
	cfg.rundir = dir;
	r = ffr_router_new(base, &cfg, &err);
	if (r)
		err = attach(r, dir, secret, rdma, ibv);
	if (err) {
		fprintf(stderr, "inproc router: %s\n", strerror(-err));
		ffr_router_free(r);
		fx_rmtree(dir);
		return NULL;
	}
	return r;
}

void ip_router_free(struct ffr_router *r)
{
	char dir[PATH_MAX];

	if (!r)
		return;
	snprintf(dir, sizeof(dir), "%s", r->rundir);
	ffr_router_free(r);
	fx_rmtree(dir);
}
