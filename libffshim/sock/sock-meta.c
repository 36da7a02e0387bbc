/* What an accelerated fd says about itself: names, options, and epoll
 * registrations (recorded for a later swap and, on a file the router
 * handed over, removed when the app closes it). An accelerated socket
 * answers as a TCP socket with the overlay addresses would; IP- and
 * TCP-level options are kept by the shim, socket-level ones are the
 * kernel's. */
#include "sock-internal.h"

#include "fdpass.h"
#include "log.h"
#include "ff.pb-c.h"
#include "msg.h"
#include "sdoor.h"

#include <ff/wire.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t ep_lock = PTHREAD_MUTEX_INITIALIZER;

void ffs_meta_fork(int phase)
{
	if (phase == 0)
		pthread_mutex_lock(&ep_lock);
	else
		pthread_mutex_unlock(&ep_lock);
}

static struct ffs_sock *sock_from_lookup(const Ff__LookupReply *lr)
{
	struct ffs_sock *s;
	struct ff_sa local, peer = {0};

	if (ff_sa_from_proto(&local, lr->local) < 0)
		return NULL;
	if (lr->kind == FF_KIND_CONN && ff_sa_from_proto(&peer, lr->peer) < 0)
		return NULL;
	s = ffs_sock_new(lr->kind == FF_KIND_CONN ? FFS_CONN : FFS_LISTEN, local.ip.family);
	if (!s)
		return NULL;
	s->local = local;
	s->peer = peer;
	if (lr->kind == FF_KIND_CONN) {
		s->slot = ffs_stat_slot(lr->slot);
		s->path = lr->path;
	}
	return s;
}

static struct ffs_sock *lookup_fd(int fd, bool passed)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Lookup m = FF__LOOKUP__INIT;
	Ff__Reply *rep = NULL;
	struct ffs_sock *s = NULL;
	int rfds[FF_MAX_FDS], nrfds = 0, dom = -1, type = -1, saved = errno;
	socklen_t len = sizeof(dom);
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0 ||
	    REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		goto out;
	/* ours are AF_UNIX pairs (same host) and TCP sockets (across hosts) */
	if (dom != AF_UNIX && !((dom == AF_INET || dom == AF_INET6) && type == SOCK_STREAM)) {
		ffs_fd_set(fd, ffs_sock_new(FFS_OTHER, dom)); /* do not ask again */
		goto out;
	}
	if (!ffs_chan_up())
		goto out;
	m.inode = st.st_ino;
	req.body_case = FF__REQUEST__BODY_LOOKUP;
	req.lookup = &m;
	if (ffs_call(&req, NULL, 0, &rep, rfds, &nrfds) < 0)
		goto out;
	if (!rep->status && rep->body_case == FF__REPLY__BODY_LOOKUP)
		s = sock_from_lookup(rep->lookup);
	/* an inherited connection over rings: they come with it */
	if (s && s->kind == FFS_CONN && rep->lookup->ring && nrfds == 2) {
		nrfds = 0;
		if (ffs_ring_attach(s, fd, rfds, rep->lookup->ring, rep->lookup->side ? 1 : 0,
				    passed, true) < 0) {
			ffs_sock_unref(s);
			s = NULL;
		}
	}
	ff_close_fds(rfds, nrfds);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	ffs_fd_set(fd, s ? s : ffs_sock_new(FFS_OTHER, 0));
out:
	errno = saved;
	return s;
}

struct ffs_sock *ffs_lookup_fd(int fd)
{
	return lookup_fd(fd, false);
}

void ffs_lookup_passed(int fd, bool credit)
{
	ffs_fd_set(fd, NULL);
	lookup_fd(fd, credit);
}

int ffs_getsockname(int fd, struct sockaddr *addr, socklen_t *len, bool peer)
{
	struct ffs_sock *s = ffs_fd_get(fd);
	int r;

	if (!s) {
		r = peer ? REAL(getpeername)(fd, addr, len) : REAL(getsockname)(fd, addr, len);
		if (r < 0 || !addr || !len)
			return r;
		/* a socket this process never made (inherited across exec):
		 * an unnamed AF_UNIX one or a TCP one may be ours */
		s = addr->sa_family == AF_UNIX && *len != sizeof(sa_family_t) ? NULL
									      : ffs_lookup_fd(fd);
		if (!s || s->kind == FFS_OTHER)
			return r;
	}
	if (s->kind == FFS_CONN || (s->kind == FFS_LISTEN && !peer)) {
		if (!addr || !len) {
			errno = EFAULT;
			return -1;
		}
		ffs_copy_addr(peer ? &s->peer : &s->local, s->family, addr, len);
		return 0;
	}
	if (s->kind == FFS_LISTEN) {
		errno = ENOTCONN;
		return -1;
	}
	return peer ? REAL(getpeername)(fd, addr, len) : REAL(getsockname)(fd, addr, len);
}

