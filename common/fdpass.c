/* SCM_RIGHTS helpers. Truncated data or control is an error and leaves no fd
 * open: the caller never has to clean up after a hostile peer. */
#include "fdpass.h"

#include <ff/wire.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

void ff_close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0)
			syscall(SYS_close, fds[i]);
		fds[i] = -1;
	}
}

int ff_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FF_MAX_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	long r;

	if (nfds < 0 || nfds > FF_MAX_FDS)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	do
		r = syscall(SYS_sendmsg, sock, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return (size_t)r == len ? 0 : -EMSGSIZE;
}

/* Collects SCM_RIGHTS fds; any other control message is ignored. Returns
 * the number of fds stored, or -ETOOMANYREFS after closing all of them. */
static int collect_fds(struct msghdr *mh, int *fds, int maxfds)
{
	int n = 0, over = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < maxfds)
				fds[n++] = fd;
			else {
				syscall(SYS_close, fd);
				over = 1;
			}
		}
	}
	if (over) {
		ff_close_fds(fds, n);
		return -ETOOMANYREFS;
	}
	return n;
}

ssize_t ff_recv_fds_once(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds,
			 int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * (FF_MAX_FDS + 2))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	long r;
	int n;

	*nfds = 0;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	r = syscall(SYS_recvmsg, sock, &mh, flags | MSG_CMSG_CLOEXEC);
	if (r < 0)
		return -errno;
	n = collect_fds(&mh, fds, maxfds);
	if (n < 0)
		return n;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		ff_close_fds(fds, n);
		return (mh.msg_flags & MSG_TRUNC) ? -EMSGSIZE : -ETOOMANYREFS;
	}
	if (r == 0) { /* EOF, or an empty datagram that reads as one: nobody takes its fds */
		ff_close_fds(fds, n);
		n = 0;
	}
	*nfds = n;
	return r;
}

ssize_t ff_recv_fds(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds, int flags)
{
	ssize_t r;

	do
		r = ff_recv_fds_once(sock, buf, cap, fds, maxfds, nfds, flags);
	while (r == -EINTR);
	return r;
}
