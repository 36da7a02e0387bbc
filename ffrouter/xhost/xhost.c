/* The cluster part as a feature of the router: what it registers with the
 * core at start-up, and its teardown. Invariant: once attached, ffr_xh(r)
 * is this router's struct ffr_xhost until the router is freed. */
#include "internal.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XCONNECT_MS 3000
#define PREAMBLE_MS 5000
#define INGRESS_PENDING 4096
/* above the ingress's accept batch (64) several times over: a burst of
 * connects from one host is accepted in batches before the preambles that
 * follow them are read */
#define INGRESS_PER_SOURCE 256

static void xhost_free(void *priv)
{
	struct ffr_xhost *xh = priv;
	struct ffr_router *r = xh->r;
	struct ffr_host *h;

	ffr_etcd_close(r);
	ffr_xconn_free_all(r);
	ffr_ingress_close(r);
	while ((h = TAILQ_FIRST(&xh->hosts)))
		ffr_host_free(r, h);
	ffr_nonces_free();
	sodium_free(xh->keys);
	free(xh->state);
	free(xh);
}

/* A registration is kept (state file) before it is answered, then shared. */
static int xhost_registered(void *priv, struct ffr_container *c)
{
	struct ffr_xhost *xh = priv;
	int err = ffr_state_save(xh->r);

	if (!err)
		ffr_etcd_put_container(xh->r, c);
	return err;
}

static void xhost_unregistered(void *priv, const char *name, bool remote)
{
	struct ffr_xhost *xh = priv;

	if (!remote)
		ffr_etcd_delete_container(xh->r, name);
	ffr_state_save(xh->r);
}

static bool xhost_host_known(void *priv, const char *host)
{
	struct ffr_xhost *xh = priv;

	return ffr_host_find(xh->r, host) != NULL;
}

const struct ffr_feature ffr_xhost_feature = {
	.name = "xhost",
	.free = xhost_free,
	.chan_free = ffr_xconn_cancel_chan,
	.registered = xhost_registered,
	.unregistered = xhost_unregistered,
	.host_known = xhost_host_known,
	.connect = ffr_xconn_start,
	.status = ffr_xhost_status,
	.metrics = ffr_xhost_metrics,
};

const char *ffr_xhost_state(const struct ffr_router *r)
{
	struct ffr_xhost *xh = ffr_xh(r);

	return xh ? xh->state : NULL;
}

int ffr_xconnect_ms(const struct ffr_router *r)
{
	struct ffr_xhost *xh = ffr_xh(r);

	return xh ? xh->xconnect_ms : XCONNECT_MS;
}

bool ffr_xhost_sealed(const struct ffr_router *r)
{
	struct ffr_xhost *xh = ffr_xh(r);

	return xh && xh->keys;
}

const struct ffr_xhost_stats *ffr_xhost_stats(const struct ffr_router *r)
{
	struct ffr_xhost *xh = ffr_xh(r);

	return xh ? &xh->stats : NULL;
}

bool ffr_ratelog(struct ffr_ratelog *rl)
{
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (rl->last_ms && now - rl->last_ms < 1000) {
		rl->quiet++;
		return false;
	}
	rl->more[0] = '\0';
	if (rl->quiet)
		snprintf(rl->more, sizeof(rl->more), " (and %" PRIu64 " more since the last such line)",
			 rl->quiet);
	rl->quiet = 0;
	rl->last_ms = now;
	return true;
}

/* Where connects to other routers leave from: the address this host has
 * in their maps, when it is a specific one. */
static void xhost_source(struct ffr_xhost *xh, const struct ffr_xhost_config *cfg)
{
	const char *s = cfg->advertise ? cfg->advertise : cfg->ingress;
	struct ff_sa a;

	if (s && ff_sa_parse(s, &a, 0) == 0 && !ff_ip_is_any(&a.ip)) {
		xh->src = a;
		xh->src.port = 0;
	}
}

static struct ffr_xhost *xhost_new(struct ffr_router *r, const struct ffr_xhost_config *cfg)
{
	struct ffr_xhost *xh = calloc(1, sizeof(*xh));
	char path[PATH_MAX];

	if (!xh)
		return NULL;
	xh->addr_check = !cfg->addr_check || !strcmp(cfg->addr_check, "on");
	xhost_source(xh, cfg);
	xh->r = r;
	xh->ifd = -1;
	xh->xconnect_ms = cfg->xconnect_ms > 0 ? cfg->xconnect_ms : XCONNECT_MS;
	xh->preamble_ms = cfg->preamble_ms > 0 ? cfg->preamble_ms : PREAMBLE_MS;
	xh->max_pending = cfg->ingress_pending ? cfg->ingress_pending : INGRESS_PENDING;
	xh->max_per_source = cfg->ingress_per_source ? cfg->ingress_per_source : INGRESS_PER_SOURCE;
	TAILQ_INIT(&xh->hosts);
	TAILQ_INIT(&xh->publishes);
	TAILQ_INIT(&xh->xconns);
	TAILQ_INIT(&xh->ingresses);
	TAILQ_INIT(&xh->warms);
	xh->warm_max = cfg->warm_set ? cfg->warm_conns : FFR_WARM_CONNS;
	if (cfg->state)
		xh->state = strdup(cfg->state);
	else if (snprintf(path, sizeof(path), "%s/state", r->rundir) < (int)sizeof(path))
		xh->state = strdup(path);
	if (!xh->state) {
		free(xh);
		return NULL;
	}
	return xh;
}

/* The cluster secret, if there is one. */
static int xhost_secret(struct ffr_xhost *xh, const struct ffr_xhost_config *cfg)
{
	int err;

	if (!cfg->secret_file) {
		if (cfg->ingress)
			ff_warn("no --secret-file: other routers cannot authenticate, cross-host is off");
		return 0;
	}
	err = ffr_read_secret(xh, cfg->secret_file);
	if (err && err != -EPERM && err != -EINVAL)
		ff_err("cannot read the secret file %s: %s", cfg->secret_file, strerror(-err));
	return err;
}

int ffr_xhost_attach(struct ffr_router *r, const struct ffr_xhost_config *cfg)
{
	struct ffr_xhost *xh;
	int err;

	if (cfg->addr_check && strcmp(cfg->addr_check, "on") && strcmp(cfg->addr_check, "off")) {
		ff_err("--addr-check: on or off, not '%s'", cfg->addr_check);
		return -EINVAL;
	}
	xh = xhost_new(r, cfg);
	if (!xh)
		return -ENOMEM;
	err = ffr_feature_add(r, &ffr_xhost_feature, xh);
	if (err < 0) {
		free(xh->state);
		free(xh);
		return err;
	}
	/* from here on the router frees xh */
	err = ffr_outside_init(xh, cfg);
	if (!err)
		err = ffr_ops_add(r, ffr_xhost_ops, ffr_xhost_nops);
	if (!err)
		err = xhost_secret(xh, cfg);
	if (!err)
		err = ffr_state_load(r);
	if (!err)
		err = ffr_map_publish(r);
	if (!err && cfg->ingress) {
		err = ffr_ingress_open(r, cfg->ingress);
		if (err)
			ff_err("cannot listen for other routers on %s: %s", cfg->ingress,
			       strerror(-err));
	}
	if (!err && cfg->store)
		err = ffr_etcd_open(r, cfg->store, cfg->advertise ? cfg->advertise : cfg->ingress);
	return err;
}
