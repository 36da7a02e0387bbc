/* listen() and accept(). An accelerated listener's fd is the shim end of
 * the router's accept queue; the shim keeps a hidden copy of the kernel
 * listener so that, if the router goes away (EOF on the queue), the app's
 * fd is swapped back to the kernel listener and accept() goes on there.
 * A kernel listener offers itself to the router again (at most once a
 * second, from accept()) so acceleration resumes after a router restart. */
#include "sock-internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define UPGRADE_RETRY_NS (1000LL * 1000 * 1000)
#define NEVER		 INT64_MAX

static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;

void ffs_listen_fork(int phase)
{
	if (phase == 0)
		pthread_mutex_lock(&swap_lock);
	else
		pthread_mutex_unlock(&swap_lock);
}

void ffs_copy_addr(const struct ff_sa *sa, int family, struct sockaddr *addr, socklen_t *len)
{
	struct sockaddr_storage ss;
	int n;

	if (!addr || !len)
		return;
	n = ff_sa_to_sockaddr(sa, family, &ss);
	if (n < 0)
		n = ff_sa_to_sockaddr(sa, sa->ip.family, &ss);
	if (n < 0)
		return;
	memcpy(addr, &ss, *len < (socklen_t)n ? *len : (socklen_t)n);
	*len = (socklen_t)n;
}

static int bound_addr(int fd, struct ff_sa *sa)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return ff_sa_from_sockaddr(sa, (struct sockaddr *)&ss, len);
}

/* A listener state carried across a swap: options, registrations, backlog. */
static struct ffs_sock *listener_like(enum ffs_kind kind, const struct ffs_sock *s)
{
	struct ffs_sock *n = ffs_sock_new(kind, s->family);

	if (!n)
		return NULL;
	n->local = s->local;
	n->backlog = s->backlog;
	n->tcp = s->tcp;
	n->nopts = s->nopts;
	memcpy(n->opts, s->opts, sizeof(n->opts));
	ffs_vopts_inherit(n, s);
	if (s->neps) {
		n->eps = malloc(sizeof(*n->eps) * (size_t)s->neps);
		if (n->eps) {
			memcpy(n->eps, s->eps, sizeof(*n->eps) * (size_t)s->neps);
			n->neps = s->neps;
		}
	}
	return n;
}

