/* Addresses of the shim's rdma_cm: between sockaddr and the protocol's
 * Addr, the ports of an id, and rdma_getaddrinfo (numeric or resolvable
 * names, one result).
 * Invariant: the shim's rdma_getaddrinfo results are listed until freed,
 * so rdma_freeaddrinfo can tell them from librdmacm's. */
#include "real.h"
#include "cm.h"

#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

/* rdma_getaddrinfo results of the shim's, to tell them from librdmacm's */
static struct ffs_cmlist rais = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- addresses ---- */

int ffs_cm_addr(const struct sockaddr *sa, Ff__Addr *a, uint8_t buf[16])
{
	struct ff_sa s;
	socklen_t len;

	if (!sa)
		return -EINVAL;
	len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (ff_sa_from_sockaddr(&s, sa, len) < 0)
		return -EAFNOSUPPORT;
	ff_sa_to_proto(&s, a, buf);
	return 0;
}

void ffs_cm_set_addr(struct sockaddr_storage *out, const Ff__Addr *a)
{
	struct ff_sa s;

	if (ff_sa_from_proto(&s, a) == 0)
		ff_sa_to_sockaddr(&s, s.ip.family, out);
}

bool ffs_cm_is_any(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == INADDR_ANY;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return true;
}

static __be16 port_of(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_port;
	if (sa->sa_family == AF_INET6)
		return ((const struct sockaddr_in6 *)sa)->sin6_port;
	return 0;
}

FFS_EXPORT __be16 rdma_get_src_port(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_get_src_port)(id);
	return port_of(&id->route.addr.src_addr);
}

FFS_EXPORT __be16 rdma_get_dst_port(struct rdma_cm_id *id)
{
	if (!ffs_cm_ours(id->channel))
		return CMREAL(rdma_get_dst_port)(id);
	return port_of(&id->route.addr.dst_addr);
}

/* ---- rdma_getaddrinfo: numeric or resolvable names, one result ---- */

/* rai_*: the shim's struct rdma_addrinfo results. Frees one. */
static void rai_free(struct rdma_addrinfo *r)
{
	if (!r)
		return;
	free(r->ai_src_addr);
	free(r->ai_dst_addr);
	free(r);
}

/* A heap copy of ai's address in *out, its length in *len; 0 or EAI_MEMORY. */
static int rai_addr(struct sockaddr **out, socklen_t *len, const struct addrinfo *ai)
{
	*out = malloc(ai->ai_addrlen);
	if (!*out)
		return EAI_MEMORY;
	memcpy(*out, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	return 0;
}

/* r from getaddrinfo's ai and the app's hints: the source (RAI_PASSIVE) or
 * destination address, and the source hint. 0 or an EAI_ error. */
static int rai_fill(struct rdma_addrinfo *r, const struct rdma_addrinfo *hints,
		    const struct addrinfo *ai)
{
	bool passive = hints && (hints->ai_flags & RAI_PASSIVE);
	int err;

	r->ai_flags = hints ? hints->ai_flags : 0;
	r->ai_family = ai->ai_family;
	r->ai_qp_type = hints && hints->ai_qp_type ? hints->ai_qp_type : IBV_QPT_RC;
	r->ai_port_space = hints && hints->ai_port_space ? hints->ai_port_space : RDMA_PS_TCP;
	if (passive)
		return rai_addr(&r->ai_src_addr, &r->ai_src_len, ai);
	err = rai_addr(&r->ai_dst_addr, &r->ai_dst_len, ai);
	if (!err && hints && hints->ai_src_addr && hints->ai_src_len) {
		r->ai_src_addr = malloc(hints->ai_src_len);
		if (!r->ai_src_addr)
			return EAI_MEMORY;
		memcpy(r->ai_src_addr, hints->ai_src_addr, hints->ai_src_len);
		r->ai_src_len = hints->ai_src_len;
	}
	return err;
}

FFS_EXPORT int rdma_getaddrinfo(const char *node, const char *service,
				const struct rdma_addrinfo *hints, struct rdma_addrinfo **res)
{
	struct addrinfo h = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	struct rdma_addrinfo *r;
	struct ffs_cmnode *n;
	struct ffs_vinfo info;
	int err;

	ffs_init();
	if (ffs_vprobe(&info) < 0)
		return CMREAL(rdma_getaddrinfo)(node, service, hints, res);
	h.ai_family = hints ? hints->ai_family : 0;
	h.ai_flags = (hints && (hints->ai_flags & RAI_PASSIVE) ? AI_PASSIVE : 0) |
		     (hints && (hints->ai_flags & RAI_NUMERICHOST) ? AI_NUMERICHOST : 0);
	err = getaddrinfo(node, service, &h, &ai);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	n = malloc(sizeof(*n));
	err = r && n ? rai_fill(r, hints, ai) : EAI_MEMORY;
	freeaddrinfo(ai);
	if (err) {
		rai_free(r);
		free(n);
		return err;
	}
	ffs_cmlist_push(&rais, n, r);
	*res = r;
	return 0;
}

FFS_EXPORT void rdma_freeaddrinfo(struct rdma_addrinfo *res)
{
	struct ffs_cmnode *n = ffs_cmlist_take(&rais, res);

	if (n) {
		free(n);
		rai_free(res);
	} else if (res) {
		CMREAL(rdma_freeaddrinfo)(res);
	}
}
