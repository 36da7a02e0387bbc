/* What the virtual device does not offer: exported libibverbs calls that
 * take an object, and the extended context ops. For the shim's objects
 * each fails as the verbs ABI says (NULL or an error, errno EOPNOTSUPP)
 * and logs once; for anyone else's it is the real call. Address handles,
 * multicast and UD are the largest of these gaps. */
#include "real.h"
#include "verbs-internal.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NO_PTR(what)                                                                               \
	do {                                                                                       \
		ffs_vunsupported(what);                                                            \
		errno = EOPNOTSUPP;                                                                \
		return NULL;                                                                       \
	} while (0)

FFS_EXPORT struct ibv_ah *ibv_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *attr)
{
	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_create_ah)(pd, attr);
	NO_PTR("ibv_create_ah (UD)");
}

FFS_EXPORT struct ibv_ah *ibv_create_ah_from_wc(struct ibv_pd *pd, struct ibv_wc *wc,
						struct ibv_grh *grh, uint8_t port)
{
	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_create_ah_from_wc)(pd, wc, grh, port);
	NO_PTR("ibv_create_ah_from_wc (UD)");
}

FFS_EXPORT int ibv_init_ah_from_wc(struct ibv_context *ctx, uint8_t port, struct ibv_wc *wc,
				   struct ibv_grh *grh, struct ibv_ah_attr *ah_attr)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_init_ah_from_wc)(ctx, port, wc, grh, ah_attr);
	ffs_vunsupported("ibv_init_ah_from_wc (UD)");
	errno = EOPNOTSUPP;
	return -1;
}

/* No address handle of ours exists: any AH is someone else's. */
FFS_EXPORT int ibv_destroy_ah(struct ibv_ah *ah)
{
	return VREAL(ibv_destroy_ah)(ah);
}

FFS_EXPORT int ibv_attach_mcast(struct ibv_qp *qp, const union ibv_gid *gid, uint16_t lid)
{
	if (!ffs_is_vctx(qp->context))
		return VREAL(ibv_attach_mcast)(qp, gid, lid);
	ffs_vunsupported("ibv_attach_mcast");
	return EOPNOTSUPP;
}

FFS_EXPORT int ibv_detach_mcast(struct ibv_qp *qp, const union ibv_gid *gid, uint16_t lid)
{
	if (!ffs_is_vctx(qp->context))
		return VREAL(ibv_detach_mcast)(qp, gid, lid);
	ffs_vunsupported("ibv_detach_mcast");
	return EOPNOTSUPP;
}

FFS_EXPORT int ibv_query_ece(struct ibv_qp *qp, struct ibv_ece *ece)
{
	if (!ffs_is_vctx(qp->context))
		return VREAL(ibv_query_ece)(qp, ece);
	return EOPNOTSUPP;
}

FFS_EXPORT int ibv_set_ece(struct ibv_qp *qp, struct ibv_ece *ece)
{
	if (!ffs_is_vctx(qp->context))
		return VREAL(ibv_set_ece)(qp, ece);
	return EOPNOTSUPP;
}

FFS_EXPORT struct ibv_pd *ibv_import_pd(struct ibv_context *ctx, uint32_t h)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_import_pd)(ctx, h);
	NO_PTR("ibv_import_pd");
}

FFS_EXPORT void ibv_unimport_pd(struct ibv_pd *pd)
{
	if (!ffs_is_vctx(pd->context))
		VREAL(ibv_unimport_pd)(pd);
}

FFS_EXPORT struct ibv_mr *ibv_import_mr(struct ibv_pd *pd, uint32_t h)
{
	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_import_mr)(pd, h);
	NO_PTR("ibv_import_mr");
}

FFS_EXPORT void ibv_unimport_mr(struct ibv_mr *mr)
{
	if (!ffs_is_vctx(mr->context))
		VREAL(ibv_unimport_mr)(mr);
}

FFS_EXPORT struct ibv_dm *ibv_import_dm(struct ibv_context *ctx, uint32_t h)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_import_dm)(ctx, h);
	NO_PTR("ibv_import_dm");
}

FFS_EXPORT void ibv_unimport_dm(struct ibv_dm *dm)
{
	VREAL(ibv_unimport_dm)(dm); /* no DM of ours exists */
}

FFS_EXPORT int ibv_query_qp_data_in_order(struct ibv_qp *qp, enum ibv_wr_opcode op, uint32_t flags)
{
	if (!ffs_is_vctx(qp->context))
		return VREAL(ibv_query_qp_data_in_order)(qp, op, flags);
	return 0;
}

FFS_EXPORT int ibv_resolve_eth_l2_from_gid(struct ibv_context *ctx, struct ibv_ah_attr *attr,
					   uint8_t eth_mac[ETHERNET_LL_SIZE], uint16_t *vid)
{
	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_resolve_eth_l2_from_gid)(ctx, attr, eth_mac, vid);
	ffs_vunsupported("ibv_resolve_eth_l2_from_gid");
	return EOPNOTSUPP;
}