static int register_listener(int fd, struct ffs_sock *s, int *qfd, int *qr, uint64_t *id)
{
	Ff__Request req = FF__REQUEST__INIT;
	struct ff_listen_msg lm;
	Ff__Reply *rep = NULL;
	int rfds[FF_MAX_FDS], nrfds = 0, err;

	ff_listen_to_proto(&lm, &s->local, s->backlog, s->tcp.v6only, 0);
	req.body_case = FF__REQUEST__BODY_LISTEN;
	req.listen = &lm.m;
	err = ffs_call(&req, &fd, 1, &rep, rfds, &nrfds);
	if (err)
		return err;
	if (rep->status) {
		err = -ff_status_errno(rep->status);
		ff_warn("ffnet: router refused listener: %s", rep->error);
	} else if (nrfds != 2 || rep->body_case != FF__REPLY__BODY_LISTEN) {
		err = -EPROTO;
	} else {
		*id = rep->listen->listener_id;
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	if (err) {
		ff_close_fds(rfds, nrfds);
		return err;
	}
	*qfd = rfds[0];
	*qr = rfds[1];
	return 0;
}

/* Offers the kernel listener at fd to the router. Caller holds swap_lock. */
static void upgrade(int fd, struct ffs_sock *s)
{
	struct ffs_sock *n;
	int qfd, qr, kfd, err, fl = REAL(fcntl)(fd, F_GETFL);
	uint64_t id = 0;
	struct stat st;

	if (fl < 0 || bound_addr(fd, &s->local) < 0 || !ffs_is_own(&s->local.ip)) {
		s->next_upgrade_ns = ffs_chan_up() ? NEVER : ffs_now_ns() + UPGRADE_RETRY_NS;
		return;
	}
	ffs_tcpopts_read(fd, &s->tcp);
	/* the router makes the kernel listener (a file we share) non-blocking:
	 * fl, read before, is what the app set */
	err = register_listener(fd, s, &qfd, &qr, &id);
	if (err) {
		s->next_upgrade_ns =
		    err == -EPERM || err == -EINVAL ? NEVER : ffs_now_ns() + UPGRADE_RETRY_NS;
		return;
	}
	n = listener_like(FFS_LISTEN, s);
	kfd = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
	if (!n || kfd < 0) {
		if (kfd >= 0)
			REAL(close)(kfd);
		REAL(close)(qfd);
		REAL(close)(qr);
		ffs_sock_unref(n);
		return;
	}
	n->kfd = ffs_hide_fd(kfd);
	ffs_fd_internal(n->kfd, &n->kfd);
	n->qr = ffs_hide_fd(qr);
	ffs_fd_internal(n->qr, &n->qr);
	n->listener_id = id;
	n->routed = true;
	n->q_ino = fstat(qfd, &st) == 0 ? st.st_ino : 0;
	if (ffs_swap(fd, qfd, fl, s) < 0) {
		ffs_sock_unref(n);
		return;
	}
	ffs_fd_set(fd, ffs_sock_ref(n));
	ffs_watch_add(n);
	ffs_sock_unref(n);
}

int ffs_listen(int fd, int backlog)
{
	struct ffs_sock *s = ffs_fd_get(fd);
	int r;

	if (s && s->kind == FFS_LISTEN) { /* listen() again only changes the backlog */
		s->backlog = backlog;
		return 0;
	}
	r = REAL(listen)(fd, backlog);
	if (r < 0 || !s || (s->kind != FFS_TCP && s->kind != FFS_KLISTEN))
		return r;
	pthread_mutex_lock(&swap_lock);
	if (ffs_fd_get(fd) == s) {
		s->kind = FFS_KLISTEN;
		s->backlog = backlog;
		upgrade(fd, s);
	}
	pthread_mutex_unlock(&swap_lock);
	return 0;
}

/* The router went away: put the kernel listener back under the app's fd. */
static int fallback(int fd, struct ffs_sock *s)
{
	struct ffs_sock *n;
	int k;

	pthread_mutex_lock(&swap_lock);
	if (ffs_fd_get(fd) != s) /* another thread did it */
		goto out_unlock;
	if (s->kfd < 0 || s->shut)
		goto out_einval;
	n = listener_like(FFS_KLISTEN, s);
	k = REAL(fcntl)(s->kfd, F_DUPFD_CLOEXEC, 0);
	if (!n || k < 0 || ffs_swap(fd, k, REAL(fcntl)(fd, F_GETFL), s) < 0) {
		ffs_sock_unref(n);
		goto out_einval;
	}
	n->next_upgrade_ns = ffs_now_ns() + UPGRADE_RETRY_NS;
	ffs_fd_set(fd, n);
out_unlock:
	pthread_mutex_unlock(&swap_lock);
	return 0;
out_einval:
	pthread_mutex_unlock(&swap_lock);
	return -EINVAL;
}

/* nfd (with mfds, its rings' memfd and end page, consumed in every case;
 * NULL: none) becomes an accepted connection of l: nfd, or -errno. */
static int take_conn(struct ffs_sock *l, const Ff__Accepted *a, int nfd, int *mfds,
		     struct sockaddr *addr, socklen_t *len, int flags)
{
	struct ffs_sock *c = NULL;
	struct ff_sa local, peer;
	int fl;

	if (ff_sa_from_proto(&local, a->local) < 0 || ff_sa_from_proto(&peer, a->peer) < 0) {
		if (mfds)
			ff_close_fds(mfds, 2);
		return -EPROTO;
	}
	if (a->path == FF__PATH__PATH_NONE) {
		ffs_watch_settle(a->conn_id); /* our watcher's copy of nfd is closed */
	} else {
		c = ffs_sock_new(FFS_CONN, l->family);
		if (!c) {
			if (mfds)
				ff_close_fds(mfds, 2);
			return -ENOMEM;
		}
		c->local = local;
		c->peer = peer;
		c->path = a->path;
		c->tcp = l->tcp; /* accepted TCP sockets inherit the listener's */
		ffs_vopts_inherit(c, l);
		c->slot = ffs_stat_slot(a->slot);
		ffs_opts_replay(l, nfd);
		if (mfds)
			ffs_ring_bufs(c, l, nfd);
		/* as in sock-conn.c: without its rings, the connection is dead */
		if (mfds && ffs_ring_attach(c, nfd, mfds, a->ring, 1, false, false) < 0) {
			ffs_sock_unref(c);
			return -ENOBUFS;
		}
	}
	/* exactly what accept4 was asked for, whatever the router's socket had */
	fl = REAL(fcntl)(nfd, F_GETFL);
	if (fl >= 0 && !!(fl & O_NONBLOCK) != !!(flags & SOCK_NONBLOCK))
		REAL(fcntl)(nfd, F_SETFL, fl ^ O_NONBLOCK);
	if (!(flags & SOCK_CLOEXEC))
		REAL(fcntl)(nfd, F_SETFD, 0);
	if (!c)
		c = ffs_sock_new(FFS_OTHER, l->family);
	if (c)
		c->handed = true;
	ffs_fd_set(nfd, c);
	ffs_copy_addr(&peer, l->family, addr, len);
	return nfd;
}

/* One connection from the accept queue, or -errno (-ENOTCONN: queue EOF). */
static int accept_queue(int fd, struct ffs_sock *l, struct sockaddr *addr, socklen_t *len,
			int flags)
{
	for (;;) {
		uint8_t buf[512];
		int fds[FF_MAX_FDS], nfds, r;
		ssize_t n = ff_recv_fds_once(fd, buf, sizeof(buf), fds, FF_MAX_FDS, &nfds, 0);
		Ff__Accepted *a;
		bool ring;

		if (n == -EMSGSIZE || n == -ETOOMANYREFS)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ENOTCONN;
		a = (Ff__Accepted *)ff_msg_unpack(&ff__accepted__descriptor, buf, (size_t)n);
		ring = a && a->ring && a->path == FF__PATH__PATH_SAME_HOST;
		if (!a || nfds != (ring ? 3 : 1)) {
			r = -EPROTO;
		} else {
			r = take_conn(l, a, fds[0], ring ? fds + 1 : NULL, addr, len, flags);
			nfds = 1; /* the memfds are taken in every case */
		}
		if (a)
			ff__accepted__free_unpacked(a, NULL);
		if (r >= 0)
			return r;
		ff_close_fds(fds, nfds);
	}
}

static int accept_kernel(int fd, struct ffs_sock *s, struct sockaddr *addr, socklen_t *len,
			 int flags)
{
	int r = REAL(accept4)(fd, addr, len, flags), e = errno;

	if (r >= 0)
		ffs_fd_set(r, ffs_sock_new(FFS_OTHER, s ? s->family : 0));
	if (s && s->kind == FFS_KLISTEN && ffs_now_ns() >= s->next_upgrade_ns) {
		pthread_mutex_lock(&swap_lock);
		if (ffs_fd_get(fd) == s && s->kind == FFS_KLISTEN) {
			s->next_upgrade_ns = ffs_now_ns() + UPGRADE_RETRY_NS;
			upgrade(fd, s);
		}
		pthread_mutex_unlock(&swap_lock);
	}
	errno = e;
	return r;
}

int ffs_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	struct ffs_sock *s = ffs_fd_get(fd);
	int r;

	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
		errno = EINVAL;
		return -1;
	}
	if (!s) {
		r = REAL(accept4)(fd, addr, len, flags);
		if (r >= 0 || (errno != EINVAL && errno != EOPNOTSUPP))
			return r;
		s = ffs_lookup_fd(fd); /* an inherited accept queue after exec? */
		if (!s || s->kind != FFS_LISTEN) {
			errno = EINVAL;
			return -1;
		}
	}
	if (s->kind != FFS_LISTEN)
		return accept_kernel(fd, s, addr, len, flags);
	if (s->qr >= 0)
		ffs_watch_ensure(s); /* a child after fork watches its own */
	ffs_sock_ref(s);
	r = accept_queue(fd, s, addr, len, flags);
	if (r == -ENOTCONN) {
		r = fallback(fd, s);
		if (!r)
			r = accept_kernel(fd, ffs_fd_get(fd), addr, len, flags);
	}
	ffs_sock_unref(s);
	if (r < 0 && r >= -4095) {
		errno = -r;
		return -1;
	}
	return r;
}

