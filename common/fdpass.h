/* One datagram with SCM_RIGHTS fds over a SOCK_SEQPACKET socket.
 * Raw syscalls: safe to call from inside the shim's own wrappers. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Sends buf and nfds fds (not consumed). MSG_NOSIGNAL. Returns 0 or -errno. */
int ff_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);

/* Receives one datagram into buf; received fds are O_CLOEXEC and stored in
 * fds[0..*nfds). Returns the length (0 = peer closed, or an empty
 * datagram, whose fds are closed) or -errno:
 * -EMSGSIZE when the datagram did not fit in cap, -ETOOMANYREFS when it
 * carried more than maxfds fds (everything received is closed then).
 * flags are extra recvmsg flags (MSG_DONTWAIT). */
ssize_t ff_recv_fds(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds, int flags);

/* The same, but returns -EINTR instead of retrying (for accept()). */
ssize_t ff_recv_fds_once(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds,
			 int flags);

/* Closes fds[0..n) and sets them to -1. */
void ff_close_fds(int *fds, int n);
