/* The socket half's own declarations (sock/ only; the rest of the shim
 * uses sock.h).
 *
 * The fd table maps an fd number to a refcounted struct ffs_sock describing
 * what the shim knows about the file behind it; fds that share a file (dup,
 * fork) share the struct. It is a cache: an fd the shim has never seen is
 * NULL, and an AF_UNIX socket it meets later (after exec) can be looked up
 * at the router by inode. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <ff/shm.h>

#include "addr.h"
#include "ff.pb-c.h"
#include "real.h"
#include "sock.h"

enum ffs_kind {
	FFS_TCP = 1,  /* kernel TCP socket that may still be accelerated */
	FFS_KLISTEN,  /* kernel listener that the router may take over again */
	FFS_LISTEN,   /* accelerated listener: fd is the accept-queue end */
	FFS_CONN,     /* accelerated connection: fd is an AF_UNIX stream */
	FFS_INTERNAL, /* one of the shim's own fds */
	FFS_OTHER,    /* looked up at the router: not ours */
};

/* Options the app set before the fd was swapped, replayed onto the new one. */
#define FFS_MAX_OPTS 16
struct ffs_opt {
	int level, name;
	socklen_t len;
	uint8_t val[16];
};

/* An IP-, IPv6- or TCP-level option the app set on an accelerated socket
 * that has no field in struct ffs_tcpopts: kept to be set again on a
 * scratch TCP socket, which then answers getsockopt as the kernel would. */
#define FFS_MAX_VOPTS 16
struct ffs_vopt {
	int level, name;
	socklen_t len;
	uint8_t val[40]; /* IP_OPTIONS: up to 40 bytes */
};

struct ffs_epreg {
	int epfd;
	int fd;		   /* the number registered: (file, fd) is the kernel's key */
	unsigned long ino; /* of the epoll file, so a reused epfd number is not mistaken */
	int pid;	   /* the process that registered it (a fork shares the set) */
	struct epoll_event ev;
};

/* TCP-level option values an accelerated socket reports as a TCP socket would. */
struct ffs_tcpopts {
	int nodelay, cork, keepidle, keepintvl, keepcnt, user_timeout, quickack, maxseg;
	int defer_accept, notsent_lowat, fastopen, tos, ttl, v6only;
	char congestion[16];
};

struct ffs_sock {
	atomic_int refs;
	enum ffs_kind kind;
	int family; /* the app's socket domain: AF_INET or AF_INET6 */
	bool bound; /* the app called bind() */
	/* The router (or the listener watcher) handed this file over and may
	 * still hold its copy for a moment after the app has it: the app's
	 * epoll registrations are recorded, and removed when it closes its fd
	 * (ffs_epoll_forget), or they would outlive the close. */
	bool handed;
	struct ff_sa local, peer;
	struct ffs_tcpopts tcp;
	int nvopts;		/* FFS_CONN / FFS_LISTEN */
	struct ffs_vopt *vopts; /* NULL until the first one (FFS_MAX_VOPTS) */
	/* FFS_TCP / FFS_KLISTEN / FFS_LISTEN */
	int nopts;
	struct ffs_opt opts[FFS_MAX_OPTS];
	int neps;
	struct ffs_epreg *eps;
	/* FFS_LISTEN / FFS_KLISTEN */
	int kfd; /* FFS_LISTEN: hidden copy of the kernel listener, -1 if none */
	int backlog;
	bool shut;	      /* shutdown(SHUT_RD) on a listener: accept() fails with EINVAL */
	uint64_t listener_id; /* FFS_LISTEN: the router's id, for Unlisten */
	int qr;		      /* FFS_LISTEN: hidden copy of the router's end of the queue */
	unsigned long q_ino;  /* inode of the app's end of the queue */
	bool routed;	      /* a live router forwards the kernel listener (watch.c) */
	bool in_ep;	      /* the watcher forwards it */
	int64_t next_upgrade_ns;
	/* FFS_CONN */
	struct ff_stat_slot *slot;
	int path;	 /* Ff__Path: SAME_HOST (an AF_UNIX pair) or TCP (a host TCP socket) */
	bool connecting; /* non-blocking connect not yet confirmed by a second connect() */
	bool peer_gone;	 /* a send met EPIPE once, or a reset was seen (ffs_sent()) */
	bool shut_wr;	 /* the app shut the sending side down */
	struct ffs_ring *ring; /* same host over shared memory (ring.c), or NULL */
	/* FFS_TCP */
	bool pending; /* its connect is under way in pending.c: the fd is a placeholder */
	/* FFS_INTERNAL: where the owner keeps this fd (reset to -1 if the app closes it) */
	int *owner;
};

