/* The physical RDMA device: loading libibverbs, choosing the device and
 * its RoCE v2 GID, the virtual device containers see, and the virtual GIDs
 * that stand for overlay addresses; verbs as a feature of the router.
 * Invariant: ffr_rdma_of(r) is non-NULL only with an open device whose
 * port has an IPv4 RoCE v2 GID. */
#include "internal.h"
#include "xhost.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VGUID_PREFIX 0x0266666eULL /* 02 'f' 'f' 'n': locally administered */

static const struct ffr_rdma_quota default_quota = {
	.ctxs = 64, .pds = 256, .mrs = 4096, .cqs = 1024, .qps = 1024, .srqs = 256,
	.chans = 256, .mems = 4096, .mem_bytes = 4ULL << 30,
};

/* The exported ibv_query_port takes the pre-1.1 struct; a provider's own
 * op takes the whole one. */
static int dl_query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr)
{
	struct verbs_context *vctx = verbs_get_ctx_op(ctx, query_port);
	int (*old)(struct ibv_context *, uint8_t, struct ibv_port_attr *);

	if (vctx)
		return vctx->query_port(ctx, port, attr, sizeof(*attr));
	memset(attr, 0, sizeof(*attr));
	*(void **)&old = dlsym(RTLD_DEFAULT, "ibv_query_port");
	return old ? old(ctx, port, attr) : EOPNOTSUPP;
}

static struct ffr_ibv dl_ibv;

static int load_ibv(void **dlp)
{
	void *dl = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
	bool ok = true;

	if (!dl)
		return -ENOENT;
#define SYM(f, name)                                                                               \
	do {                                                                                       \
		*(void **)&dl_ibv.f = dlsym(dl, name);                                             \
		ok = ok && dl_ibv.f;                                                               \
	} while (0)
	SYM(get_device_list, "ibv_get_device_list");
	SYM(free_device_list, "ibv_free_device_list");
	SYM(get_device_name, "ibv_get_device_name");
	SYM(open_device, "ibv_open_device");
	SYM(close_device, "ibv_close_device");
	SYM(query_device, "ibv_query_device");
	SYM(query_gid, "ibv_query_gid");
	SYM(query_gid_ex, "_ibv_query_gid_ex");
	SYM(alloc_pd, "ibv_alloc_pd");
	SYM(dealloc_pd, "ibv_dealloc_pd");
	SYM(reg_mr_iova2, "ibv_reg_mr_iova2");
	SYM(dereg_mr, "ibv_dereg_mr");
	SYM(create_comp_channel, "ibv_create_comp_channel");
	SYM(destroy_comp_channel, "ibv_destroy_comp_channel");
	SYM(create_cq, "ibv_create_cq");
	SYM(destroy_cq, "ibv_destroy_cq");
	SYM(get_cq_event, "ibv_get_cq_event");
	SYM(ack_cq_events, "ibv_ack_cq_events");
	SYM(create_qp, "ibv_create_qp");
	SYM(modify_qp, "ibv_modify_qp");
	SYM(query_qp, "ibv_query_qp");
	SYM(destroy_qp, "ibv_destroy_qp");
	SYM(create_srq, "ibv_create_srq");
	SYM(modify_srq, "ibv_modify_srq");
	SYM(query_srq, "ibv_query_srq");
	SYM(destroy_srq, "ibv_destroy_srq");
	SYM(get_async_event, "ibv_get_async_event");
	SYM(ack_async_event, "ibv_ack_async_event");
#undef SYM
	dl_ibv.query_port = dl_query_port;
	if (!ok) {
		dlclose(dl);
		return -ENOSYS;
	}
	*dlp = dl;
	return 0;
}

static bool gid_is_v4(const uint8_t *g)
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return !memcmp(g, pfx, sizeof(pfx));
}

