/* What the files of rdma/cm/ share and no other folder may use: ids,
 * event channels, and the lifelines to other routers. */
#pragma once

#include <rdma/rdma_cma.h>

#include "cm.h"
#include "rdma.h"

struct ffr_cmchan;
struct ffr_cmid;
struct ffr_cmx;
TAILQ_HEAD(ffr_cmchan_list, ffr_cmchan);
TAILQ_HEAD(ffr_cmid_list, ffr_cmid);

/* rdma_cm of one router (its feature's priv). rd is NULL without an RDMA
 * device: then every request is refused. */
struct ffr_cm {
	struct ffr_router *r;
	struct ffr_rdma *rd;
	struct ffr_cmchan_list chans;
	struct ffr_cmid_list listens; /* ids in the listening state */
	uint16_t next_port;
	uint64_t conns_total;
};

/* r's rdma_cm (never NULL once attached). */
struct ffr_cm *ffr_cm_of(const struct ffr_router *r);

enum ffr_cm_state {
	CM_IDLE,
	CM_BOUND,
	CM_LISTEN,
	CM_ADDR,       /* address resolved */
	CM_ROUTE,      /* route resolved */
	CM_CONNECTING, /* active side, request sent */
	CM_REQ,        /* passive side (a listener's child), request received */
	CM_CONNECTED,
	CM_DISCONNECTED,
};

/* What one side asked for at connect or accept: rdma_cm's own parameters,
 * whose private data (c.private_data) is the copy in pdata. */
struct ffr_cm_param {
	struct rdma_conn_param c;
	uint8_t pdata[256];
};

struct ffr_cmid {
	TAILQ_ENTRY(ffr_cmid) link;  /* ch->ids */
	TAILQ_ENTRY(ffr_cmid) llink; /* rd->listens, while listening */
	struct ffr_cmchan *ch;
	uint32_t h;
	enum ffr_cm_state state;
	uint32_t ps, qp_type;
	struct ff_sa local, peer;
	int backlog;
	uint32_t pending;          /* a listener's children not yet accepted or rejected */
	struct ffr_cmid *parent;   /* a child: its listener, until it answers */
	struct ffr_cmid *peer_id;  /* the other end, while connecting or connected */
	struct ffr_cmx *x;         /* or: the lifeline to the other end's router */
	struct ffr_cm_param param; /* this side's connect or accept */
	uint32_t psn;
};

/* An app's rdma_event_channel: a request socket and an event socket. */
struct ffr_cmchan {
	TAILQ_ENTRY(ffr_cmchan) link;
	struct ffr_cm *cm;
	struct ffr_container *c; /* NULL once unregistered */
	char name[FFR_NAME_MAX + 1];
	pid_t pid;
	int fd;  /* requests */
	int efd; /* events, router end */
	struct event *ev;
	struct ffr_htab ids_tab;
	struct ffr_cmid_list ids;
	uint32_t bad;
	bool dead;
};

