/* The socket half of libffshim: what the rest of the shim may use.
 *
 * preload.c hands the libc calls to the socket paths and keeps the fd
 * table current; the verbs half uses the router channel and hides its own
 * fds with the helpers below. An fd's record (struct ffs_sock) is opaque
 * outside sock/ (sock-internal.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ff.pb-c.h"

struct ffs_sock;

/* Installs the fork() handlers of the socket half (fork.c). Once, at
 * start-up. */
void ffs_sock_atfork(void);
/* Whether this is a vfork child (Python's subprocess, posix_spawn): it
 * shares our memory but not our fds, so what it closes must not touch the
 * shim's tables. */
bool ffs_vfork_child(void);
/* This process's pid (cached; a fork child's own). */
pid_t ffs_pid(void);

/* ---- the router channel (chan.c) ---- */

/* Sends req on the router channel (connecting and saying Hello first if
 * needed) and waits for its reply. fds are not consumed; received fds are
 * stored in rfds (O_CLOEXEC). Returns 0 with *rep set (caller frees), or
 * -errno when the router cannot be reached: then behave as plain sockets. */
int ffs_call(Ff__Request *req, const int *fds, int nfds, Ff__Reply **rep, int *rfds, int *nrfds);

/* ---- the shim's own fds (fdtab.c) ---- */

/* Marks fd as the shim's own; *owner is set to -1 if the app closes it. */
void ffs_fd_internal(int fd, int *owner);
/* Closes one of the shim's own fds and forgets it; *fdp becomes -1. */
void ffs_internal_close(int *fdp);
/* Moves fd (consumed) to a high close-on-exec number out of the app's way. */
int ffs_hide_fd(int fd);

/* ---- fd lifetime, as the libc entry points see it (fdtab.c) ---- */

/* A new socket: AF_INET/AF_INET6 TCP ones may be accelerated later. */
void ffs_track_socket(int fd, int domain, int type, int protocol);
/* bind() succeeded on fd: a later connect() tells the router its source. */
void ffs_track_bind(int fd);
/* close(): the app's fd and its entry go (errno as close() leaves it). */
int ffs_close(int fd);
/* Removes fd's entry and returns it (the caller owns that reference). */
struct ffs_sock *ffs_fd_take(int fd);
void ffs_sock_unref(struct ffs_sock *s);
/* nfd is now a copy of old (dup*, F_DUPFD*). */
void ffs_fd_copy(int old, int nfd);
/* The fds of [first, last] were closed (close_range, closefrom). */
void ffs_fd_drop_range(unsigned first, unsigned last);
/* The app is about to close fd, or every fd of [first, last] (close, dup2
 * onto it, close_range): what must go before the kernel closes a file the
 * router handed over (its epoll registrations) goes now. */
void ffs_fd_closing(int fd);
void ffs_fd_closing_range(unsigned first, unsigned last);
/* dup2/dup3 of old onto nfd is about to close nfd's file. */
void ffs_fd_replacing(int old, int nfd);

/* ---- the socket paths (sock-*.c): each returns what the libc call would ---- */

int ffs_connect(int fd, const struct sockaddr *addr, socklen_t len);
int ffs_listen(int fd, int backlog);
int ffs_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int ffs_shutdown(int fd, int how);
/* getsockname(), or getpeername() when peer is set. */
int ffs_getsockname(int fd, struct sockaddr *addr, socklen_t *len, bool peer);
int ffs_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int ffs_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int ffs_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);

/* ---- the data path of accelerated connections (sock-io.c) ---- */

/* Adds n (a call's result) to fd's byte counter, tx or rx. */
void ffs_count(int fd, ssize_t n, bool tx);
bool ffs_is_conn(int fd);
/* fd's record if it is an accelerated connection over an AF_UNIX pair
 * (same host), whose TCP send semantics the shim emulates; else NULL. */
struct ffs_sock *ffs_pair_of(int fd);
/* Whether POLLHUP in revents (poll's or epoll's) on fd is one TCP would
 * not give: TCP says it once both directions are shut (the peer's FIN and
 * our own SHUT_WR) or on a reset, an AF_UNIX end as soon as its peer is
 * released, with the EOF. Not when it is all there is to report (a wait
 * for no events would return at once for ever without it). */