/* The first IPv4-mapped RoCE v2 GID of the port. */
static int pick_gid(struct ffr_rdma *rd, int tbl_len)
{
	for (int i = 0; i < tbl_len; i++) {
		struct ibv_gid_entry e;

		if (rd->ibv->query_gid_ex(rd->probe, rd->port, (uint32_t)i, &e, 0, sizeof(e)))
			continue;
		if (e.gid_type == IBV_GID_TYPE_ROCE_V2 && gid_is_v4(e.gid.raw)) {
			rd->gid_index = i;
			rd->gid = e.gid;
			return 0;
		}
	}
	return -EADDRNOTAVAIL;
}

static struct ibv_device *find_dev(struct ffr_rdma *rd, const char *name)
{
	for (int i = 0; rd->list && rd->list[i]; i++)
		if (!name || !strcmp(rd->ibv->get_device_name(rd->list[i]), name))
			return rd->list[i];
	return NULL;
}

static int open_dev(struct ffr_rdma *rd, const char *name)
{
	struct ibv_port_attr pa;
	int n = 0;

	rd->list = rd->ibv->get_device_list(&n);
	rd->dev = find_dev(rd, name);
	if (!rd->dev)
		return -ENODEV;
	snprintf(rd->devname, sizeof(rd->devname), "%s", rd->ibv->get_device_name(rd->dev));
	rd->probe = rd->ibv->open_device(rd->dev);
	if (!rd->probe)
		return -errno;
	rd->port = 1;
	if (rd->ibv->query_device(rd->probe, &rd->dattr) ||
	    rd->ibv->query_port(rd->probe, rd->port, &pa))
		return -EIO;
	rd->active_mtu = pa.active_mtu;
	return pick_gid(rd, pa.gid_tbl_len);
}

static void rdma_free(void *priv)
{
	struct ffr_rdma *rd = priv;
	struct ffr_container *c;
	struct ffr_vctx *x;

	if (!rd)
		return;
	while ((x = TAILQ_FIRST(&rd->ctxs)))
		ffr_vctx_free(x);
	if (rd->r)
		TAILQ_FOREACH (c, &rd->r->containers, link) {
			free(c->ext[rd->slot]);
			c->ext[rd->slot] = NULL;
		}
	if (rd->probe)
		rd->ibv->close_device(rd->probe);
	if (rd->list)
		rd->ibv->free_device_list(rd->list);
	if (rd->dl)
		dlclose(rd->dl);
	free(rd);
}

/* Like its established connections, an unregistered container's verbs
 * objects keep working until the app closes them; it can create no more. */
static void rdma_container_free(void *priv, struct ffr_container *c)
{
	struct ffr_rdma *rd = priv;
	struct ffr_vctx *x;

	if (!rd)
		return;
	TAILQ_FOREACH (x, &rd->ctxs, link)
		if (x->c == c)
			x->c = NULL;
	free(c->ext[rd->slot]);
	c->ext[rd->slot] = NULL;
}

static const struct ffr_feature rdma_feature = {
	.name = "rdma",
	.free = rdma_free,
	.container_free = rdma_container_free,
	.hot = ffr_rdma_hot,
	.poll = ffr_rdma_poll,
	.metrics = ffr_rdma_metrics,
};

static void op_verbs_open(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds);

static const struct ffr_op rdma_ops[] = {
	{FF__REQUEST__BODY_VERBS_OPEN, op_verbs_open, 0, true, false},
	{FF__REQUEST__BODY_VERBS_STATUS, ffr_op_verbs_status, 0, false, true},
};

struct ffr_rdma *ffr_rdma_of(const struct ffr_router *r)
{
	return ffr_feature_priv(r, &rdma_feature);
}

