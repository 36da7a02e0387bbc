/* libffshim's rdma_cm (cm-*.c), private to verbs/: the shim's event
 * channels, ids and events. Each wraps the librdmacm struct the app sees
 * (first member or embedded), like the verbs objects in verbs-internal.h. */
#pragma once

#include <rdma/rdma_cma.h>

#include "verbs-internal.h"

struct ffs_cmid;

/* What the shim handed the app and takes back through a librdmacm name
 * (events, rdma_getaddrinfo results), listed until then under the list's
 * lock: an object not listed is librdmacm's, and is never dereferenced. */
struct ffs_cmnode {
	const void *obj;
	struct ffs_cmnode *next;
};
struct ffs_cmlist {
	pthread_mutex_t lock;
	struct ffs_cmnode *head;
};

struct ffs_cmchan {
	struct rdma_event_channel ch; /* ch.fd: the event socket */
	int req;		      /* request socket (hidden fd) */
	pthread_mutex_t lock;	      /* one request in flight */
	pthread_mutex_t ids_lock;     /* ids */
	uint64_t next_id;
	struct ffs_cmid *ids;
	struct ffs_cmchan *next;
	int refs;     /* the channel list's, plus one per rdma_get_cm_event under way */
	bool closing; /* rdma_destroy_event_channel was called */
};

struct ffs_cmid {
	struct rdma_cm_id id;
	uint32_t h; /* the router's handle */
	struct ffs_cmchan *ch;
	struct ffs_cmid *next;
	bool own_cqs; /* rdma_create_qp made the CQs and channels */
};

struct ffs_cmevent {
	struct rdma_cm_event ev;
	struct ffs_cmnode node; /* in the list of unacknowledged events */
	uint8_t pdata[256];
};

#define to_cmchan(p) FFS_CONTAINER_OF(p, struct ffs_cmchan, ch)
#define to_cmid(p)   ((struct ffs_cmid *)(p))

/* cm-id.c */
/* librdmacm's error convention: -1 with errno = -err. */
int ffs_cm_err(int err);
/* Logs once that the call is not supported; -1 with errno EOPNOTSUPP. */
int ffs_cm_fail(const char *what);
/* Whether ch is one of the shim's event channels. */
bool ffs_cm_ours(const struct rdma_event_channel *ch);
/* The shim's channel behind ch, referenced (NULL: librdmacm's); put frees
 * a destroyed channel with its last reference. */
struct ffs_cmchan *ffs_cmchan_get(const struct rdma_event_channel *ch);
void ffs_cmchan_put(struct ffs_cmchan *ch);
/* The process's context on ffnet0 for rdma_cm ids (opened once); NULL + errno. */
struct ibv_context *ffs_cm_verbs(void);
int ffs_cmcall(struct ffs_cmchan *ch, Ff__Request *req, Ff__Reply **rep);
struct ffs_cmid *ffs_cmid_find(struct ffs_cmchan *ch, uint32_t h);
struct ffs_cmid *ffs_cmid_add(struct ffs_cmchan *ch, uint32_t h, void *context,
			      enum rdma_port_space ps);
/* Lists obj with node n, whose memory the caller frees once
 * ffs_cmlist_take has returned it. */
void ffs_cmlist_push(struct ffs_cmlist *l, struct ffs_cmnode *n, const void *obj);
/* Unlists obj and returns its node; NULL if obj is not listed. */
struct ffs_cmnode *ffs_cmlist_take(struct ffs_cmlist *l, const void *obj);

/* cm-addr.c */
/* sa as the protocol's Addr, its IP bytes in buf; 0 or -errno. */
int ffs_cm_addr(const struct sockaddr *sa, Ff__Addr *a, uint8_t buf[16]);
/* Stores a as a sockaddr in out; leaves out alone if a is malformed. */
void ffs_cm_set_addr(struct sockaddr_storage *out, const Ff__Addr *a);
/* The unspecified address (or not IP): like librdmacm, no device yet. */
bool ffs_cm_is_any(const struct sockaddr *sa);
