/* connect(): to an overlay address the router hands back the connection
 * socket and the shim swaps it in under the app's fd:
 * - same host: an AF_UNIX stream (TCP semantics are emulated elsewhere);
 * - another host: a host TCP socket connected through the other router's
 *   ingress (real TCP; only the names are the overlay's);
 * - outside the overlay, for a container whose policy is "host": a plain
 *   host TCP socket (bypass4netns-style; nothing virtual about it).
 * A refusal or an unreachable host across hosts is the app's error, as the
 * kernel would give it (there is no other path). Anything else, and any
 * failure before the app saw a result, is a plain kernel connect. */
#include "sock-internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

enum route {
	ROUTE_KERNEL,  /* plain connect */
	ROUTE_OVERLAY, /* an overlay address */
	ROUTE_OUTSIDE, /* outside the overlay, policy host */
};

static bool v6only(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return REAL(getsockopt)(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len) == 0 && v;
}

/* Worth asking the router about? */
static enum route route(int fd, struct ffs_sock *s, const struct sockaddr *addr, socklen_t len,
			struct ff_sa *dst)
{
	if (!s || s->kind != FFS_TCP || !addr || len < sizeof(sa_family_t) ||
	    addr->sa_family != s->family)
		return ROUTE_KERNEL;
	if (ff_sa_from_sockaddr(dst, addr, len) < 0 || !dst->port || !ff_ip_is_unicast(&dst->ip))
		return ROUTE_KERNEL;
	if (s->family == AF_INET6 && dst->ip.family == AF_INET && v6only(fd))
		return ROUTE_KERNEL;
	if (ffs_is_overlay(&dst->ip) == 1)
		return ROUTE_OVERLAY;
	return ffs_policy_host() ? ROUTE_OUTSIDE : ROUTE_KERNEL;
}

/* TCP-level options the app set on its socket, onto the real TCP socket
 * that replaces it (socket-level ones are replayed by the swap). */
static void copy_tcp_opts(int from, int to)
{
	static const int names[] = {TCP_NODELAY, TCP_CORK,	   TCP_KEEPIDLE,     TCP_KEEPINTVL,
				    TCP_KEEPCNT, TCP_USER_TIMEOUT, TCP_NOTSENT_LOWAT};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int v;
		socklen_t len = sizeof(v);

		if (REAL(getsockopt)(from, IPPROTO_TCP, names[i], &v, &len) == 0)
			REAL(setsockopt)(to, IPPROTO_TCP, names[i], &v, sizeof(v));
	}
}

static struct ffs_sock *conn_from_reply(int fd, int nfd, struct ffs_sock *s, const Ff__Reply *rep)
{
	const Ff__ConnectReply *cr = rep->connect;
	struct ffs_sock *c;
	struct ff_sa local, peer;

	if (cr->path == FF__PATH__PATH_NONE) { /* a plain host socket: the kernel's names */
		c = ffs_sock_new(FFS_OTHER, s->family);
		if (c)
			c->handed = true;
		return c;
	}
	if (ff_sa_from_proto(&local, cr->local) < 0 || ff_sa_from_proto(&peer, cr->peer) < 0)
		return NULL;
	c = ffs_sock_new(FFS_CONN, s->family);
	if (!c)
		return NULL;
	c->handed = true;
	c->local = local;
	c->peer = peer;
	c->path = cr->path;
	c->slot = ffs_stat_slot(cr->slot);
	/* what the app set on the TCP socket is what it will read back */
	ffs_tcpopts_read(fd, &c->tcp);
	ffs_vopts_inherit(c, s);
	if (c->path == FF__PATH__PATH_TCP) {
		copy_tcp_opts(fd, nfd);
		ffs_vopts_replay(c, nfd);
	}
	return c;
}

/* The router's answer when it does not hand a socket over: 0 to fall back
 * to the kernel, or the errno the app gets. */
static int refusal(Ff__Status st)
{
	switch (st) {
	case FF__STATUS__ST_REFUSED:
		return ECONNREFUSED;
	case FF__STATUS__ST_UNREACH:
		return EHOSTUNREACH;
	case FF__STATUS__ST_TIMEDOUT:
		return ETIMEDOUT;
	default:
		return 0;
	}
}

/* Reads what is there of the other router's answer from rfd (waiting up to
 * ms if wait): 1 all of it, and it is want; 0 not all there yet (*got
 * bytes in buf); -ECONNREFUSED anything else; -ETIMEDOUT none in time. */
static int read_answer(int rfd, const ProtobufCBinaryData *want, uint8_t *buf, size_t *got,
		       int ms, bool wait)
{
	int64_t end = ffs_now_ns() + (int64_t)ms * 1000000;

	while (*got < want->len) {
		ssize_t n = recv(rfd, buf + *got, want->len - *got, MSG_DONTWAIT);
		struct pollfd p = {.fd = rfd, .events = POLLIN};
		int64_t left = end - ffs_now_ns();

		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return -ECONNREFUSED;
		if (!wait)
			return 0;
		if (left <= 0)
			return -ETIMEDOUT;
		if (REAL(poll)(&p, 1, (int)(left / 1000000) + 1) < 0 && errno != EINTR)
			return -ECONNREFUSED;
	}
	return memcmp(buf, want->data, want->len) == 0 ? 1 : -ECONNREFUSED;
}

/* Returns 1 when fd now holds the router's socket (or, 2, will: pending.c),
 * 0 to fall back to the kernel, or -errno: the connect failed. */