/* Opens the device; NULL (and *err) without one. */
static struct ffr_rdma *rdma_open(struct ffr_router *r, const struct ffr_rdma_config *cfg,
				  const struct ffr_ibv *ibv, int *err)
{
	struct ffr_rdma *rd = calloc(1, sizeof(*rd));

	*err = -ENOMEM;
	if (!rd)
		return NULL;
	rd->r = r;
	rd->ibv = ibv;
	rd->quota = default_quota;
	rd->poll_ns = (uint64_t)cfg->poll_us * 1000u;
	TAILQ_INIT(&rd->ctxs);
	*err = open_dev(rd, cfg->dev);
	if (*err) {
		if (cfg->dev || *err != -ENODEV)
			ff_warn("RDMA device %s: %s; running without RDMA",
				cfg->dev ? cfg->dev : "(first)", strerror(-*err));
		rd->r = NULL;
		rdma_free(rd);
		return NULL;
	}
	ff_info("RDMA: %s port %u, GID index %d; containers see %s", rd->devname, rd->port,
		rd->gid_index, FFR_VDEV_NAME);
	return rd;
}

int ffr_rdma_attach_ibv(struct ffr_router *r, const struct ffr_rdma_config *cfg,
			const struct ffr_ibv *ibv)
{
	struct ffr_rdma *rd = NULL;
	int slot, err = 0;

	if (ibv)
		rd = rdma_open(r, cfg, ibv, &err);
	if (!rd && cfg->dev && err == -ENODEV)
		return err;
	slot = ffr_feature_add(r, &rdma_feature, rd);
	if (slot < 0) {
		rdma_free(rd);
		return slot;
	}
	/* from here on the router frees rd */
	if (rd)
		rd->slot = slot;
	err = ffr_ops_add(r, rdma_ops, sizeof(rdma_ops) / sizeof(rdma_ops[0]));
	if (!err)
		err = ffr_ingress_handle(r, FFR_PREAMBLE_QP, ffr_vqp_check_incoming);
	if (!err && rd)
		err = ffr_rdma_set_path(rd, cfg->path);
	return err;
}

int ffr_rdma_attach(struct ffr_router *r, const struct ffr_rdma_config *cfg)
{
	struct ffr_rdma *rd;
	void *dl = NULL;
	int err;

	if (cfg->dev && !strcmp(cfg->dev, "none"))
		return ffr_rdma_attach_ibv(r, cfg, NULL);
	if (load_ibv(&dl) < 0) {
		if (cfg->dev) {
			ff_warn("RDMA device %s: no usable libibverbs.so.1", cfg->dev);
			return -ENOENT;
		}
		return ffr_rdma_attach_ibv(r, cfg, NULL);
	}
	err = ffr_rdma_attach_ibv(r, cfg, &dl_ibv);
	rd = ffr_rdma_of(r);
	if (rd)
		rd->dl = dl;
	else
		dlclose(dl);
	return err;
}

int ffr_rdma_status_add(struct ffr_rdma *rd, ffr_rdma_status_fn fn, void *arg)
{
	if (rd->status_fn)
		return -EEXIST;
	rd->status_fn = fn;
	rd->status_arg = arg;
	return 0;
}

/* ---- virtual GIDs ---- */

static void gid_v4mapped(uint8_t g[16], const uint8_t ip[4])
{
	memset(g, 0, 16);
	g[10] = g[11] = 0xff;
	memcpy(g + 12, ip, 4);
}

/* fe80::ff:a.b.c.d, the link-local stand-in of an IPv4 overlay address */
static void gid_v4local(uint8_t g[16], const uint8_t ip[4])
{
	memset(g, 0, 16);
	g[0] = 0xfe;
	g[1] = 0x80;
	g[11] = 0xff;
	memcpy(g + 12, ip, 4);
}

int ffr_vgids(const struct ffr_container *c, uint8_t gids[][16], int max)
{
	const struct ff_ip *v4 = ffr_container_ip(c, AF_INET);
	int n = 0;

	if (v4 && max >= 2) {
		gid_v4local(gids[n++], v4->ip);
		gid_v4mapped(gids[n++], v4->ip);
	}
	for (int i = 0; i < c->nips && n < max; i++)
		if (c->ips[i].family == AF_INET6)
			memcpy(gids[n++], c->ips[i].ip, 16);
	return n;
}

