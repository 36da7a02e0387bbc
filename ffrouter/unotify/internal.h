/* What the files of unotify/ share.
 *
 * One struct sv per seccomp listener a keeper handed over. Its identity is
 * the container whose socket the keeper reached (sv->c); every notifying
 * task must live in that container's network namespace. The supervisor
 * talks to the core as a shim would, over an internal control channel
 * (sv->cfd, our end of a socketpair whose other end is an ordinary shim
 * channel of sv->c): quotas, listeners and paths are the core's.
 *
 * A trapped call is answered at once (continue, an errno, a value) or
 * parked as a struct sv_call until the core answers its request or, for a
 * blocking accept, until a connection is queued. A parked call holds the
 * app's file (afd, from pidfd_getfd) and is dropped when the notification
 * dies (the task was killed). Nothing read from the task's memory is used
 * after the call was answered; what the kernel reads on "continue" is the
 * task's own business. */
#pragma once

#include "core.h"

#include <ff/exec.h>

#include <linux/seccomp.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

struct sv;

enum sv_kind {
	SV_CONNECT,
	SV_LISTEN,
	SV_ACCEPT,
	SV_SEND,
};

struct sv_call {
	TAILQ_ENTRY(sv_call) link;
	struct sv *sv;
	enum sv_kind kind;
	uint64_t id;	     /* the notification's */
	int slot;	     /* in sv->pp, or -1 */
	uint64_t req;	     /* the core request it waits for (0: none) */
	pid_t tid;	     /* the task, in the router's pid namespace */
	int fdnum;	     /* the app's fd number */
	int afd;	     /* our copy of the app's file */
	int family;	     /* of the app's socket */
	bool nonblock;	     /* the app's file is O_NONBLOCK */
	bool cloexec;	     /* the app's fd is close-on-exec */
	int aflags;	     /* accept4 flags */
	uint64_t addr, lenp; /* accept: where the peer's address goes */
	struct event *ev;    /* accept: waits for the queue; send: for room */
	uint64_t buf;	     /* send: the bytes, in the task */
	size_t len;
	int sflags; /* send: the app's flags */
};
TAILQ_HEAD(sv_call_list, sv_call);

struct sv_ctx {
	struct ffr_router *r;
	TAILQ_HEAD(, sv) svs;
	unsigned nsvs;
	struct seccomp_notif_sizes sizes;
	struct event *sweep_ev; /* drops parked calls of dead tasks */
	int scratch[2];		/* unconnected TCP sockets (v4, v6): option defaults */
#define SV_NOPTS 22		/* the options a swap copies (calls.c) */
	struct {
		uint8_t v[32];
		socklen_t len;
		bool ok;
	} def[2][SV_NOPTS]; /* their values on scratch, read once */
	bool def_ready[2];
#define SV_PIDFDS 32
	struct {
		pid_t tid;
		int fd;
	} pidfd[SV_PIDFDS]; /* thread pidfds by tid (target.c); -1: none */
	timer_t guard;	    /* interrupts an ioctl that would block the loop */
	bool guard_tried, guard_ok;
	uint64_t trapped, answered, continued, refused;
};

struct sv {
	TAILQ_ENTRY(sv) link;
	struct sv_ctx *x;
	struct ffr_container *c;
	struct ffr_chan *kch;	   /* the keeper's channel: it ends, so do we */
	pid_t pid;		   /* who installed the filter (for the log) */
	int lfd;		   /* the seccomp listener */
	int pfd;		   /* the parked page, until the keeper has it (-1) */
	struct ff_parked_page *pp; /* the parked calls, for the keeper (ff/exec.h) */
	unsigned pp_hint;	   /* where to look for a free slot */
	struct event *lev;
	int cfd;	       /* our end of the internal shim channel */
	struct ffr_chan *core; /* the core's end, called directly once ready */
	struct event *cev;
	bool ready;	  /* the internal channel said Hello */
	uint64_t sup_id;  /* the Supervise to answer once ready */
	bool ip_opts_set; /* a program set an IP/TCP option on a kernel socket */
	uint64_t next_req;
	struct sv_call_list calls;
	unsigned ncalls;
	struct sv_socks *socks;
};

