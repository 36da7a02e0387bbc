/* The real libc entry points, found with dlsym(RTLD_NEXT) under
 * pthread_once the first time any wrapper runs, and the process-wide
 * settings read at the same time (real.c). The shim's own code calls
 * REAL(x) and never the interposed name. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* X(name, return type, parameter list) */
#define FFS_REAL_LIST(X)                                                                           \
	X(socket, int, (int, int, int))                                                            \
	X(bind, int, (int, const struct sockaddr *, socklen_t))                                    \
	X(listen, int, (int, int))                                                                 \
	X(accept, int, (int, struct sockaddr *, socklen_t *))                                      \
	X(accept4, int, (int, struct sockaddr *, socklen_t *, int))                                \
	X(connect, int, (int, const struct sockaddr *, socklen_t))                                 \
	X(close, int, (int))                                                                       \
	X(shutdown, int, (int, int))                                                                       \
	X(close_range, int, (unsigned, unsigned, int))                                             \
	X(closefrom, void, (int))                                                                  \
	X(dup, int, (int))                                                                         \
	X(dup2, int, (int, int))                                                                   \
	X(dup3, int, (int, int, int))                                                              \
	X(fcntl, int, (int, int, ...))                                                             \
	X(fcntl64, int, (int, int, ...))                                                           \
	X(getsockname, int, (int, struct sockaddr *, socklen_t *))                                 \
	X(getpeername, int, (int, struct sockaddr *, socklen_t *))                                 \
	X(getsockopt, int, (int, int, int, void *, socklen_t *))                                   \
	X(setsockopt, int, (int, int, int, const void *, socklen_t))                               \
	X(epoll_ctl, int, (int, int, int, struct epoll_event *))                                   \
	X(send, ssize_t, (int, const void *, size_t, int))                                         \
	X(sendto, ssize_t, (int, const void *, size_t, int, const struct sockaddr *, socklen_t))   \
	X(sendmsg, ssize_t, (int, const struct msghdr *, int))                                     \
	X(sendmmsg, int, (int, struct mmsghdr *, unsigned int, int))                               \
	X(recv, ssize_t, (int, void *, size_t, int))                                               \
	X(recvfrom, ssize_t, (int, void *, size_t, int, struct sockaddr *, socklen_t *))           \
	X(recvmsg, ssize_t, (int, struct msghdr *, int))                                           \
	X(recvmmsg, int, (int, struct mmsghdr *, unsigned int, int, struct timespec *))            \
	X(read, ssize_t, (int, void *, size_t))                                                    \
	X(write, ssize_t, (int, const void *, size_t))                                             \
	X(readv, ssize_t, (int, const struct iovec *, int))                                        \
	X(writev, ssize_t, (int, const struct iovec *, int))                                       \
	X(sendfile, ssize_t, (int, int, off_t *, size_t))                                          \
	X(sendfile64, ssize_t, (int, int, off_t *, size_t))                                        \
	X(splice, ssize_t, (int, off_t *, int, off_t *, size_t, unsigned int))                     \
	X(__read_chk, ssize_t, (int, void *, size_t, size_t))                                      \
	X(__recv_chk, ssize_t, (int, void *, size_t, size_t, int))                                 \
	X(__recvfrom_chk, ssize_t,                                                                 \
	  (int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *))

#define FFS_REAL_DECL(name, ret, args) ret(*name) args;
struct ffs_real {
	FFS_REAL_LIST(FFS_REAL_DECL)
};
#undef FFS_REAL_DECL

extern struct ffs_real ffs_real;

/* Fills the table and reads the environment, once; every wrapper calls
 * it (or checks ffs_ready()) before anything else. */
void ffs_init(void);
#define REAL(name) (ffs_real.name)

/* True once ffs_init() has finished (an acquire load: the table is then
 * safe to read without calling ffs_init()). */
extern bool ffs_ready_flag;
static inline bool ffs_ready(void)
{
	return __atomic_load_n(&ffs_ready_flag, __ATOMIC_ACQUIRE);
}

/* Non-zero while this thread fills the real call table: a wrapper
 * re-entered then must not wait for that table (see RAW_IF_BUSY). */
extern __thread int ffs_busy __attribute__((tls_model("initial-exec")));

/* False when FFNET_DISABLE is set: the shim passes everything through. */
extern bool ffs_enabled;