int ffr_vgid_ip(const uint8_t gid[16], struct ff_ip *ip)
{
	static const uint8_t ll[12] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff};

	memset(ip, 0, sizeof(*ip));
	if (gid_is_v4(gid) || !memcmp(gid, ll, sizeof(ll))) {
		ip->family = AF_INET;
		memcpy(ip->ip, gid + 12, 4);
	} else {
		ip->family = AF_INET6;
		memcpy(ip->ip, gid, 16);
	}
	return ff_ip_is_unicast(ip) ? 0 : -EINVAL;
}

/* A container here: this device. On another host: the RoCE v2 GID of
 * that host's router address, if the locality map says it has RDMA. */
int ffr_rdma_peer_gid(struct ffr_rdma *rd, const struct ffr_container *t, union ibv_gid *gid)
{
	const struct ffr_host *h;

	if (!t->remote) {
		*gid = rd->gid;
		return 0;
	}
	h = ffr_host_find(rd->r, t->host);
	return ffr_rdma_host_gid(rd, h, gid);
}

int ffr_rdma_host_gid(struct ffr_rdma *rd, const struct ffr_host *h, union ibv_gid *gid)
{
	if (!h || !h->rdma || h->addr.ip.family != AF_INET)
		return -EHOSTUNREACH;
	gid_v4mapped(gid->raw, h->addr.ip.ip);
	return 0;
}

/* ---- the virtual device ---- */

static uint64_t vguid(const struct ffr_container *c)
{
	const struct ff_ip *ip = ffr_container_ip(c, AF_INET);
	uint32_t low = 0;

	if (!ip)
		ip = &c->ips[0];
	for (int i = 0; i < 4; i++)
		low = low << 8 | ip->ip[ip->family == AF_INET ? i : 12 + i];
	return VGUID_PREFIX << 32 | low;
}

/* What a container may see of the device: its own GUID, neutral vendor
 * ids (so no program takes a vendor-specific path), one port, and limits
 * within the container's quota. */
static void vdev_attr(const struct ffr_rdma *rd, const struct ffr_container *c,
		      struct ibv_device_attr *a)
{
	*a = rd->dattr;
	snprintf(a->fw_ver, sizeof(a->fw_ver), "ffnet %s", FF_VERSION);
	a->node_guid = htobe64(vguid(c));
	a->sys_image_guid = a->node_guid;
	a->vendor_id = 0;
	a->vendor_part_id = 0;
	a->hw_ver = 0;
	a->phys_port_cnt = 1;
	a->max_pkeys = 1;
	a->max_qp = (int)rd->quota.qps < a->max_qp ? (int)rd->quota.qps : a->max_qp;
	a->max_cq = (int)rd->quota.cqs < a->max_cq ? (int)rd->quota.cqs : a->max_cq;
	a->max_mr = (int)rd->quota.mrs < a->max_mr ? (int)rd->quota.mrs : a->max_mr;
	a->max_pd = (int)rd->quota.pds < a->max_pd ? (int)rd->quota.pds : a->max_pd;
	a->max_srq = (int)rd->quota.srqs < a->max_srq ? (int)rd->quota.srqs : a->max_srq;
	a->max_qp_wr = a->max_qp_wr > (int)FF_VRING_MAX_WR ? (int)FF_VRING_MAX_WR : a->max_qp_wr;
	a->max_srq_wr = a->max_srq_wr > (int)FF_VRING_MAX_WR ? (int)FF_VRING_MAX_WR : a->max_srq_wr;
	a->max_sge = a->max_sge > (int)FF_VRING_MAX_SGE ? (int)FF_VRING_MAX_SGE : a->max_sge;
	a->max_srq_sge = a->max_srq_sge > (int)FF_VRING_MAX_SGE ? (int)FF_VRING_MAX_SGE
								 : a->max_srq_sge;
	a->max_cqe = a->max_cqe > (int)FF_VRING_MAX_CQE - 1 ? (int)FF_VRING_MAX_CQE - 1 : a->max_cqe;
	a->max_ah = 0;
	a->max_mw = 0;
	a->max_mcast_grp = a->max_mcast_qp_attach = a->max_total_mcast_qp_attach = 0;
	/* no SRQ resize: an SRQ's ring is sized once (ibv_modify_srq with
	 * IBV_SRQ_MAX_WR fails with EOPNOTSUPP) */
	a->device_cap_flags &= IBV_DEVICE_RC_RNR_NAK_GEN | IBV_DEVICE_SHUTDOWN_PORT |
			       IBV_DEVICE_PORT_ACTIVE_EVENT | IBV_DEVICE_SYS_IMAGE_GUID;
}

