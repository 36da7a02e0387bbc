/* Features and the request table: how the parts that depend on the core
 * (cross-host, RDMA, rdma_cm) plug into it without the core naming them.
 * Invariant: r->feats[0..nfeats) are registered in order and freed in
 * reverse; a feature is unregistered (nfeats lowered) right after its free
 * hook returns, so its own priv is still found while it frees it, and no
 * hook of it runs afterwards. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

int ffr_feature_add(struct ffr_router *r, const struct ffr_feature *f, void *priv)
{
	for (int i = 0; i < r->nfeats; i++)
		if (r->feats[i].f == f)
			return -EEXIST;
	if (r->nfeats == FFR_FEATURES_MAX)
		return -ENOSPC;
	r->feats[r->nfeats].f = f;
	r->feats[r->nfeats].priv = priv;
	return r->nfeats++;
}

void *ffr_feature_priv(const struct ffr_router *r, const struct ffr_feature *f)
{
	for (int i = 0; i < r->nfeats; i++)
		if (r->feats[i].f == f)
			return r->feats[i].priv;
	return NULL;
}

int ffr_ops_add(struct ffr_router *r, const struct ffr_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ops[i].body >= FFR_OPS_MAX || !ops[i].fn)
			return -EINVAL;
		if (r->ops[ops[i].body].fn)
			return -EEXIST;
		for (size_t j = 0; j < i; j++)
			if (ops[j].body == ops[i].body)
				return -EEXIST;
	}
	for (size_t i = 0; i < n; i++)
		r->ops[ops[i].body] = ops[i];
	return 0;
}

/* Iterates the registered features that have hook h: reg is the entry. */
#define EACH(r, reg, h)                                                                            \
	for (struct ffr_feature_reg *reg = (r)->feats; reg < (r)->feats + (r)->nfeats; reg++)      \
		if (reg->f->h)

void ffr_features_free(struct ffr_router *r)
{
	while (r->nfeats > 0) {
		struct ffr_feature_reg *reg = &r->feats[r->nfeats - 1];

		if (reg->f->free)
			reg->f->free(reg->priv);
		r->nfeats--;
	}
}

void ffr_features_container_free(struct ffr_container *c)
{
	EACH(c->r, reg, container_free)
		reg->f->container_free(reg->priv, c);
}

void ffr_features_chan_free(struct ffr_chan *ch)
{
	EACH(ch->r, reg, chan_free)
		reg->f->chan_free(reg->priv, ch);
}

int ffr_features_registered(struct ffr_container *c)
{
	EACH(c->r, reg, registered) {
		int err = reg->f->registered(reg->priv, c);

		if (err)
			return err;
	}
	return 0;
}

void ffr_features_unregistered(struct ffr_router *r, const char *name, bool remote)
{
	EACH(r, reg, unregistered)
		reg->f->unregistered(reg->priv, name, remote);
}

bool ffr_features_host_known(struct ffr_router *r, const char *host)
{
	EACH(r, reg, host_known)
		if (reg->f->host_known(reg->priv, host))
			return true;
	return false;
}

bool ffr_features_connect(struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
			  const struct ff_sa *src, const struct ff_sa *dst)
{
	EACH(ch->r, reg, connect)
		if (reg->f->connect(reg->priv, ch, id, t, src, dst))
			return true;
	return false;
}

void ffr_features_status(struct ffr_router *r, Ff__StatusReply *sr, void *mem[FFR_FEATURES_MAX])
{
	for (int i = 0; i < FFR_FEATURES_MAX; i++)
		mem[i] = NULL;
	EACH(r, reg, status)
		mem[reg - r->feats] = reg->f->status(reg->priv, sr);
}

void ffr_features_metrics(struct ffr_router *r, struct ffr_metrics *m)
{
	EACH(r, reg, metrics)
		reg->f->metrics(reg->priv, m);
}

bool ffr_features_hot(const struct ffr_router *r)
{
	for (int i = 0; i < r->nfeats; i++)
		if (r->feats[i].f->hot && r->feats[i].f->hot(r->feats[i].priv))
			return true;
	return false;
}

bool ffr_features_poll(struct ffr_router *r)
{
	bool more = false;

	EACH(r, reg, poll)
		more |= reg->f->poll(reg->priv);
	return more;
}