/* channel.c */
void ffr_cmchan_free(struct ffr_cmchan *ch);
int ffr_cm_reply_status(struct ffr_cmchan *ch, uint64_t id, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The rdma_cm open request of a shim (a new event channel). */
void ffr_op_rdma_cm_open(struct ffr_chan *c, Ff__Request *req, int *fds, int nfds);
/* A new id of ch (a listener's child for a connect request). */
struct ffr_cmid *ffr_cmid_new(struct ffr_cmchan *ch);
void ffr_cmid_free(struct ffr_cmid *id);
/* Writes one event for id (param and peer_gid may be NULL). */
void ffr_cm_event(struct ffr_cmid *id, uint32_t type, int status, const struct ffr_cm_param *param,
		  bool swap_rd, const uint8_t *peer_gid);

/* connect.c: connection set-up between two ids */
#define FFR_REJ_NO_RESOURCES 3       /* IB CM reject reasons (the event's status) */
#define FFR_REJ_INVALID_SERVICE_ID 8 /* no listener */
#define FFR_REJ_INVALID_GID 12
#define FFR_REJ_CONSUMER_DEFINED 28
int ffr_cm_connect(struct ffr_cmid *id, const Ff__RdmaConnParam *p);
int ffr_cm_accept(struct ffr_cmid *id, const Ff__RdmaConnParam *p);
int ffr_cm_reject(struct ffr_cmid *id, const uint8_t *pdata, size_t len);
int ffr_cm_disconnect(struct ffr_cmid *id);
/* id goes away: its peer learns it as a reject or a disconnect. */
void ffr_cm_detach(struct ffr_cmid *id);
/* A connect's or accept's parameters from a message: -EINVAL if too much
 * private data; the rest clamped to what the fields can hold. */
int ffr_cm_param_from(const Ff__RdmaConnParam *m, struct ffr_cm_param *p);
/* Copies len bytes of data as p's private data (none if longer than
 * rdma_cm carries). */
void ffr_cm_param_pdata(struct ffr_cm_param *p, const void *data, size_t len);
/* The message of p (storage: p's own); swap: as the other side sees it
 * (responder resources and initiator depth exchanged). */
void ffr_cm_param_to_msg(const struct ffr_cm_param *p, bool swap, Ff__RdmaConnParam *m);
/* Resolves p's responder resources and initiator depth (255: as many as
 * allowed) against this device and, for an accept, the request (other). */
int ffr_cm_depths(struct ffr_rdma *rd, struct ffr_cm_param *p, const struct ffr_cm_param *other);
/* The QP attributes of one side (active or not) of a connection between
 * the active side's act/act_psn and the passive side's acc/acc_psn. */
void ffr_cm_qp_conn(struct ffr_rdma *rd, const struct ffr_cm_param *act, uint32_t act_psn,
		    const struct ffr_cm_param *acc, uint32_t acc_psn, bool active,
		    struct ffr_qp_conn *out);
/* A new child of t's listener for dst (state CM_REQ), or NULL: none, or
 * its backlog is full. */
struct ffr_cmid *ffr_cm_request(struct ffr_cm *cm, const struct ffr_container *t,
				const struct ff_sa *dst, const struct ff_sa *src);
void ffr_cm_leave_listener(struct ffr_cmid *child);
/* The QP id's connect or accept named, if it is still its container's. */
struct ffr_vqp *ffr_cm_qp(struct ffr_cmid *id);
void ffr_cm_qp_error(struct ffr_cmid *id);
void ffr_cm_vgid(const struct ff_ip *ip, uint8_t g[16]);

/* xhost.c: connections with an id on another host, over a TCP
 * connection between the two routers (proto/ff.proto XCmRequest). */
/* An rdma_cm connect request another router sent to the ingress (p->cm
 * set). Consumes p and fd; tag: the preamble's MAC. */
void ffr_cmx_incoming(struct ffr_router *r, Ff__XPreamble *p, int fd, const uint8_t *tag);
/* Sends id's connect request to t's host; id goes to CM_CONNECTING, or
 * its app sees UNREACHABLE at once. */
int ffr_cmx_connect(struct ffr_cmid *id, struct ffr_container *t);
/* The request a passive id received from the other router. */
const struct ffr_cm_param *ffr_cmx_peer_param(const struct ffr_cmx *x);
/* Moves the passive id's QP q and answers ACCEPT; ESTABLISHED follows
 * when the other router says its QP is ready. */
int ffr_cmx_accept(struct ffr_cmid *id, struct ffr_vqp *q);
/* Sends a REJECT (best effort; x stays). */
void ffr_cmx_reject(struct ffr_cmx *x, int reason, const uint8_t *pdata, size_t len);
/* Closes the lifeline and unlinks it from its id. NULL is a no-op. */
void ffr_cmx_free(struct ffr_cmx *x);