static void vport_attr(struct ffr_rdma *rd, int ngids, struct ibv_port_attr *p)
{
	if (rd->ibv->query_port(rd->probe, rd->port, p))
		memset(p, 0, sizeof(*p));
	p->gid_tbl_len = ngids;
	p->pkey_tbl_len = 1;
	p->lid = p->sm_lid = 0;
	p->lmc = 0;
	p->link_layer = IBV_LINK_LAYER_ETHERNET;
}

struct open_reply {
	Ff__VerbsOpenReply m;
	struct ibv_device_attr da;
	struct ibv_port_attr pa;
	uint8_t gids[FFR_MAX_IPS + 2][16];
	Ff__VerbsGid gm[FFR_MAX_IPS + 2], *gp[FFR_MAX_IPS + 2];
};

static void open_reply_fill(struct ffr_rdma *rd, const struct ffr_container *c,
			    struct open_reply *o)
{
	int n = ffr_vgids(c, o->gids, FFR_MAX_IPS + 2);

	ff__verbs_open_reply__init(&o->m);
	vdev_attr(rd, c, &o->da);
	vport_attr(rd, n, &o->pa);
	o->m.name = (char *)FFR_VDEV_NAME;
	o->m.node_guid = vguid(c);
	o->m.device_attr.data = (uint8_t *)&o->da;
	o->m.device_attr.len = sizeof(o->da);
	o->m.port_attr.data = (uint8_t *)&o->pa;
	o->m.port_attr.len = sizeof(o->pa);
	for (int i = 0; i < n; i++) {
		ff__verbs_gid__init(&o->gm[i]);
		o->gm[i].gid.data = o->gids[i];
		o->gm[i].gid.len = 16;
		o->gm[i].type = IBV_GID_TYPE_ROCE_V2;
		o->gp[i] = &o->gm[i];
	}
	o->m.n_gids = (size_t)n;
	o->m.gids = o->gp;
}

static void op_verbs_open(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct ffr_rdma *rd = ffr_rdma_of(ch->r);
	Ff__Reply rep = FF__REPLY__INIT;
	struct open_reply o;
	int sfds[2] = {-1, -1}, err;

	if (!rd) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_UNSUPPORTED, "no RDMA device here");
		return;
	}
	if (!req->verbs_open->probe) {
		err = ffr_vctx_new(rd, ch->c, ch->pid, &sfds[0], &sfds[1]);
		if (err) {
			ffr_reply_status(ch, req->id, ffr_errno_status(err),
					 "cannot open a verbs context: %s", strerror(-err));
			return;
		}
	}
	open_reply_fill(rd, ch->c, &o);
	rep.id = req->id;
	rep.body_case = FF__REPLY__BODY_VERBS_OPEN;
	rep.verbs_open = &o.m;
	ffr_reply(ch, &rep, sfds, sfds[0] >= 0 ? 2 : 0);
	ff_close_fds(sfds, 2);
}