static int put(void *val, socklen_t *len, const void *src, socklen_t n)
{
	if (!val || !len) {
		errno = EFAULT;
		return -1;
	}
	if (*len < n)
		n = *len;
	memcpy(val, src, n);
	*len = n;
	return 0;
}

static int put_int(void *val, socklen_t *len, int v)
{
	return put(val, len, &v, sizeof(v));
}

static int *tcp_int(struct ffs_sock *s, int level, int name)
{
	struct ffs_tcpopts *t = &s->tcp;

	if (level == IPPROTO_TCP) {
		switch (name) {
		case TCP_NODELAY:
			return &t->nodelay;
		case TCP_CORK:
			return &t->cork;
		case TCP_KEEPIDLE:
			return &t->keepidle;
		case TCP_KEEPINTVL:
			return &t->keepintvl;
		case TCP_KEEPCNT:
			return &t->keepcnt;
		case TCP_USER_TIMEOUT:
			return &t->user_timeout;
		case TCP_QUICKACK:
			return &t->quickack;
		case TCP_MAXSEG:
			return &t->maxseg;
		case TCP_DEFER_ACCEPT:
			return &t->defer_accept;
		case TCP_NOTSENT_LOWAT:
			return &t->notsent_lowat;
		case TCP_FASTOPEN:
			return &t->fastopen;
		}
	} else if (level == IPPROTO_IP) {
		if (name == IP_TOS)
			return &t->tos;
		if (name == IP_TTL)
			return &t->ttl;
	} else if (level == IPPROTO_IPV6 && name == IPV6_V6ONLY) {
		return &t->v6only;
	}
	return NULL;
}

static int tcp_info(struct ffs_sock *s, void *val, socklen_t *len)
{
	struct tcp_info ti;

	memset(&ti, 0, sizeof(ti));
	ti.tcpi_state = s->kind == FFS_LISTEN ? TCP_LISTEN : TCP_ESTABLISHED;
	ti.tcpi_rto = 200000;
	ti.tcpi_ato = 40000;
	ti.tcpi_snd_mss = ti.tcpi_rcv_mss = ti.tcpi_advmss = (uint32_t)s->tcp.maxseg;
	ti.tcpi_pmtu = 1500;
	ti.tcpi_rtt = 50;
	ti.tcpi_rttvar = 25;
	ti.tcpi_snd_ssthresh = 0x7fffffff;
	ti.tcpi_snd_cwnd = 10;
	ti.tcpi_rcv_space = 65536;
	return put(val, len, &ti, sizeof(ti));
}

static int sol_socket_get(int fd, struct ffs_sock *s, int name, void *val, socklen_t *len)
{
	struct ucred none = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};

	switch (name) {
	case SO_DOMAIN:
		return put_int(val, len, s->family);
	case SO_PROTOCOL:
		return put_int(val, len, IPPROTO_TCP);
	case SO_TYPE:
		return put_int(val, len, SOCK_STREAM);
	case SO_ACCEPTCONN:
		return put_int(val, len, s->kind == FFS_LISTEN);
	case SO_PEERCRED:
		return put(val, len, &none, sizeof(none));
	default:
		/* a listener's socket options are the kernel listener's */
		if (s->kind == FFS_LISTEN && s->kfd >= 0)
			fd = s->kfd;
		return REAL(getsockopt)(fd, SOL_SOCKET, name, val, len);
	}
}

/* ---- the options the shim keeps no field for ---- */

/* A fresh TCP socket of s's family with the options the app set on s set
 * again: it answers as the kernel's TCP would, formats, lengths and errnos
 * included (IP_OPTIONS is an empty list, an unknown option ENOPROTOOPT).
 * It is not connected: what depends on a connection (TCP_INFO, IP_MTU,
 * TCP_MAXSEG) is answered before it is asked. */
void ffs_vopts_replay(const struct ffs_sock *s, int fd)
{
	for (int i = 0; i < s->nvopts; i++)
		REAL(setsockopt)(fd, s->vopts[i].level, s->vopts[i].name, s->vopts[i].val,
				 s->vopts[i].len);
}

