/* VerbsStatus for ffctl: the RDMA device and, per verbs context, what it
 * holds in the router. Read-only; one reply (a listing longer than a
 * datagram is cut at FF_REPLY_MAX and says so). The same numbers, summed
 * over the contexts, for the metrics endpoint. */
#include "internal.h"

#include "log.h"
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CTXS 64
#define MAX_QPS_PER_CTX 16

struct status_piece {
	Ff__VerbsStatusReply m;
	Ff__VerbsCtxInfo cm[MAX_CTXS], *cp[MAX_CTXS];
	Ff__VerbsQpInfo qm[MAX_CTXS][MAX_QPS_PER_CTX], *qp[MAX_CTXS][MAX_QPS_PER_CTX];
};

static uint32_t count(const struct ffr_vctx *x, uint32_t kind)
{
	const struct ffr_vobj *o;
	uint32_t n = 0;

	TAILQ_FOREACH (o, &x->objs[kind], link)
		n++;
	return n;
}

static void ctx_info(const struct ffr_vctx *x, Ff__VerbsCtxInfo *m, Ff__VerbsQpInfo *qm,
		     Ff__VerbsQpInfo **qp)
{
	const struct ffr_vobj *o;
	size_t n = 0;

	ff__verbs_ctx_info__init(m);
	m->container = (char *)x->name;
	m->pid = (uint32_t)x->pid;
	m->pds = count(x, FF_VOBJ_PD);
	m->mrs = count(x, FF_VOBJ_MR);
	m->cqs = count(x, FF_VOBJ_CQ);
	m->qps = count(x, FF_VOBJ_QP);
	m->srqs = count(x, FF_VOBJ_SRQ);
	m->channels = count(x, FF_VOBJ_CHANNEL);
	m->memfds = x->use.mems;
	m->memfd_bytes = x->use.mem_bytes;
	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_MR], link)
		m->mr_bytes += ((const struct ffr_vmr *)o)->len;
	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_CQ], link)
		m->completions += ((const struct ffr_vcq *)o)->cqes;
	TAILQ_FOREACH (o, &x->objs[FF_VOBJ_QP], link) {
		const struct ffr_vqp *q = (const struct ffr_vqp *)o;

		if (n == MAX_QPS_PER_CTX)
			break;
		ff__verbs_qp_info__init(&qm[n]);
		qm[n].qp_num = q->qpn;
		qm[n].state = q->state;
		qm[n].posted = q->posted;
		qp[n] = &qm[n];
		n++;
	}
	m->n_qp = n;
	m->qp = qp;
}

void ffr_op_verbs_status(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_rdma *rd = ffr_rdma_of(ch->r);
	struct status_piece *p = calloc(1, sizeof(*p));
	Ff__Reply rep = FF__REPLY__INIT;
	void *part = NULL;
	struct ffr_vctx *x;
	size_t n = 0;

	if (!p) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INTERNAL, "out of memory");
		return;
	}
	ff__verbs_status_reply__init(&p->m);
	if (rd) {
		p->m.device = rd->devname;
		p->m.virtual_device = (char *)FFR_VDEV_NAME;
		p->m.data_path = (char *)(rd->direct ? "direct" : "ring");
		p->m.contexts_total = rd->ctxs_total;
		p->m.bad_wqes = rd->bad_wqes;
		if (rd->status_fn)
			part = rd->status_fn(rd->status_arg, &p->m);
		TAILQ_FOREACH (x, &rd->ctxs, link) {
			if (n == MAX_CTXS)
				break;
			ctx_info(x, &p->cm[n], p->qm[n], p->qp[n]);
			p->cp[n] = &p->cm[n];
			n++;
		}
	}
	p->m.n_ctxs = n;
	p->m.ctxs = p->cp;
	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_VERBS_STATUS;
	rep.verbs_status = &p->m;
	ffr_reply(ch, &rep, NULL, 0);
	free(part);
	free(p);
}

void ffr_rdma_metrics(void *priv, struct ffr_metrics *m)
{
	static const char *const kinds[] = {
		[FF_VOBJ_PD] = "pd",   [FF_VOBJ_MR] = "mr",   [FF_VOBJ_CQ] = "cq",
		[FF_VOBJ_QP] = "qp",   [FF_VOBJ_SRQ] = "srq", [FF_VOBJ_CHANNEL] = "channel",
	};
	uint64_t objs[FF_VOBJ_CHANNEL + 1] = {0}, mr_bytes = 0, mem_bytes = 0;
	struct ffr_rdma *rd = priv;
	const struct ffr_vctx *x;
	const struct ffr_vobj *o;

	if (!rd)
		return;
	TAILQ_FOREACH (x, &rd->ctxs, link) {
		for (uint32_t k = FF_VOBJ_PD; k <= FF_VOBJ_CHANNEL; k++)
			objs[k] += count(x, k);
		TAILQ_FOREACH (o, &x->objs[FF_VOBJ_MR], link)
			mr_bytes += ((const struct ffr_vmr *)o)->len;
		mem_bytes += x->use.mem_bytes;
	}
	ffr_metrics_family(m, "rdma_device_info", "gauge", "the RDMA device and its data path");
	ffr_metrics_sample(m, 1, "device", rd->devname, "data_path", rd->direct ? "direct" : "ring",
			   NULL);
	ffr_metrics_family(m, "rdma_contexts", "gauge", "verbs contexts open (one per app process)");
	ffr_metrics_sample(m, rd->nctxs, NULL);
	ffr_metrics_family(m, "rdma_contexts_total", "counter", "verbs contexts opened");
	ffr_metrics_sample(m, rd->ctxs_total, NULL);
	ffr_metrics_family(m, "rdma_bad_wqes_total", "counter", "work requests refused");
	ffr_metrics_sample(m, rd->bad_wqes, NULL);
	ffr_metrics_family(m, "rdma_objects", "gauge", "verbs objects the router holds, by kind");
	for (uint32_t k = FF_VOBJ_PD; k <= FF_VOBJ_CHANNEL; k++)
		ffr_metrics_sample(m, objs[k], "kind", kinds[k], NULL);
	ffr_metrics_family(m, "rdma_mr_bytes", "gauge", "bytes of registered memory regions");
	ffr_metrics_sample(m, mr_bytes, NULL);
	ffr_metrics_family(m, "rdma_memfd_bytes", "gauge", "bytes of app memory mapped from memfds");
	ffr_metrics_sample(m, mem_bytes, NULL);
}
