/* Swapping the file behind an app's fd: the app keeps its fd number and
 * sees the flags, options and epoll registrations it set, while the file
 * becomes the one the router handed over (or, on fallback, the kernel's). */
#include "sock-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool replayable(int level, int name)
{
	if (level != SOL_SOCKET)
		return false;
	switch (name) {
	case SO_SNDBUF:
	case SO_RCVBUF:
	case SO_SNDBUFFORCE:
	case SO_RCVBUFFORCE:
	case SO_KEEPALIVE:
	case SO_LINGER:
	case SO_RCVLOWAT:
	case SO_PRIORITY:
	case SO_MARK:
	case SO_RCVTIMEO_OLD:
	case SO_SNDTIMEO_OLD:
	case SO_RCVTIMEO_NEW:
	case SO_SNDTIMEO_NEW:
		return true;
	default:
		return false;
	}
}

void ffs_opts_record(struct ffs_sock *s, int level, int name, const void *val, socklen_t len)
{
	int i;

	if (!replayable(level, name) || len > sizeof(s->opts[0].val) || !val)
		return;
	for (i = 0; i < s->nopts; i++)
		if (s->opts[i].level == level && s->opts[i].name == name)
			break;
	if (i == FFS_MAX_OPTS)
		return;
	if (i == s->nopts)
		s->nopts++;
	s->opts[i].level = level;
	s->opts[i].name = name;
	s->opts[i].len = len;
	memcpy(s->opts[i].val, val, len);
}

void ffs_opts_replay(const struct ffs_sock *s, int fd)
{
	for (int i = 0; i < s->nopts; i++) {
		const struct ffs_opt *o = &s->opts[i];

		REAL(setsockopt)(fd, o->level, o->name, o->val, o->len);
	}
}

void ffs_tcpopts_default(struct ffs_tcpopts *t)
{
	memset(t, 0, sizeof(*t));
	t->keepidle = 7200;
	t->keepintvl = 75;
	t->keepcnt = 9;
	t->maxseg = 1448;
	t->ttl = 64;
	t->quickack = 1; /* a fresh connection is not in pingpong mode */
	strcpy(t->congestion, "cubic");
}

static void get_int(int fd, int level, int name, int *out)
{
	socklen_t len = sizeof(*out);
	int v;

	if (REAL(getsockopt)(fd, level, name, &v, &len) == 0 && len == sizeof(v))
		*out = v;
}

void ffs_tcpopts_read(int fd, struct ffs_tcpopts *t)
{
	socklen_t len = sizeof(t->congestion);

	get_int(fd, IPPROTO_TCP, TCP_NODELAY, &t->nodelay);
	get_int(fd, IPPROTO_TCP, TCP_CORK, &t->cork);
	get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, &t->keepidle);
	get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, &t->keepintvl);
	get_int(fd, IPPROTO_TCP, TCP_KEEPCNT, &t->keepcnt);
	get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &t->user_timeout);
	get_int(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &t->notsent_lowat);
	get_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &t->defer_accept);
	get_int(fd, IPPROTO_IP, IP_TOS, &t->tos);
	get_int(fd, IPPROTO_IP, IP_TTL, &t->ttl);
	get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, &t->v6only);
	memset(t->congestion, 0, sizeof(t->congestion));
	if (REAL(getsockopt)(fd, IPPROTO_TCP, TCP_CONGESTION, t->congestion, &len) < 0)
		strcpy(t->congestion, "cubic");
	t->congestion[sizeof(t->congestion) - 1] = '\0';
}

static void epoll_move(int fd, struct ffs_sock *old, int op)
{
	for (int i = 0; old && i < old->neps; i++) {
		struct epoll_event ev = old->eps[i].ev;
		struct stat st;

		if (old->eps[i].fd != fd)
			continue; /* a copy's registration stays with the old file */
		if (fstat(old->eps[i].epfd, &st) < 0 || st.st_ino != old->eps[i].ino)
			continue; /* closed, or the number now means another file */
		if (REAL(epoll_ctl)(old->eps[i].epfd, op, fd, &ev) < 0 && op == EPOLL_CTL_ADD &&
		    errno == EEXIST)
			REAL(epoll_ctl)(old->eps[i].epfd, EPOLL_CTL_MOD, fd, &ev);
	}
}

int ffs_swap(int fd, int newfd, int fl, struct ffs_sock *old)
{
	int fdfl = REAL(fcntl)(fd, F_GETFD);
	int nfl = REAL(fcntl)(newfd, F_GETFL);
	int err;

	if (fl < 0 || fdfl < 0 || nfl < 0)
		goto out_err;
	if (old)
		ffs_opts_replay(old, newfd);
	nfl = (nfl & ~O_NONBLOCK) | (fl & O_NONBLOCK);
	if (REAL(fcntl)(newfd, F_SETFL, nfl) < 0)
		goto out_err;
	/* Registrations are keyed by (file, fd): drop the old file's before it
	 * goes, or they would outlive the swap when another copy keeps it. */
	epoll_move(fd, old, EPOLL_CTL_DEL);
	if (REAL(dup3)(newfd, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		epoll_move(fd, old, EPOLL_CTL_ADD);
		goto out_err;
	}
	REAL(close)(newfd);
	epoll_move(fd, old, EPOLL_CTL_ADD);
	return 0;
out_err:
	err = -errno;
	REAL(close)(newfd);
	return err;
}
