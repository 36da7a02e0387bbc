/* Verbs structures to and from their messages (proto/ff.proto), one
 * definition each, linked by the shim (requests it sends, replies it
 * reads) and the router (requests it reads, replies it sends), so the two
 * sides cannot drift apart. Only the fields the message carries are
 * converted; what each side adds or checks (handles, address translation,
 * clamps) stays with it. A message built by *_to_msg points into the
 * structure it was built from. */
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "ff.pb-c.h"

/* QP capabilities (create_qp's request and reply, query_qp's reply). */
void ff_vqp_cap_to_msg(const struct ibv_qp_cap *c, Ff__VerbsQpCaps *m);
void ff_vqp_cap_from_msg(const Ff__VerbsQpCaps *m, struct ibv_qp_cap *c);

/* The scalar fields of QP attributes; the capabilities and the address
 * vector are converted by the functions of their own. from_msg clears a
 * first. */
void ff_vqp_attr_to_msg(const struct ibv_qp_attr *a, Ff__VerbsQpAttr *m);
void ff_vqp_attr_from_msg(const Ff__VerbsQpAttr *m, struct ibv_qp_attr *a);

/* An address vector (a QP's path, with its GRH). from_msg: -EINVAL (and
 * ah untouched) unless the message has a 16-byte GID. */
void ff_vah_to_msg(const struct ibv_ah_attr *ah, Ff__VerbsAh *m);
int ff_vah_from_msg(const Ff__VerbsAh *m, struct ibv_ah_attr *ah);

/* rdma_cm connection parameters. from_msg: the private data stays in the
 * message (p->private_data points into it); -EMSGSIZE if it is longer than
 * rdma_cm allows (255 bytes), p untouched. */
void ff_vconn_param_to_msg(const struct rdma_conn_param *p, Ff__RdmaConnParam *m);
int ff_vconn_param_from_msg(const Ff__RdmaConnParam *m, struct rdma_conn_param *p);
