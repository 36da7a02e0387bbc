/* What the files of xhost/ share and no other folder may use. */
#pragma once

#include "xhost.h"

/* A published port: host_port on this host goes to container:port. */
struct ffr_publish {
	TAILQ_ENTRY(ffr_publish) link;
	struct ffr_router *r;
	char container[FFR_NAME_MAX + 1];
	uint16_t host_port, port;
	int fd;
	struct event *ev;
	uint64_t accepted;
};
TAILQ_HEAD(ffr_publish_list, ffr_publish);
TAILQ_HEAD(ffr_host_list, ffr_host);
struct ffr_xconn;
TAILQ_HEAD(ffr_xconn_list, ffr_xconn);
struct ffr_ingress;
TAILQ_HEAD(ffr_ingress_list, ffr_ingress);
struct ffr_etcd;

/* An address prefix, and a port (0: any). */
struct ffr_cidr {
	struct ff_ip ip;
	uint8_t bits;
	uint16_t port;
};
#define FFR_CLUSTER_MAX 3  /* --ingress, --advertise, the etcd store */
#define FFR_LOCAL_MAX 256 /* the host's addresses policy host refuses */

/* A log line that an attacker may trigger at will: at most one a second. */
struct ffr_ratelog {
	int64_t last_ms;
	uint64_t quiet; /* not logged since the last line */
	char more[64];  /* what the line to log now adds about them, or "" */
};
/* Whether to log now; if so, rl->more says how many were not logged since
 * the last line. */
bool ffr_ratelog(struct ffr_ratelog *rl);

/* The cluster part of one router (its feature's priv). */
struct ffr_xhost {
	struct ffr_router *r;
	char *state; /* the state file */
	struct ffr_host_list hosts;
	struct ffr_publish_list publishes;
	struct ffr_xconn_list xconns;     /* connects in progress to other routers */
	ffr_xpath_fn xpath;               /* a transport tried before TCP (ffr_xpath_set) */
	void *xpath_arg;
	struct ffr_ingress_list ingresses; /* preambles being read */
	struct ffr_ingress_list warms;	   /* other routers' warm connections, kept */
	uint32_t nwarm;			   /* warms' length */
	int warm_max;			   /* warm connections to keep to each host */
	uint32_t warm_open;		   /* ours, open to all hosts */
	int ifd;                          /* ingress listener, -1 if none */
	struct event *iev;
	ffr_preamble_fn served[FFR_PREAMBLE_KINDS];
	uint8_t (*keys)[FF_KEY_LEN]; /* FFR_KEYS keys from the cluster secret (sodium_malloc,
				      * read-only); NULL without a secret. The secret itself
				      * is wiped once they are derived. */
	int xconnect_ms;
	struct ffr_etcd *etcd; /* the cluster store, NULL with the state file only */
	int preamble_ms;
	uint32_t max_pending, max_per_source, npending; /* npending: ingresses' length */
	struct ffr_xhost_stats stats;
	struct ffr_ratelog overcap_log, timeout_log, refused_log;
	bool addr_check;
	struct ff_sa src; /* connects to other routers leave from here (family 0: any) */
	/* policy host (outside.c) */
	struct ffr_cidr allow[FFR_HOST_ALLOW_MAX];
	size_t nallow;
	struct ff_sa cluster[FFR_CLUSTER_MAX];
	size_t ncluster;
	struct ff_ip local[FFR_LOCAL_MAX];
	size_t nlocal;
	int64_t local_ms;
	struct ffr_ratelog outside_log;
};

extern const struct ffr_feature ffr_xhost_feature;

/* The cluster part of r (never NULL once attached). */
static inline struct ffr_xhost *ffr_xh(const struct ffr_router *r)
{
	return ffr_feature_priv(r, &ffr_xhost_feature);
}

/* host.c */
int ffr_host_add(struct ffr_router *r, const char *name, const struct ff_sa *addr, bool rdma,
		 struct ffr_host **out);
void ffr_host_free(struct ffr_router *r, struct ffr_host *h);
int ffr_read_secret(struct ffr_xhost *xh, const char *path);