/* getsockopt (get) or setsockopt (the kernel's verdict on the value; *len
 * is the app's length) on a scratch socket; errno as the call left it. */
static int scratch(const struct ffs_sock *s, bool get, int level, int name, void *val,
		   socklen_t *len)
{
	int t = REAL(socket)(s->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP), r, e;

	if (t < 0)
		return -1;
	ffs_vopts_replay(s, t);
	r = get ? REAL(getsockopt)(t, level, name, val, len)
		: REAL(setsockopt)(t, level, name, val, *len);
	e = errno;
	REAL(close)(t);
	errno = e;
	return r;
}

/* Keeps an option the kernel accepted, replacing an earlier value. One that
 * does not fit is refused with ENOBUFS rather than forgotten. */
static int vopt_keep(struct ffs_sock *s, int level, int name, const void *val, socklen_t len)
{
	int i;

	if (len > sizeof(s->vopts[0].val)) {
		errno = ENOBUFS;
		return -1;
	}
	if (!s->vopts && !(s->vopts = calloc(FFS_MAX_VOPTS, sizeof(*s->vopts)))) {
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < s->nvopts; i++)
		if (s->vopts[i].level == level && s->vopts[i].name == name)
			break;
	if (i == FFS_MAX_VOPTS) {
		errno = ENOBUFS;
		return -1;
	}
	if (i == s->nvopts)
		s->nvopts++;
	s->vopts[i].level = level;
	s->vopts[i].name = name;
	s->vopts[i].len = len;
	if (len)
		memcpy(s->vopts[i].val, val, len);
	return 0;
}

/* The send and receive buffer sizes of a connection over rings are the
 * app's to set and read, as TCP's are, but the socket is the doorbell,
 * whose send buffer the readiness protocol sized (common/sdoor.h): they
 * are kept here, answered as a TCP socket with them would, and never set
 * on the socket. */
static bool buf_opt(int level, int name)
{
	return level == SOL_SOCKET && (name == SO_SNDBUF || name == SO_RCVBUF ||
				       name == SO_SNDBUFFORCE || name == SO_RCVBUFFORCE);
}

void ffs_ring_bufs(struct ffs_sock *c, const struct ffs_sock *from, int fd)
{
	int sb = FF_SDOOR_SNDBUF;
	bool any = false;

	for (int i = 0; i < from->nopts; i++) {
		const struct ffs_opt *o = &from->opts[i];

		if (buf_opt(o->level, o->name)) {
			vopt_keep(c, o->level, o->name, o->val, o->len);
			any = true;
		}
	}
	/* the socket had them: the doorbell's size again */
	if (any)
		REAL(setsockopt)(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
}

void ffs_vopts_inherit(struct ffs_sock *c, const struct ffs_sock *l)
{
	for (int i = 0; i < l->nvopts; i++)
		vopt_keep(c, l->vopts[i].level, l->vopts[i].name, l->vopts[i].val,
			  l->vopts[i].len);
}

/* An fd never seen (inherited across exec) asked something only a TCP
 * socket would answer: if it is an unnamed AF_UNIX socket, ask the router. */
static struct ffs_sock *known(int fd, int level, int name)
{
	struct ffs_sock *s = ffs_fd_get(fd);

	if (s)
		return s->kind == FFS_OTHER ? NULL : s;
	if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6 ||
	    (level == SOL_SOCKET && (name == SO_DOMAIN || name == SO_PROTOCOL)))
		return ffs_lookup_fd(fd);
	return NULL;
}

/* A connection across hosts is a real TCP socket: its TCP and IP options
 * are the kernel's (IPv6 ones only if the host socket is IPv6 too). */
static bool real_tcp(int fd, struct ffs_sock *s, int level)
{
	int dom = AF_INET;
	socklen_t len = sizeof(dom);

	if (s->kind != FFS_CONN || s->path != FF__PATH__PATH_TCP || level == SOL_SOCKET)
		return false;
	if (level != IPPROTO_IPV6)
		return true;
	return REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 && dom == AF_INET6;
}

