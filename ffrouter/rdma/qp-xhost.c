/* The QP check across hosts. On the verbs path an app names its peer QP by
 * number at modify_qp(RTR). qp.c checks a peer on this host (peer_ok); a
 * peer on another host only that host's router can check, so this router
 * asks it first, the way rdma_cm's two routers agree on QP numbers: a
 * sealed preamble carrying an XQpCheck (xhost's ffr_xask_start), one
 * MAC'd XReply back. Meanwhile the app's modify_qp waits, as a connect
 * waits for a connect reply: the QP stays in its state, the device sees
 * nothing, and the context reads no more requests until the answer, so
 * nothing the app sends can overtake it; the router's loop goes on. A
 * refusal, or an answer that fails its MAC, is EINVAL for the app; no
 * answer is EHOSTUNREACH (the other router is down or refuses the
 * connection) or ETIMEDOUT (silent past --xconnect-ms, below the shim's
 * wait).
 * The answering router applies peer_ok's rules across hosts: the QP is the
 * addressed container's and is connected to no QP but the asking one; the
 * source is a container of the asking host. It then cuts off its QPs still
 * connected to the asking QP, which chose another peer, as qp.c does for
 * QPs of one host; each side records its peer as (host, QP number).
 * Cost: a TCP connection to the other router and one round trip per RTR
 * towards another host (perftest makes one per QP); rdma_cm needs none,
 * its routers agree on the lifeline they open anyway.
 * The direct data path changes nothing here: the router makes every
 * modify_qp. (A program that bypasses the shim and speaks uverbs on the
 * context it holds can still point its own QP anywhere: README.)
 * Invariant: a context has at most one question out (x->ask), which holds
 * its own copy of the modify and goes with the context. */
#include "internal.h"
#include "xhost.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ffr_vqp_ask {
	struct ffr_vctx *x;
	struct ffr_vqp *q;
	uint64_t id; /* the modify_qp request */
	struct ffr_vqp_mod mod;
	struct ffr_xask *xa;
};

/* ---- the asking side ---- */

/* What the app's modify_qp returns for the answer (err, st). */
static int answer_errno(const struct ffr_vqp_ask *k, int err, Ff__Status st, const char *why)
{
	const struct ffr_vctx *x = k->x;

	if (!err && st == FF__STATUS__ST_OK)
		return 0;
	if (!err || err == -EACCES || err == -EBADMSG) {
		ff_warn("verbs %s: QP %u may not connect to QP %u of host %s: %s", x->name,
			k->q->qpn, k->mod.a.dest_qp_num, k->mod.peer_host, why);
		return -EINVAL;
	}
	ff_warn("verbs %s: QP %u to QP %u of host %s: no answer from its router: %s", x->name,
		k->q->qpn, k->mod.a.dest_qp_num, k->mod.peer_host, why);
	return err == -ETIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH;
}

static void answered(void *arg, int err, Ff__Status st, const char *why)
{
	struct ffr_vqp_ask *k = arg;
	struct ffr_vctx *x = k->x;

	x->ask = NULL;
	err = answer_errno(k, err, st, why);
	if (!err)
		err = ffr_vqp_apply(k->q, &k->mod);
	ffr_vreply_status(x, k->id, err, err ? "modify_qp: %s" : NULL, strerror(-err));
	free(k);
	if (!err)
		ffr_vctx_run(x);
	ffr_vctx_resume(x);
}

/* The container's address to speak for it with, of fam if it has one. */
static const struct ff_ip *src_ip(const struct ffr_container *c, int fam)
{
	const struct ff_ip *ip = c ? ffr_container_ip(c, fam) : NULL;

	return ip ? ip : c && c->nips ? &c->ips[0] : NULL;
}