/* The app closed its last copy of a listener in this process: if no other
 * process holds it, the router drops it now, so the port is free when
 * close() returns, as with TCP. Best effort: the router notices anyway. */
void ffs_unlisten(uint64_t id)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unlisten m = FF__UNLISTEN__INIT;
	Ff__Reply *rep = NULL;
	int rfds[FF_MAX_FDS], nrfds = 0, saved = errno;

	m.listener_id = id;
	req.body_case = FF__REQUEST__BODY_UNLISTEN;
	req.unlisten = &m;
	if (ffs_call(&req, NULL, 0, &rep, rfds, &nrfds) == 0) {
		ff_close_fds(rfds, nrfds);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	errno = saved;
}

int ffs_shutdown(int fd, int how)
{
	struct ffs_sock *s = ffs_fd_get(fd);

	if (s && s->kind == FFS_CONN && (how == SHUT_WR || how == SHUT_RDWR))
		s->shut_wr = true;
	/* the rings first: EOF on the socket must come after their bytes */
	if (s && s->kind == FFS_CONN && s->ring &&
	    (how == SHUT_RD || how == SHUT_WR || how == SHUT_RDWR))
		ffs_ring_shutdown(s, how);
	if (!s || s->kind != FFS_LISTEN)
		return REAL(shutdown)(fd, how);
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
		errno = EINVAL;
		return -1;
	}
	if (how == SHUT_WR)
		return 0;
	/* A TCP listener shut for reading stops listening; blocked accepts
	 * wake up with EINVAL. */
	s->shut = true;
	if (s->kfd >= 0)
		REAL(shutdown)(s->kfd, SHUT_RDWR);
	return REAL(shutdown)(fd, SHUT_RDWR);
}