int ffs_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct ffs_sock *s = known(fd, level, name);
	int *v;

	if (!s || (s->kind != FFS_CONN && s->kind != FFS_LISTEN) || real_tcp(fd, s, level))
		return REAL(getsockopt)(fd, level, name, val, len);
	if (s->ring && buf_opt(level, name))
		return scratch(s, true, level, name, val, len);
	if (level == SOL_SOCKET)
		return sol_socket_get(fd, s, name, val, len);
	if (level == IPPROTO_TCP && name == TCP_INFO)
		return tcp_info(s, val, len);
	if (level == IPPROTO_TCP && name == TCP_CONGESTION)
		return put(val, len, s->tcp.congestion, sizeof(s->tcp.congestion)); /* padded, as TCP's */
	if (level == IPPROTO_IP && name == IP_MTU)
		return put_int(val, len, 1500);
	v = tcp_int(s, level, name);
	if (v)
		return put_int(val, len, *v);
	return scratch(s, true, level, name, val, len);
}

/* The kernel's bounds for the options kept in struct ffs_tcpopts (the
 * common ones, set on every connection by Go and others: no scratch socket). */
static bool tcp_int_ok(int level, int name, int v)
{
	if (level == IPPROTO_TCP) {
		switch (name) {
		case TCP_KEEPIDLE:
		case TCP_KEEPINTVL:
			return v >= 1 && v <= 32767;
		case TCP_KEEPCNT:
			return v >= 1 && v <= 127;
		case TCP_USER_TIMEOUT:
			return v >= 0;
		case TCP_MAXSEG:
			return v == 0 || (v >= 88 && v <= 65535);
		}
	} else if (level == IPPROTO_IP && name == IP_TTL) {
		return v == -1 || (v >= 1 && v <= 255);
	}
	return true;
}

static int virtual_set(struct ffs_sock *s, int level, int name, const void *val, socklen_t len)
{
	int *v, iv;

	if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
		if (!val || len == 0) {
			errno = EINVAL;
			return -1;
		}
		if (scratch(s, false, level, name, (void *)val, &len) < 0)
			return -1; /* an algorithm this kernel does not have */
		memset(s->tcp.congestion, 0, sizeof(s->tcp.congestion));
		if (len >= sizeof(s->tcp.congestion))
			len = sizeof(s->tcp.congestion) - 1;
		memcpy(s->tcp.congestion, val, len);
		s->tcp.congestion[len] = '\0';
		return 0;
	}
	v = tcp_int(s, level, name);
	if (!v) {
		if (scratch(s, false, level, name, (void *)val, &len) < 0)
			return -1;
		return vopt_keep(s, level, name, val, len);
	}
	if (!val || len < sizeof(int)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(&iv, val, sizeof(int));
	if (!tcp_int_ok(level, name, iv)) {
		errno = EINVAL;
		return -1;
	}
	if (level == IPPROTO_IP && name == IP_TTL && iv == -1)
		iv = 64; /* the default again */
	*v = iv;
	return 0;
}

int ffs_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct ffs_sock *s = known(fd, level, name);
	int r, saved = errno;

	if (s && (s->kind == FFS_CONN || s->kind == FFS_LISTEN) && !real_tcp(fd, s, level)) {
		if (level != SOL_SOCKET)
			return virtual_set(s, level, name, val, len);
		if (s->ring && buf_opt(level, name)) {
			socklen_t l = len;

			r = scratch(s, false, level, name, (void *)val, &l);
			return r < 0 ? r : vopt_keep(s, level, name, val, len);
		}
		r = REAL(setsockopt)(s->kind == FFS_LISTEN && s->kfd >= 0 ? s->kfd : fd, level,
				     name, val, len);
		if (r < 0 && (errno == ENOPROTOOPT || errno == EOPNOTSUPP)) {
			errno = saved;
			return 0; /* meaningful for TCP only; accepted as TCP would */
		}
		if (r == 0 && s->kind == FFS_LISTEN)
			ffs_opts_record(s, level, name, val, len);
		return r;
	}
	r = REAL(setsockopt)(fd, level, name, val, len);
	if (r == 0 && s && (s->kind == FFS_TCP || s->kind == FFS_KLISTEN)) {
		ffs_opts_record(s, level, name, val, len);
		/* what an accelerated socket made from this one must answer */
		if ((level == IPPROTO_IP || level == IPPROTO_IPV6 || level == IPPROTO_TCP) &&
		    !tcp_int(s, level, name) && !(level == IPPROTO_TCP && name == TCP_CONGESTION))
			vopt_keep(s, level, name, val, len);
		errno = saved;
	}
	return r;
}

/* The inode of the set last recorded, so that an event loop that adds and
 * deletes registrations all the time does not fstat it each time; a
 * close of that number forgets it (ffs_epoll_closed). */
static int ino_fd = -1;
static unsigned long ino_val;

