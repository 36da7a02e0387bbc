/* The fake RDMA device (fake-ibv.h). Device-level calls only so far:
 * what the router needs to open a device and serve verbs requests that
 * create nothing; the object calls are left NULL (not to be reached). */
#include "fake-ibv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct ibv_device dev = {.name = FAKE_IBV_NAME};
static struct ibv_device *list[] = {&dev, NULL};

static struct ibv_device **get_device_list(int *num)
{
	if (num)
		*num = 1;
	return list;
}

static void free_device_list(struct ibv_device **l)
{
}

static const char *get_device_name(struct ibv_device *d)
{
	return d->name;
}

static struct ibv_context *open_device(struct ibv_device *d)
{
	struct ibv_context *ctx = calloc(1, sizeof(*ctx));

	if (ctx) {
		ctx->device = d;
		ctx->cmd_fd = ctx->async_fd = -1;
	}
	return ctx;
}

static int close_device(struct ibv_context *ctx)
{
	free(ctx);
	return 0;
}

static int query_device(struct ibv_context *ctx, struct ibv_device_attr *a)
{
	memset(a, 0, sizeof(*a));
	strcpy(a->fw_ver, "fake");
	a->vendor_id = 0x1234;
	a->phys_port_cnt = 1;
	a->max_qp = a->max_cq = a->max_mr = a->max_pd = a->max_srq = 1024;
	a->max_qp_wr = a->max_srq_wr = a->max_cqe = 4096;
	a->max_sge = a->max_srq_sge = 16;
	a->max_qp_rd_atom = a->max_qp_init_rd_atom = 16;
	return 0;
}

static int query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *p)
{
	memset(p, 0, sizeof(*p));
	if (port != 1)
		return EINVAL;
	p->state = IBV_PORT_ACTIVE;
	p->max_mtu = p->active_mtu = IBV_MTU_1024;
	p->gid_tbl_len = 2;
	p->pkey_tbl_len = 1;
	p->link_layer = IBV_LINK_LAYER_ETHERNET;
	return 0;
}

static int query_gid_ex(struct ibv_context *ctx, uint32_t port, uint32_t index,
			struct ibv_gid_entry *e, uint32_t flags, size_t size)
{
	static const uint8_t ip[4] = FAKE_IBV_IP;

	if (port != 1 || index > 1)
		return EINVAL;
	memset(e, 0, sizeof(*e));
	e->gid_index = index;
	e->port_num = port;
	e->gid_type = IBV_GID_TYPE_ROCE_V2;
	if (index == 0) {
		e->gid.raw[0] = 0xfe;
		e->gid.raw[1] = 0x80;
		e->gid.raw[15] = 1;
	} else {
		e->gid.raw[10] = e->gid.raw[11] = 0xff;
		memcpy(e->gid.raw + 12, ip, 4);
	}
	return 0;
}

const struct ffr_ibv fake_ibv = {
	.get_device_list = get_device_list,
	.free_device_list = free_device_list,
	.get_device_name = get_device_name,
	.open_device = open_device,
	.close_device = close_device,
	.query_device = query_device,
	.query_port = query_port,
	.query_gid_ex = query_gid_ex,
};