/* sv.c */
/* Answers the notification: continue the call untouched. */
void sv_continue(struct sv *sv, uint64_t id);
/* Answers it with a value (err 0) or an error (err a negative errno). */
void sv_answer(struct sv *sv, uint64_t id, int64_t val, int err);
/* Whether the notification still waits for its answer. */
bool sv_valid(struct sv *sv, uint64_t id);
/* Puts fd (not consumed) into the task as its fd number fdnum (SETFD) or as
 * the call's result (fdnum < 0: SEND, which answers the notification).
 * The fd number in the task, or -errno. */
int sv_addfd(struct sv *sv, uint64_t id, int fd, int fdnum, bool cloexec);
/* Sends the parked call's request to the core (fds not consumed) and
 * records its id in call->req. 0: sent, and the call may already be
 * answered and freed (do not touch it); -errno: not sent, call untouched. */
int sv_call_request(struct sv_call *call, Ff__Request *req, const int *fds, int nfds);
/* A parked call: allocated with afd (consumed), linked into sv. */
struct sv_call *sv_call_new(struct sv *sv, enum sv_kind kind, const struct seccomp_notif *n,
			    int afd);
void sv_call_free(struct sv_call *call);

/* target.c: the task's memory and files */
/* The thread group of task tid, from /proc (-1: gone). */
pid_t sv_tgid(pid_t tid);
/* Copies len bytes at addr of task tid; 0 or -errno. */
int sv_mem_read(pid_t tid, uint64_t addr, void *buf, size_t len);
int sv_mem_write(pid_t tid, uint64_t addr, const void *buf, size_t len);
/* A copy of the task's fd (O_CLOEXEC), checked against the notification
 * (still valid once the copy is taken); -errno. */
int sv_getfd(struct sv *sv, const struct seccomp_notif *n, int fdnum);
/* Closes the cached pidfds (of tasks that may be gone); a pidfd is
 * opened again when next needed. */
void sv_pidfds_drop(struct sv_ctx *x);
/* Whether the task's fd is close-on-exec (from /proc). */
bool sv_fd_cloexec(pid_t tid, int fdnum);
/* Writes a socket address the way the kernel does for getsockname and
 * accept: at most *lenp bytes at addr, the full length at lenp. 0 or
 * -errno (-EFAULT: bad pointers). */
int sv_put_addr(pid_t tid, uint64_t addr, uint64_t lenp, const struct ff_sa *sa, int family);

/* socks.c: what the supervisor remembers of the app's accelerated sockets
 * beyond the core's records (family, options set, a connect in progress),
 * by inode; dropped once the core forgets the socket. */
struct sv_sock {
	ino_t ino;
	int family;
	bool connecting; /* EINPROGRESS was answered: the next connect gets 0 */
	uint8_t nopts;
	struct sv_opt *opts;
};
struct sv_socks *sv_socks_new(void);
void sv_socks_free(struct sv_socks *t);
struct sv_sock *sv_sock_get(struct sv_socks *t, ino_t ino, bool create);
void sv_sock_del(struct sv_socks *t, ino_t ino);
/* Drops the records of sockets the core no longer knows as c's. */
void sv_socks_sweep(struct sv_socks *t, struct ffr_container *c);
/* An option set on an accelerated socket, as recorded; NULL if never set. */
const void *sv_sock_opt(const struct sv_sock *s, int level, int name, socklen_t *len);
int sv_sock_opt_set(struct sv_sock *s, int level, int name, const void *val, socklen_t len);

/* calls.c: the trapped calls */
/* Handles notification n of sv (answers it now, or parks it). */
void sv_dispatch(struct sv *sv, const struct seccomp_notif *n);
/* The core answered request rep->id of parked call (fds consumed). */
void sv_call_reply(struct sv_call *call, const Ff__Reply *rep, int *fds, int nfds);
/* A parked accept: try again. */
void sv_accept_retry(struct sv_call *call);
/* Tries a parked sendto again (or first). */
void sv_send_retry(struct sv_call *call);