bool ffs_hup_hidden(int fd, uint32_t revents);
/* r is what a send with MSG_NOSIGNAL of len bytes on s returned: returns
 * what TCP would have given for the app's flags. */
ssize_t ffs_sent(int fd, struct ffs_sock *s, ssize_t r, size_t len, int app_flags);

/* ring.c: a same-host connection over shared-memory rings (NULL: fd is
 * none); its data calls, with the kernel's semantics for a stream socket
 * (flags as the app gave them; -1 and errno on error). */
struct ffs_sock *ffs_ring_conn(int fd);
/* fd went through SCM_RIGHTS: its receiver holds the end from now on. */
void ffs_ring_passing(int fd);
/* Whether this process has a ring end attached. */
bool ffs_rings_any(void);
/* The app set fd's O_NONBLOCK to nb (fcntl F_SETFL, ioctl FIONBIO; -1:
 * to something not known). Only if ffs_rings_any(). */
void ffs_ring_setfl(int fd, int nb);
/* Before a wait on fds (poll, select, epoll and kin): the sockets of ring
 * ends whose disarm a recv deferred are made to say the truth again. A
 * wait that may sleep (sleeps) first watches streams' rings a moment. */
void ffs_ring_settle(bool sleeps);
/* epoll_ctl registered fd for events: EPOLLET on a ring end asks its
 * doorbell for edges from now on. */
void ffs_ring_epoll(int fd, uint32_t events);
/* epoll on ring connections, answered from the rings (epoll.c). */
typedef int (*ffs_ep_kwait)(int epfd, struct epoll_event *ev, int max, int timeout,
			    const sigset_t *mask);
/* The app's epoll_ctl (level-triggered ring registrations get a tag). */
int ffs_ep_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* A wait's first look: > 0 events ready (from the rings, or from the
 * kernel without waiting, one time in a few), 0 to wait in the kernel,
 * or -1 with errno from it. */
int ffs_ep_fast(int epfd, struct epoll_event *ev, int max, ffs_ep_kwait kw, const sigset_t *mask);
/* The kernel's answer of n events (n < 0: its error), tags translated
 * back and readiness a deferred disarm left dropped: how many remain. */
int ffs_ep_answer(struct epoll_event *ev, int n);
/* Before a wait in the kernel: the registrations epoll_ctl left to
 * memory go to the kernel (ffs_ring_settle calls it). */
void ffs_ep_sync(void);
/* A thread begins (1) or ends (-1) a wait in the kernel that may sleep:
 * meanwhile, epoll_ctl goes to the kernel at once. Before settling. */
void ffs_ep_sleeping(int d);
/* Before an exec: the kernel gets the app's data back in sets it keeps. */
void ffs_ep_exec(void);
/* fd just came through SCM_RIGHTS: what this process knew of its number
 * goes, and the router is asked about it (with credit, taking the
 * sender's hold of its rings, ffs_ring_passing). */
void ffs_lookup_passed(int fd, bool credit);
ssize_t ffs_ring_send(int fd, struct ffs_sock *s, const struct iovec *iov, int n, int flags);
ssize_t ffs_ring_recv(int fd, struct ffs_sock *s, const struct iovec *iov, int n, int flags);
/* sendmmsg / recvmmsg (tx: send): messages done, or -1. */
int ffs_ring_mmsg(int fd, struct ffs_sock *s, struct mmsghdr *v, unsigned n, int flags, bool tx);
/* sendfile into a ring connection. */
ssize_t ffs_ring_sendfile(int out, struct ffs_sock *s, int in, off_t *off, size_t n);
/* splice(2) where in or out is a ring connection (the other a pipe). */
ssize_t ffs_ring_splice(int in, off_t *inoff, int out, off_t *outoff, size_t n, unsigned flags);
/* exec.c: an exec is about to run the file at path (relative to dirfd,
 * with execveat's flags; search: execvp's PATH search) with environment
 * envp. Ring connections the new image inherits are put behind a relay
 * if it will not load the shim. errno is kept. */
void ffs_exec_prepare(int dirfd, const char *path, int flags, bool search, char *const envp[]);
/* ioctl FIONREAD (bytes to read) / SIOCOUTQ (sent, not read yet): true
 * and *v set if fd is a ring connection. */
bool ffs_ring_ioctl(int fd, unsigned long req, int *v);
