/* Exported libibverbs entry points for the device and its context: the
 * device list (only the virtual device when the router offers RDMA, the
 * real libibverbs' list otherwise), open/close, the queries, async events.
 * Invariant: a device list the shim made holds only &ffs_vdev and is freed
 * here; every other list and context goes to the real libibverbs. */
#include "real.h"
#include "verbs-internal.h"

#include "log.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#undef ibv_get_device_list
#undef ibv_query_port

/* The device lists this process got from the shim. */
static pthread_mutex_t lists_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ibv_device **our_lists[16];

/* Unlists list if the shim made it; true then. */
static bool list_take(struct ibv_device **list)
{
	bool ours = false;

	pthread_mutex_lock(&lists_lock);
	for (size_t i = 0; i < sizeof(our_lists) / sizeof(our_lists[0]) && !ours; i++)
		if (our_lists[i] == list) {
			our_lists[i] = NULL;
			ours = true;
		}
	pthread_mutex_unlock(&lists_lock);
	return ours;
}

/* Lists a device list the shim made (up to 16 at once are remembered). */
static void list_keep(struct ibv_device **list)
{
	pthread_mutex_lock(&lists_lock);
	for (size_t i = 0; i < sizeof(our_lists) / sizeof(our_lists[0]); i++)
		if (!our_lists[i]) {
			our_lists[i] = list;
			break;
		}
	pthread_mutex_unlock(&lists_lock);
}

FFS_EXPORT struct ibv_device **ibv_get_device_list(int *num)
{
	struct ibv_device **list;
	struct ffs_vinfo info;
	int saved = errno;

	ffs_init();
	if (ffs_vprobe(&info) < 0) {
		errno = saved;
		if (VREAL(ibv_get_device_list))
			return VREAL(ibv_get_device_list)(num);
		if (num)
			*num = 0;
		return calloc(1, sizeof(*list));
	}
	list = calloc(2, sizeof(*list));
	if (!list) {
		errno = ENOMEM;
		return NULL;
	}
	list[0] = &ffs_vdev;
	list_keep(list);
	if (num)
		*num = 1;
	errno = saved;
	return list;
}

FFS_EXPORT void ibv_free_device_list(struct ibv_device **list)
{
	if (list_take(list) || (list && !list[0] && !VREAL(ibv_free_device_list)))
		free(list);
	else if (VREAL(ibv_free_device_list))
		VREAL(ibv_free_device_list)(list);
}

FFS_EXPORT struct ibv_context *ibv_open_device(struct ibv_device *dev)
{
	ffs_init();
	if (dev == &ffs_vdev)
		return ffs_vopen();
	if (!VREAL(ibv_open_device)) {
		errno = ENOSYS;
		return NULL;
	}
	return VREAL(ibv_open_device)(dev);
}

FFS_EXPORT int ibv_close_device(struct ibv_context *ctx)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_close_device) ? VREAL(ibv_close_device)(ctx) : -1;
	ffs_vclose(to_vctx(ctx));
	return 0;
}

FFS_EXPORT __be64 ibv_get_device_guid(struct ibv_device *dev)
{
	struct ffs_vinfo info;

	if (dev != &ffs_vdev)
		return VREAL(ibv_get_device_guid) ? VREAL(ibv_get_device_guid)(dev) : 0;
	return ffs_vprobe(&info) == 0 ? htobe64(info.guid) : 0;
}

FFS_EXPORT int ibv_get_device_index(struct ibv_device *dev)
{
	if (dev != &ffs_vdev)
		return VREAL(ibv_get_device_index) ? VREAL(ibv_get_device_index)(dev) : -1;
	return -1; /* no kernel device index: like a device without one */
}

/* ---- queries ---- */

FFS_EXPORT int ibv_query_device(struct ibv_context *ctx, struct ibv_device_attr *attr)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_query_device)(ctx, attr);
	*attr = to_vctx(ctx)->info.da;
	return 0;
}

int ffs_vquery_device_ex(struct ibv_context *ctx, const struct ibv_query_device_ex_input *in,
			 struct ibv_device_attr_ex *attr, size_t len)
{
	if (in && in->comp_mask)
		return EINVAL;
	if (len < sizeof(attr->orig_attr))
		return EINVAL;
	memset(attr, 0, len < sizeof(*attr) ? len : sizeof(*attr));
	attr->orig_attr = to_vctx(ctx)->info.da;
	return 0;
}

int ffs_vquery_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr, size_t len)
{
	const struct ibv_port_attr *pa = &to_vctx(ctx)->info.pa;

	if (port != 1)
		return EINVAL;
	memset(attr, 0, len);
	memcpy(attr, pa, len < sizeof(*pa) ? len : sizeof(*pa));
	return 0;
}

/* The exported one takes the old, shorter struct (up to link_layer). */
FFS_EXPORT int ibv_query_port(struct ibv_context *ctx, uint8_t port,
			      struct _compat_ibv_port_attr *attr)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_query_port)(ctx, port, attr);
	return ffs_vquery_port(ctx, port, (struct ibv_port_attr *)attr,
			       offsetof(struct ibv_port_attr, flags));
}

/* The virtual device's GID at index (port must be 1), or NULL. */
static const union ibv_gid *vgid(struct ibv_context *ctx, uint32_t port, uint32_t index)
{
	struct ffs_vctx *x = to_vctx(ctx);

	return port == 1 && index < (uint32_t)x->info.ngids ? &x->info.gids[index] : NULL;
}

