/* rdma_cm as a feature of the router: what it registers at start-up (its
 * request, its kind of ingress preamble, its part of the verbs status) and
 * its teardown. Invariant: once attached, ffr_cm_of(r) is this router's
 * struct ffr_cm until the router is freed. */
#include "internal.h"
#include "xhost.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>

#define STATUS_LISTENERS 64 /* listening ids listed in a verbs status */

static void cm_free(void *priv)
{
	struct ffr_cm *cm = priv;
	struct ffr_cmchan *ch;

	while ((ch = TAILQ_FIRST(&cm->chans)))
		ffr_cmchan_free(ch);
	free(cm);
}

/* Its channels' ids keep working until the app closes them. */
static void cm_container_free(void *priv, struct ffr_container *c)
{
	struct ffr_cm *cm = priv;
	struct ffr_cmchan *ch;

	TAILQ_FOREACH (ch, &cm->chans, link)
		if (ch->c == c)
			ch->c = NULL;
}

static void cm_metrics(void *priv, struct ffr_metrics *m)
{
	struct ffr_cm *cm = priv;

	ffr_metrics_family(m, "rdma_cm_connections_total", "counter",
			   "rdma_cm connections established");
	ffr_metrics_sample(m, cm->conns_total, NULL);
}

static const struct ffr_feature cm_feature = {
	.name = "rdma_cm",
	.free = cm_free,
	.container_free = cm_container_free,
	.metrics = cm_metrics,
};

static const struct ffr_op cm_ops[] = {
	{FF__REQUEST__BODY_RDMA_CM_OPEN, ffr_op_rdma_cm_open, 0, true, false},
};

struct ffr_cm *ffr_cm_of(const struct ffr_router *r)
{
	return ffr_feature_priv(r, &cm_feature);
}

struct status_part {
	Ff__VerbsCmListener lm[STATUS_LISTENERS], *lp[STATUS_LISTENERS];
	Ff__Addr la[STATUS_LISTENERS];
	uint8_t lb[STATUS_LISTENERS][16];
};

/* The listening ids and the connections made, for ffctl rdma. */
static void *cm_status(void *arg, Ff__VerbsStatusReply *m)
{
	struct ffr_cm *cm = arg;
	struct status_part *p = calloc(1, sizeof(*p));
	struct ffr_cmid *l;
	size_t n = 0;

	m->cm_conns_total = cm->conns_total;
	if (!p)
		return NULL;
	TAILQ_FOREACH (l, &cm->listens, llink) {
		if (n == STATUS_LISTENERS)
			break;
		ff__verbs_cm_listener__init(&p->lm[n]);
		p->lm[n].container = l->ch->name;
		ff_sa_to_proto(&l->local, &p->la[n], p->lb[n]);
		p->lm[n].addr = &p->la[n];
		p->lp[n] = &p->lm[n];
		n++;
	}
	m->n_cm_listeners = n;
	m->cm_listeners = p->lp;
	return p;
}

int ffr_cm_attach(struct ffr_router *r)
{
	struct ffr_cm *cm = calloc(1, sizeof(*cm));
	int err;

	if (!cm)
		return -ENOMEM;
	cm->r = r;
	cm->rd = ffr_rdma_of(r);
	TAILQ_INIT(&cm->chans);
	TAILQ_INIT(&cm->listens);
	err = ffr_feature_add(r, &cm_feature, cm);
	if (err < 0) {
		free(cm);
		return err;
	}
	/* from here on the router frees cm */
	err = ffr_ops_add(r, cm_ops, sizeof(cm_ops) / sizeof(cm_ops[0]));
	if (!err)
		err = ffr_ingress_handle(r, FFR_PREAMBLE_CM, ffr_cmx_incoming);
	if (!err && cm->rd)
		err = ffr_rdma_status_add(cm->rd, cm_status, cm);
	return err;
}