static int try_router(int fd, struct ffs_sock *s, const struct ff_sa *dst, int fl, bool outside)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Connect m = FF__CONNECT__INIT;
	Ff__Addr dmsg, smsg;
	uint8_t dip[16], sip[16];
	Ff__Reply *rep = NULL;
	struct ffs_sock *c = NULL;
	int rfds[FF_MAX_FDS], nrfds = 0, err = 0;
	uint8_t ans[128];
	size_t got = 0;

	ff_sa_to_proto(dst, &dmsg, dip);
	m.dst = &dmsg;
	m.outside = outside;
	m.answer_here = !outside;
	if (s->bound) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct ff_sa src;

		if (REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) == 0 &&
		    ff_sa_from_sockaddr(&src, (struct sockaddr *)&ss, len) == 0) {
			ff_sa_to_proto(&src, &smsg, sip);
			m.src = &smsg;
		}
	}
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &m;
	if (ffs_call(&req, NULL, 0, &rep, rfds, &nrfds) < 0)
		return 0;
	if (rep->status)
		err = -refusal(rep->status);
	else if (rep->body_case == FF__REPLY__BODY_CONNECT &&
		 nrfds == (rep->connect->ring && rep->connect->path == FF__PATH__PATH_SAME_HOST ? 3 : 1))
		c = conn_from_reply(fd, rfds[0], s, rep);
	/* the other side uses the rings from now on: without them this
	 * connection cannot be used, so it fails (the memfd is closed) */
	if (c && nrfds == 3) {
		err = ffs_ring_attach(c, rfds[0], rfds + 1, rep->connect->ring, 0, false, false);
		nrfds = 1;
		if (err) {
			ffs_sock_unref(c);
			c = NULL;
			err = -ENOBUFS;
		}
	}
	/* The other router's answer, when it is ours to read: a blocking
	 * connect waits for it, a non-blocking one only if it cannot be left
	 * to pending.c. */
	if (c && rep->connect->answer.len) {
		const ProtobufCBinaryData *want = &rep->connect->answer;
		int ms = (int)rep->connect->answer_ms;

		err = want->len > sizeof(ans) ? -ECONNREFUSED
					      : read_answer(rfds[0], want, ans, &got, ms, !(fl & O_NONBLOCK));
		if (err == 0 && ffs_pending_add(fd, s, c, rfds[0], fl, want->data, want->len, ans, got,
						ms) == 0) {
			protobuf_c_message_free_unpacked(&rep->base, NULL);
			return 2;
		}
		if (err == 0)
			err = read_answer(rfds[0], want, ans, &got, ms, true);
		if (err < 0) {
			ffs_sock_unref(c);
			c = NULL;
		} else {
			err = 0;
		}
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	if (!c) {
		ff_close_fds(rfds, nrfds);
		return err;
	}
	if (ffs_swap(fd, rfds[0], fl, s) < 0) {
		ffs_sock_unref(c);
		return 0;
	}
	if (c->ring)
		ffs_ring_bufs(c, s, fd);
	ffs_epoll_inherit(c, s, fd);
	ffs_fd_set(fd, c);
	if (c->ring)
		ffs_ep_adopt(fd, c);
	return 1;
}

/* A non-blocking TCP connect learns of a refusal later, through POLLOUT and
 * SO_ERROR. Reproduce that with the app's own socket: connect it to a port
 * nothing listens on in its own namespace, on loopback. */
static int refuse_later(int fd, int family)
{
	struct sockaddr_storage ss = {0};
	socklen_t len = sizeof(ss);
	int tmp = REAL(socket)(family, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6->sin6_addr);
		len = sizeof(*in6);
	}
	/* a port that was free a moment ago: bound, not listened on, closed */
	if (tmp < 0 || REAL(bind)(tmp, (struct sockaddr *)&ss, len) < 0 ||
	    REAL(getsockname)(tmp, (struct sockaddr *)&ss, &len) < 0) {
		if (tmp >= 0)
			REAL(close)(tmp);
		errno = ECONNREFUSED;
		return -1;
	}
	REAL(close)(tmp);
	r = REAL(connect)(fd, (struct sockaddr *)&ss, len);
	if (r == 0) { /* someone took the port meanwhile */
		errno = ECONNREFUSED;
		r = -1;
	}
	return r;
}

int ffs_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct ffs_sock *s = ffs_fd_get(fd);
	enum route how;
	struct ff_sa dst;
	int saved = errno, fl, r;

	if (s && s->kind == FFS_CONN && s->connecting) {
		s->connecting = false;
		errno = saved;
		return 0;
	}
	if (s && (s->kind == FFS_CONN || s->kind == FFS_LISTEN)) {
		errno = EISCONN;
		return -1;
	}
	if (s && s->pending) { /* pending.c has it */
		errno = EALREADY;
		return -1;
	}
	how = route(fd, s, addr, len, &dst);
	fl = how == ROUTE_KERNEL ? -1 : REAL(fcntl)(fd, F_GETFL);
	r = fl < 0 ? 0 : try_router(fd, s, &dst, fl, how == ROUTE_OUTSIDE);
	if (r == 0) {
		errno = saved;
		return REAL(connect)(fd, addr, len);
	}
	if (r < 0) {
		if (r == -ECONNREFUSED && (fl & O_NONBLOCK))
			return refuse_later(fd, s->family);
		errno = -r;
		return -1;
	}
	if (r == 2) { /* under way: the result comes through POLLOUT and SO_ERROR */
		errno = EINPROGRESS;
		return -1;
	}
	/* A non-blocking TCP connect reports EINPROGRESS even on loopback;
	 * POLLOUT and SO_ERROR == 0 follow at once, and the next connect()
	 * reports the completion with 0 (later ones EISCONN). */
	if (fl & O_NONBLOCK) {
		s = ffs_fd_get(fd);
		if (s && s->kind == FFS_CONN)
			s->connecting = true;
		errno = EINPROGRESS;
		return -1;
	}
	errno = saved;
	return 0;
}