FFS_EXPORT int ibv_query_gid(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid)
{
	const union ibv_gid *g;

	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_query_gid)(ctx, port, index, gid);
	g = index >= 0 ? vgid(ctx, port, (uint32_t)index) : NULL;
	if (!g) {
		errno = EINVAL;
		return -1;
	}
	*gid = *g;
	return 0;
}

FFS_EXPORT int _ibv_query_gid_ex(struct ibv_context *ctx, uint32_t port, uint32_t index,
				 struct ibv_gid_entry *entry, uint32_t flags, size_t size)
{
	const union ibv_gid *g;

	if (!ffs_is_vctx(ctx))
		return VREAL(_ibv_query_gid_ex)(ctx, port, index, entry, flags, size);
	g = vgid(ctx, port, index);
	if (flags || size < sizeof(*entry))
		return EINVAL;
	if (!g)
		return ENODATA;
	memset(entry, 0, sizeof(*entry));
	entry->gid = *g;
	entry->gid_index = index;
	entry->port_num = port;
	entry->gid_type = IBV_GID_TYPE_ROCE_V2;
	return 0;
}

FFS_EXPORT ssize_t _ibv_query_gid_table(struct ibv_context *ctx, struct ibv_gid_entry *entries,
					size_t max, uint32_t flags, size_t size)
{
	struct ffs_vctx *x;
	size_t n;

	if (!ffs_is_vctx(ctx))
		return VREAL(_ibv_query_gid_table)(ctx, entries, max, flags, size);
	x = to_vctx(ctx);
	if (flags || size < sizeof(*entries))
		return -EINVAL;
	for (n = 0; n < max && n < (size_t)x->info.ngids; n++)
		_ibv_query_gid_ex(ctx, 1, (uint32_t)n, &entries[n], 0, sizeof(*entries));
	return (ssize_t)n;
}

FFS_EXPORT int ibv_query_gid_type(struct ibv_context *ctx, uint8_t port, unsigned int index,
				  int *type)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_query_gid_type)(ctx, port, index, type);
	if (!vgid(ctx, port, index)) {
		errno = EINVAL;
		return -1;
	}
	*type = FFS_GID_TYPE_SYSFS_ROCE_V2;
	return 0;
}

FFS_EXPORT int ibv_query_pkey(struct ibv_context *ctx, uint8_t port, int index, __be16 *pkey)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_query_pkey)(ctx, port, index, pkey);
	if (port != 1 || index != 0) {
		errno = EINVAL;
		return -1;
	}
	*pkey = htobe16(0xffff);
	return 0;
}

FFS_EXPORT int ibv_get_pkey_index(struct ibv_context *ctx, uint8_t port, __be16 pkey)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_get_pkey_index)(ctx, port, pkey);
	return port == 1 && be16toh(pkey) == 0xffff ? 0 : -1;
}

/* ---- async events ---- */

/* The app's async event for the router's e; one whose object is gone
 * names port 1 instead. */
static void async_element(struct ffs_vctx *x, const struct ff_vasync_event *e,
			  struct ibv_async_event *ev)
{
	struct ffs_vqp *q;
	struct ffs_vcq *c;
	struct ffs_vsrq *s;

	memset(ev, 0, sizeof(*ev));
	ev->event_type = e->event_type;
	if (e->kind == FF_VOBJ_QP && (q = ffs_vqp_find(x, e->cookie)))
		ev->element.qp = &q->qp;
	else if (e->kind == FF_VOBJ_CQ && (c = ffs_vcq_find(x, e->cookie)))
		ev->element.cq = &c->cq;
	else if (e->kind == FF_VOBJ_SRQ && (s = ffs_vsrq_find(x, e->cookie)))
		ev->element.srq = &s->srq;
	else
		ev->element.port_num = 1;
}

FFS_EXPORT int ibv_get_async_event(struct ibv_context *ctx, struct ibv_async_event *ev)
{
	struct ff_vasync_event e;
	long n;

	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_get_async_event)(ctx, ev);
	for (;;) {
		n = syscall(SYS_read, ctx->async_fd, &e, sizeof(e));
		if (n == (long)sizeof(e))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n >= 0)
			errno = EIO;
		return -1;
	}
	async_element(to_vctx(ctx), &e, ev);
	/* an event for an object destroyed meanwhile names no object */
	if (e.kind && !ev->element.qp && !ev->element.cq && !ev->element.srq)
		ev->element.port_num = 1;
	return 0;
}

/* The object an event names, as libibverbs sees it. */
static struct ibv_context *async_ctx(const struct ibv_async_event *ev)
{
	switch (ev->event_type) {
	case IBV_EVENT_CQ_ERR:
		return ev->element.cq ? ev->element.cq->context : NULL;
	case IBV_EVENT_QP_FATAL:
	case IBV_EVENT_QP_REQ_ERR:
	case IBV_EVENT_QP_ACCESS_ERR:
	case IBV_EVENT_COMM_EST:
	case IBV_EVENT_SQ_DRAINED:
	case IBV_EVENT_PATH_MIG:
	case IBV_EVENT_PATH_MIG_ERR:
	case IBV_EVENT_QP_LAST_WQE_REACHED:
		return ev->element.qp ? ev->element.qp->context : NULL;
	case IBV_EVENT_SRQ_ERR:
	case IBV_EVENT_SRQ_LIMIT_REACHED:
		return ev->element.srq ? ev->element.srq->context : NULL;
	default:
		return NULL; /* port and device events: nothing to count */
	}
}

FFS_EXPORT void ibv_ack_async_event(struct ibv_async_event *ev)
{
	struct ibv_context *ctx = async_ctx(ev);

	if (ctx && !ffs_is_vctx(ctx) && VREAL(ibv_ack_async_event))
		VREAL(ibv_ack_async_event)(ev);
}