/* fdtab.c */
struct ffs_sock *ffs_fd_get(int fd);
/* Installs s at fd (takes a reference the caller gave up) and drops the old entry. */
void ffs_fd_set(int fd, struct ffs_sock *s);
/* Highest fd that may have an entry, +1. */
int ffs_fd_limit(void);
struct ffs_sock *ffs_sock_new(enum ffs_kind kind, int family);
/* fn for each fd with an entry (the table's chunks only: no walk up to a
 * high fd's number). */
void ffs_fd_each(void (*fn)(int fd, struct ffs_sock *s, void *arg), void *arg);
/* Sockets open when the shim loaded (inherited across exec), which the
 * router may know: ffs_fd_inherited_take says once whether fd was one. */
void ffs_fd_inherited_scan(void);
bool ffs_fd_inherited_take(int fd);
/* Whether any is left untaken; the next one, taken (-1: none). */
bool ffs_fd_inherited_any(void);
int ffs_fd_inherited_next(void);
struct ffs_sock *ffs_sock_ref(struct ffs_sock *s);

/* chan.c */
/* 1 if ip is a registered overlay address, 0 if not or no router. */
int ffs_is_overlay(const struct ff_ip *ip);
/* 1 if the container's policy is "host": the router connects outside. */
int ffs_policy_host(void);
/* 1 if ip is one of this container's addresses (or any), 0 if not or no router. */
int ffs_is_own(const struct ff_ip *ip);
/* The byte counters of slot, or NULL without a stats page. */
struct ff_stat_slot *ffs_stat_slot(uint32_t slot);
/* Connects now if the router is reachable; returns 1 if the channel is up. */
int ffs_chan_up(void);
void ffs_chan_fork_child(void);
void ffs_chan_fork_prepare(void);
void ffs_chan_fork_parent(void);
int64_t ffs_now_ns(void);

/* swap.c */
/* Replaces the file behind fd with newfd (consumed), keeping the number,
 * FD_CLOEXEC, the epoll registrations recorded in old and the options it
 * replays; newfd gets O_NONBLOCK as in fl, the file status flags the app
 * had (read them before the router could touch a shared file). Returns 0
 * or -errno (fd untouched, newfd closed). */
int ffs_swap(int fd, int newfd, int fl, struct ffs_sock *old);
/* Keeps an option the app set on s if a swap can carry it over. */
void ffs_opts_record(struct ffs_sock *s, int level, int name, const void *val, socklen_t len);
/* Sets the options kept in s on fd (best effort). */
void ffs_opts_replay(const struct ffs_sock *s, int fd);
void ffs_tcpopts_default(struct ffs_tcpopts *t);
/* Reads TCP-level values from a kernel socket into t. */
void ffs_tcpopts_read(int fd, struct ffs_tcpopts *t);
/* c (accepted on l) inherits the options l's app set, as TCP's do. */
void ffs_vopts_inherit(struct ffs_sock *c, const struct ffs_sock *l);
/* Sets the options kept in s->vopts on fd (best effort). */
void ffs_vopts_replay(const struct ffs_sock *s, int fd);

/* sock-*.c */
void ffs_unlisten(uint64_t id);
/* The app is closing fd, which holds s: its epoll registrations of fd
 * made by this process go first (handed files only). */
void ffs_epoll_forget(struct ffs_sock *s, int fd);
/* c takes over the registrations of fd that a swap moved from old. */
void ffs_epoll_inherit(struct ffs_sock *c, const struct ffs_sock *old, int fd);
/* Looks an unknown AF_UNIX fd up at the router (after exec). */
struct ffs_sock *ffs_lookup_fd(int fd);
/* Copies sa into a user buffer with accept/getsockname truncation rules. */
void ffs_copy_addr(const struct ff_sa *sa, int family, struct sockaddr *addr, socklen_t *len);

/* watch.c: keeps accelerated listeners alive across router restarts */
void ffs_watch_add(struct ffs_sock *s);
/* Starts this process's watcher if it has none (after fork). */
void ffs_watch_ensure(struct ffs_sock *s);
void ffs_watch_forget(struct ffs_sock *s);
void ffs_watch_settle(uint64_t conn_id);
void ffs_watch_fork_prepare(void);
void ffs_watch_fork_parent(void);
void ffs_watch_fork_child(void);