void ffs_epoll_closed(int fd)
{
	if (__atomic_load_n(&ino_fd, __ATOMIC_RELAXED) == fd) {
		pthread_mutex_lock(&ep_lock);
		if (ino_fd == fd)
			ino_fd = -1;
		pthread_mutex_unlock(&ep_lock);
	}
}

static void ep_record(struct ffs_sock *s, int epfd, int op, int fd, const struct epoll_event *ev)
{
	struct stat st;
	int i;

	pthread_mutex_lock(&ep_lock);
	if (epfd == ino_fd)
		st.st_ino = ino_val;
	for (i = 0; i < s->neps; i++)
		if (s->eps[i].epfd == epfd && s->eps[i].fd == fd)
			break;
	if (op == EPOLL_CTL_DEL) {
		if (i < s->neps)
			s->eps[i] = s->eps[--s->neps];
	} else if (ev && (i < s->neps || epfd == ino_fd || fstat(epfd, &st) == 0)) {
		if (epfd != ino_fd && i == s->neps) {
			ino_val = st.st_ino;
			__atomic_store_n(&ino_fd, epfd, __ATOMIC_RELAXED);
		}
		if (i == s->neps) {
			struct ffs_epreg *n = realloc(s->eps, sizeof(*n) * (size_t)(s->neps + 1));

			if (!n)
				goto out_unlock;
			s->eps = n;
			s->neps++;
			s->eps[i].epfd = epfd;
			s->eps[i].fd = fd;
			s->eps[i].ino = st.st_ino;
			s->eps[i].pid = ffs_pid();
		}
		s->eps[i].ev = *ev;
	}
out_unlock:
	pthread_mutex_unlock(&ep_lock);
}

void ffs_epoll_forget(struct ffs_sock *s, int fd)
{
	int pid;

	if (!s->handed || !__atomic_load_n(&s->neps, __ATOMIC_RELAXED))
		return;
	pid = ffs_pid();
	pthread_mutex_lock(&ep_lock);
	for (int i = 0; i < s->neps;) {
		struct ffs_epreg *e = &s->eps[i];
		struct stat st;

		if (e->fd != fd) {
			i++;
			continue;
		}
		/* a child's close leaves the set it shares with its parent alone */
		if (e->pid == pid && fstat(e->epfd, &st) == 0 && st.st_ino == e->ino)
			REAL(epoll_ctl)(e->epfd, EPOLL_CTL_DEL, fd, NULL);
		*e = s->eps[--s->neps];
	}
	pthread_mutex_unlock(&ep_lock);
}

void ffs_epoll_inherit(struct ffs_sock *c, const struct ffs_sock *old, int fd)
{
	pthread_mutex_lock(&ep_lock);
	for (int i = 0; old && i < old->neps; i++) {
		struct ffs_epreg *n;

		if (old->eps[i].fd != fd)
			continue;
		n = realloc(c->eps, sizeof(*n) * (size_t)(c->neps + 1));
		if (!n)
			break;
		c->eps = n;
		c->eps[c->neps++] = old->eps[i];
	}
	pthread_mutex_unlock(&ep_lock);
}

void ffs_ep_adopt(int fd, struct ffs_sock *c)
{
	struct ffs_epreg r[8];
	pid_t me = ffs_pid();
	int n = 0;

	pthread_mutex_lock(&ep_lock);
	for (int i = 0; i < c->neps && n < 8; i++)
		if (c->eps[i].fd == fd && c->eps[i].pid == me)
			r[n++] = c->eps[i];
	pthread_mutex_unlock(&ep_lock);
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = r[i].ev;
		struct stat st;

		if (fstat(r[i].epfd, &st) < 0 || st.st_ino != r[i].ino)
			continue; /* closed, or the number now means another file */
		ffs_ring_epoll(fd, ev.events);
		if (!(ev.events & (EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE)))
			ffs_ep_ctl(r[i].epfd, EPOLL_CTL_MOD, fd, &ev);
	}
}

int ffs_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int r = ffs_ep_ctl(epfd, op, fd, ev), saved = errno;
	struct ffs_sock *s;

	if (r < 0)
		return r;
	if (ev && (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD))
		ffs_ring_epoll(fd, ev->events);
	s = ffs_fd_get(fd);
	if (s && (s->kind == FFS_TCP || s->kind == FFS_KLISTEN || s->kind == FFS_LISTEN ||
		  s->handed))
		ep_record(s, epfd, op, fd, ev);
	errno = saved;
	return r;
}