int ffr_vqp_ask(struct ffr_vqp *q, uint64_t id, const struct ffr_vqp_mod *m)
{
	struct ffr_vctx *x = q->o.x;
	Ff__XPreamble p = FF__XPREAMBLE__INIT;
	Ff__XQpCheck qc = FF__XQP_CHECK__INIT;
	const struct ff_ip *ip = src_ip(x->c, m->peer_ip.family);
	struct ff_sa s = {.port = 0}, d = {.ip = m->peer_ip, .port = 0};
	Ff__Addr sm, dm;
	uint8_t sb[16], db[16];
	struct ffr_vqp_ask *k;
	int err;

	if (!ip) { /* unregistered: it speaks for no container any more */
		ff_warn("verbs %s: QP %u to host %s: the container is gone", x->name, q->qpn,
			m->peer_host);
		return -EHOSTUNREACH;
	}
	s.ip = *ip;
	ff_sa_to_proto(&s, &sm, sb);
	ff_sa_to_proto(&d, &dm, db);
	p.src_container = x->name;
	p.src = &sm;
	p.dst = &dm;
	qc.qpn = q->qpn;
	qc.dest_qpn = m->a.dest_qp_num;
	p.qp = &qc;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->x = x;
	k->q = q;
	k->id = id;
	k->mod = *m;
	err = ffr_xask_start(x->rd->r, m->peer_host, &p, answered, k, &k->xa);
	if (err) {
		ff_warn("verbs %s: QP %u to QP %u of host %s: its router cannot be asked: %s",
			x->name, q->qpn, qc.dest_qpn, m->peer_host,
			err == -ENOKEY ? "no cluster secret, cross-host is off" : strerror(-err));
		free(k);
		return -EHOSTUNREACH;
	}
	x->ask = k;
	ff_dbg("verbs %s: QP %u to QP %u of host %s: asking its router", x->name, q->qpn,
	       qc.dest_qpn, m->peer_host);
	return 0;
}

void ffr_vqp_ask_cancel(struct ffr_vctx *x)
{
	if (!x->ask)
		return;
	ffr_xask_cancel(x->ask->xa);
	free(x->ask);
	x->ask = NULL;
}

/* ---- the answering side ---- */

/* Why QP p->qp->qpn of the sending host may not talk to QP p->qp->dest_qpn
 * here (NULL: it may, *out is that QP); *st: the answer. */
static const char *check(struct ffr_router *r, const Ff__XPreamble *p, Ff__Status *st,
			 struct ffr_vqp **out)
{
	struct ffr_rdma *rd = ffr_rdma_of(r);
	struct ffr_container *s = NULL, *t = NULL;
	struct ff_sa src, dst;
	struct ffr_vqp *d;

	*st = FF__STATUS__ST_REFUSED;
	if (!rd) {
		*st = FF__STATUS__ST_UNSUPPORTED;
		return "no RDMA device on this host";
	}
	if (ff_sa_from_proto(&src, p->src) == 0)
		s = ffr_container_by_ip(r, &src.ip);
	if (ff_sa_from_proto(&dst, p->dst) == 0)
		t = ffr_container_by_ip(r, &dst.ip);
	if (!s || !s->remote || strcmp(s->host, p->src_host) != 0) {
		*st = FF__STATUS__ST_PERM;
		return "its source is not a container of the sending host";
	}
	if (!t || t->remote)
		return "no such container on this host";
	d = ffr_vqp_by_num(rd, p->qp->dest_qpn);
	if (!d || d->o.x->c != t)
		return "no such QP of that container";
	if (d->connected && (strcmp(d->dest_host, p->src_host) != 0 || d->dest_qpn != p->qp->qpn))
		return "that QP is connected to another";
	*st = FF__STATUS__ST_OK;
	*out = d;
	return NULL;
}

void ffr_vqp_check_incoming(struct ffr_router *r, Ff__XPreamble *p, int fd, const uint8_t *tag)
{
	Ff__Status st;
	struct ffr_vqp *d = NULL;
	const char *why = check(r, p, &st, &d);
	char who[FFR_NAME_MAX + 32];

	if (why) {
		ff_info("verbs: QP %u of %.63s@%.63s may not connect to QP %u here: %s", p->qp->qpn,
			p->src_container, p->src_host, p->qp->dest_qpn, why);
	} else {
		/* the asking QP now talks to d: none of ours it talked to before */
		snprintf(who, sizeof(who), "QP %u of %s", d->qpn, d->o.x->name);
		ffr_vqp_cut_off(d->o.x->rd, p->src_host, p->qp->qpn, d, who);
		ff_dbg("verbs: QP %u of %s@%s may connect to QP %u of %s", p->qp->qpn,
		       p->src_container, p->src_host, d->qpn, d->o.x->name);
	}
	ffr_xreply_send(r, fd, tag, st, why);
	close(fd);
	ff__xpreamble__free_unpacked(p, NULL);
}