/* pending.c: non-blocking connects across hosts whose answer is to come */
/* Makes fd (entry s, file status flags fl) a connect under way; rfd (consumed
 * on success) becomes its file once want[wlen] has been read from it (got[glen]
 * is in already) within ms, with entry c (consumed on success). 0, or -1: not
 * possible here (nothing consumed, fd untouched). */
int ffs_pending_add(int fd, struct ffs_sock *s, struct ffs_sock *c, int rfd, int fl,
		    const uint8_t *want, size_t wlen, const uint8_t *got, size_t glen, int ms);
/* The app is closing or replacing fd: its connect under way is dropped. */
void ffs_pending_cancel(int fd);
/* phase 0 takes the lock, 1 releases it in the parent, 2 resets and
 * releases it in the child. */
void ffs_pending_fork(int phase);

/* ring.c: same-host connections over shared-memory rings (issue 14).
 * The data calls of the app on such a connection go through its rings;
 * the socket stays its doorbell (common/sdoor.c) and carries EOF. */
struct ffs_ring;
/* s (FFS_CONN on fd) takes the rings: mfds[0] the rings' memfd (size
 * bytes each, we are side), mfds[1] our end's page; both closed in every
 * case. credit: fd came through SCM_RIGHTS (ffs_ring_passing); inherited:
 * this process did not make fd (others may hold its file). 0 or -errno
 * (s then stays a plain pair). */
int ffs_ring_attach(struct ffs_sock *s, int fd, const int mfds[2], uint32_t size, int side,
		    bool credit, bool inherited);
void ffs_ring_free(struct ffs_ring *g);
/* The app is closing fd, s's last one in this process: if no other
 * process holds the end (fork, exec, SCM_RIGHTS), the peer is told now,
 * as TCP's FIN or RST would tell it (reads: EOF after the bytes; writes:
 * EPIPE), and the doorbell bytes go (unread ones would be a reset for the
 * kernel). */
void ffs_ring_closing(struct ffs_sock *s, int fd); /* fd < 0: a hold only, no fd */
/* fork(), before it, with the fd table's pool lock held (no ring is
 * freed meanwhile): the child holds the ends its parent holds. */
void ffs_ring_fork_prepare(void);
void ffs_ring_fork_after(void); /* in the parent and the child */
/* Ready bits among want (EPOLLIN, EPOLLOUT) of a ring end, from memory;
 * 0 also when only the kernel can tell (an end, an error). */
uint32_t ffs_ring_ready(struct ffs_ring *g, uint32_t want);
/* epoll.c: fd (a set, or a registered fd) closes; g is freed; fork (0:
 * prepare, 1: after, in both). */
void ffs_ep_closing(int fd);
void ffs_epoll_closed(int fd); /* sock-meta.c: a set's number may be reused */
bool ffs_ep_any(void); /* any registration tagged */
void ffs_ep_ring_gone(const struct ffs_ring *g);
void ffs_ep_fork(int phase);
/* c (a ring connection) now holds fd: its registrations recorded before
 * get their tags. */
void ffs_ep_adopt(int fd, struct ffs_sock *c);
/* The inode of s's socket (0: no rings). */
unsigned long ffs_ring_ino(const struct ffs_sock *s);

/* exec.c: what running path gives (as execveat(dirfd, path, flags), or
 * execvp's PATH search): 1 a dynamic glibc program (which may load the
 * shim), 0 anything else, -1 nothing to run (the exec will fail). */
int ffs_exec_image(int dirfd, const char *path, int flags, bool search);
/* Whether a glibc program started with envp loads this shim. */
bool ffs_exec_env_loads(char *const envp[]);
/* shutdown(fd, how) of a ring connection, rings first. */
void ffs_ring_shutdown(struct ffs_sock *s, int how);
/* c (over rings, on fd) takes the buffer sizes the app set on from, the
 * socket or listener it came of, and fd gets the doorbell's back
 * (sock-meta.c). */
void ffs_ring_bufs(struct ffs_sock *c, const struct ffs_sock *from, int fd);

/* fork(): every socket-half lock is taken before it, in this order, and
 * released after it in the parent and the child: connects under way
 * (pending.c, whose thread takes the others while it holds it), swap
 * (sock-listen), epoll records (sock-meta), channel, watcher, fd-table pool
 * (fork.c). phase 0
 * takes, 1 releases. */
void ffs_listen_fork(int phase);
void ffs_meta_fork(int phase);
void ffs_fdtab_fork(int phase);