/* host-admin.c: ffctl's requests about hosts and published ports */
extern const struct ffr_op ffr_xhost_ops[];
extern const size_t ffr_xhost_nops;
/* Hosts and published ports (the first 64 of each), and the counters of
 * refusals, for a status reply. */
void *ffr_xhost_status(void *priv, Ff__StatusReply *sr);
/* The same counters, hosts and published ports for the metrics endpoint. */
void ffr_xhost_metrics(void *priv, struct ffr_metrics *m);

/* auth.c */
void ffr_nonces_free(void);

/* outside.c: where policy host may connect a container */
/* "IP", "IP/BITS", either with ":PORT" (IPv6 in brackets then:
 * "[fd00::/8]:443"); host bits are dropped. 0 or -EINVAL. */
int ffr_cidr_parse(const char *s, struct ffr_cidr *out);
/* The allow-list and the cluster's addresses from cfg; -EINVAL (logged). */
int ffr_outside_init(struct ffr_xhost *xh, const struct ffr_xhost_config *cfg);
/* 0 if dst may be connected to, else -ECONNREFUSED and *why. */
int ffr_outside_check(struct ffr_router *r, const struct ff_sa *dst, const char **why);

/* connect.c: a connect to a container on another host (t), or, for a
 * container whose policy is host, to a destination outside (t NULL) that
 * outside.c allows */
bool ffr_xconn_start(void *priv, struct ffr_chan *ch, uint64_t id, struct ffr_container *t,
		     const struct ff_sa *src, const struct ff_sa *dst);
void ffr_xconn_cancel_chan(void *priv, struct ffr_chan *ch);
void ffr_xconn_free_all(struct ffr_router *r);

/* warm.c: connections to other routers' ingresses, opened and
 * authenticated ahead of need */
/* A ready warm connection to h (the caller then owns the fd), or -1 if none
 * is; either way the pool is topped up. */
int ffr_warm_take(struct ffr_router *r, struct ffr_host *h);
/* Closes the warm connections to h. */
void ffr_warm_free(struct ffr_router *r, struct ffr_host *h);

/* ingress.c: other routers' connections */
int ffr_ingress_open(struct ffr_router *r, const char *hostport);
void ffr_ingress_close(struct ffr_router *r);

/* publish.c: published ports */
int ffr_publish_add(struct ffr_router *r, const char *container, uint16_t host_port,
		    uint16_t port, struct ffr_publish **out);
void ffr_publish_free(struct ffr_publish *p);
struct ffr_publish *ffr_publish_find(struct ffr_router *r, uint16_t host_port);

/* store-etcd.c: the cluster store */
int ffr_etcd_open(struct ffr_router *r, const char *url, const char *advertise);
void ffr_etcd_close(struct ffr_router *r);
/* Publishes a local registration (no-op without etcd). */
void ffr_etcd_put_container(struct ffr_router *r, const struct ffr_container *c);
void ffr_etcd_delete_container(struct ffr_router *r, const char *name);

/* store-file.c: the state file, and the record format the etcd store shares */
enum ffr_rec_kind { FFR_REC_HOST = 1, FFR_REC_CONTAINER, FFR_REC_PUBLISH };
struct ffr_record {
	enum ffr_rec_kind kind;
	char name[FFR_NAME_MAX + 1];
	char host[FFR_HOST_MAX + 1];
	struct ff_ip ips[FFR_MAX_IPS];
	int nips;
	enum ffr_policy policy;
	bool tcp_only;
	dev_t ns_dev;
	ino_t ns_ino;
	struct ff_sa addr; /* host */
	bool rdma;
	uint16_t host_port, port; /* publish */
};
/* 1 and *rec for a record, 0 for a blank or comment line, -EINVAL. */
int ffr_record_parse(const char *line, struct ffr_record *rec);
/* The container's record line; its length or -ENAMETOOLONG. */
int ffr_record_format(const struct ffr_router *r, const struct ffr_container *c, char *buf,
		      size_t len);
int ffr_state_load(struct ffr_router *r);
int ffr_state_save(struct ffr_router *r);
