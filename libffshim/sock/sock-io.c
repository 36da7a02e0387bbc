/* What the socket half adds to the calls the kernel answers by itself on
 * an accelerated connection: the byte counters of the router's stats page,
 * and TCP's send semantics where the connection is an AF_UNIX pair.
 * Lookups take no reference: the fd table keeps its structs valid (see
 * fdtab.c), and a stale answer only misplaces a count. */
#include "sock-internal.h"

#include <ff/wire.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>

void ffs_count(int fd, ssize_t n, bool tx)
{
	struct ffs_sock *s;

	if (n == 0)
		return;
	s = ffs_fd_get(fd);
	if (!s)
		return;
	if (n > 0 && s->slot)
		__atomic_fetch_add(tx ? &s->slot->tx : &s->slot->rx, (uint64_t)n, __ATOMIC_RELAXED);
	else if (n < 0 && !tx && errno == ECONNRESET && s->kind == FFS_CONN)
		s->peer_gone = true; /* the app saw the reset: no grace send (see ffs_sent()) */
}

static struct ffs_sock *conn_of(int fd)
{
	struct ffs_sock *s = ffs_fd_get(fd);

	return s && s->kind == FFS_CONN ? s : NULL;
}

bool ffs_is_conn(int fd)
{
	return conn_of(fd) != NULL;
}

struct ffs_sock *ffs_pair_of(int fd)
{
	struct ffs_sock *s = conn_of(fd);

	return s && s->path != FF__PATH__PATH_TCP ? s : NULL;
}

bool ffs_hup_hidden(int fd, uint32_t revents)
{
	struct ffs_sock *s;

	if (!(revents & POLLHUP) || (revents & POLLERR) || !(revents & ~(uint32_t)POLLHUP))
		return false;
	s = ffs_pair_of(fd);
	return s && !s->shut_wr;
}

/* An AF_UNIX send fails with EPIPE as soon as the peer has closed; TCP's
 * first send after the peer's FIN still succeeds (the peer answers with a
 * reset) and only the next one fails. Mirror that on one host, and raise
 * the SIGPIPE ourselves when the app did not ask for MSG_NOSIGNAL. */
ssize_t ffs_sent(int fd, struct ffs_sock *s, ssize_t r, size_t len, int app_flags)
{
	socklen_t elen = sizeof(int);
	int err = 0;

	if (r >= 0 || errno != EPIPE)
		return r;
	if (!s->shut_wr) {
		/* a peer that closed with data unread reset the connection:
		 * TCP reports that first, without a signal */
		if (REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 &&
		    err == ECONNRESET) {
			s->peer_gone = true;
			errno = ECONNRESET;
			return -1;
		}
		/* over RDMA the router's end stays open until the other side's
		 * reset comes back, so the kernel already gave TCP's one send */
		if (!s->peer_gone && s->path != FF__PATH__PATH_RDMA) {
			s->peer_gone = true;
			return (ssize_t)len;
		}
	}
	if (!(app_flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
	errno = EPIPE;
	return -1;
}
