/* connect(): to an overlay address with an accelerated listener, the router
 * hands back the connection socket and the shim swaps it in under the app's
 * fd. Anything else, and any failure before the app saw a result, is a
 * plain kernel connect. */
#include "shim.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

static bool v6only(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return REAL(getsockopt)(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len) == 0 && v;
}

/* Worth asking the router about? */
static bool candidate(int fd, struct ffs_sock *s, const struct sockaddr *addr, socklen_t len,
		      struct ff_sa *dst)
{
	if (!s || s->kind != FFS_TCP || !addr || len < sizeof(sa_family_t) ||
	    addr->sa_family != s->family)
		return false;
	if (ff_sa_from_sockaddr(dst, addr, len) < 0 || !dst->port || !ff_ip_is_unicast(&dst->ip))
		return false;
	if (s->family == AF_INET6 && dst->ip.family == AF_INET && v6only(fd))
		return false;
	return ffs_is_overlay(&dst->ip) == 1;
}

static struct ffs_sock *conn_from_reply(int fd, struct ffs_sock *s, const Ff__Reply *rep)
{
	const Ff__ConnectReply *cr = rep->connect;
	struct ffs_sock *c;
	struct ff_sa local, peer;

	if (rep->status || rep->body_case != FF__REPLY__BODY_CONNECT ||
	    ff_sa_from_proto(&local, cr->local) < 0 || ff_sa_from_proto(&peer, cr->peer) < 0)
		return NULL;
	c = ffs_sock_new(FFS_CONN, s->family);
	if (!c)
		return NULL;
	c->local = local;
	c->peer = peer;
	c->slot = ffs_stat_slot(cr->slot);
	/* what the app set on the TCP socket is what it will read back */
	ffs_tcpopts_read(fd, &c->tcp);
	return c;
}

/* Returns 1 when fd now holds an accelerated connection. */
static int try_router(int fd, struct ffs_sock *s, const struct ff_sa *dst, int fl)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Connect m = FF__CONNECT__INIT;
	Ff__Addr dmsg, smsg;
	uint8_t dip[16], sip[16];
	Ff__Reply *rep = NULL;
	struct ffs_sock *c = NULL;
	int rfds[FF_MAX_FDS], nrfds = 0;

	ff_sa_to_proto(dst, &dmsg, dip);
	m.dst = &dmsg;
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
	if (nrfds == 1)
		c = conn_from_reply(fd, s, rep);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	if (!c) {
		ff_close_fds(rfds, nrfds);
		return 0;
	}
	if (ffs_swap(fd, rfds[0], fl, s) < 0) {
		ffs_sock_unref(c);
		return 0;
	}
	ffs_fd_set(fd, c);
	return 1;
}

int ffs_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct ffs_sock *s = ffs_fd_get(fd);
	struct ff_sa dst;
	int saved = errno, fl;

	if (s && s->kind == FFS_CONN && s->connecting) {
		s->connecting = false;
		errno = saved;
		return 0;
	}
	if (s && (s->kind == FFS_CONN || s->kind == FFS_LISTEN)) {
		errno = EISCONN;
		return -1;
	}
	if (!candidate(fd, s, addr, len, &dst)) {
		errno = saved;
		return REAL(connect)(fd, addr, len);
	}
	fl = REAL(fcntl)(fd, F_GETFL);
	if (fl < 0 || !try_router(fd, s, &dst, fl)) {
		errno = saved;
		return REAL(connect)(fd, addr, len);
	}
	/* A non-blocking TCP connect reports EINPROGRESS even on loopback;
	 * POLLOUT and SO_ERROR == 0 follow at once, and the next connect()
	 * reports the completion with 0 (later ones EISCONN). */
	if (fl & O_NONBLOCK) {
		ffs_fd_get(fd)->connecting = true;
		errno = EINPROGRESS;
		return -1;
	}
	errno = saved;
	return 0;
}
