/* The real functions behind the names the shim interposes, found with
 * dlsym(RTLD_NEXT) once (real.c): libc's under pthread_once the first time
 * any wrapper runs, with the process-wide settings read at the same time;
 * libibverbs' and librdmacm's once those libraries are loaded. The shim's
 * own code calls REAL(x), VREAL(x) or CMREAL(x), never the interposed
 * name. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
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
	X(shutdown, int, (int, int))                                                               \
	X(close_range, int, (unsigned, unsigned, int))                                             \
	X(closefrom, void, (int))                                                                  \
	X(dup, int, (int))                                                                         \
	X(dup2, int, (int, int))                                                                   \
	X(dup3, int, (int, int, int))                                                              \
	X(fcntl, int, (int, int, ...))                                                             \
	X(fcntl64, int, (int, int, ...))                                                           \
	X(ioctl, int, (int, unsigned long, ...))                                                   \
	X(getsockname, int, (int, struct sockaddr *, socklen_t *))                                 \
	X(getpeername, int, (int, struct sockaddr *, socklen_t *))                                 \
	X(getsockopt, int, (int, int, int, void *, socklen_t *))                                   \
	X(setsockopt, int, (int, int, int, const void *, socklen_t))                               \
	X(epoll_ctl, int, (int, int, int, struct epoll_event *))                                   \
	X(epoll_wait, int, (int, struct epoll_event *, int, int))                                  \
	X(epoll_pwait, int, (int, struct epoll_event *, int, int, const sigset_t *))               \
	X(poll, int, (struct pollfd *, nfds_t, int))                                               \
	X(select, int, (int, fd_set *, fd_set *, fd_set *, struct timeval *))                      \
	X(ppoll, int, (struct pollfd *, nfds_t, const struct timespec *, const sigset_t *))        \
	X(pselect, int,                                                                            \
	  (int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *))          \
	X(epoll_pwait2, int,                                                                       \
	  (int, struct epoll_event *, int, const struct timespec *, const sigset_t *))             \
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
	X(execve, int, (const char *, char *const[], char *const[]))                               \
	X(execvpe, int, (const char *, char *const[], char *const[]))                              \
	X(fexecve, int, (int, char *const[], char *const[]))                                       \
	X(execveat, int, (int, const char *, char *const[], char *const[], int))                   \
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
 * re-entered then must not wait for that table (RAW_IF_BUSY in preload.c). */
extern __thread int ffs_busy __attribute__((tls_model("initial-exec")));

/* False when FFNET_DISABLE is set: the shim passes everything through. */
extern bool ffs_enabled;
/* FFNET_SPIN_US in ns (0: off): how long a wait that would sleep asks
 * again without sleeping first (poll, select, epoll_wait and the rings'
 * own waits). */
extern int64_t ffs_spin_ns;

/* The real libibverbs and librdmacm entry points the verbs half passes
 * objects that are not its own to: one table per library, filled once
 * that library is in the process (real.c says when, and why that is safe).
 * Names only: VREAL(x) and CMREAL(x) cast the entry to the prototype of
 * rdma-core's own header, so each call is checked against it. A name the
 * library lacks is NULL. */
#define FFS_IBV_LIST(X)                                                                            \
	/* device, context, queries, async events (verbs-dev.c); the first is the anchor */        \
	X(ibv_get_device_list)                                                                     \
	X(ibv_free_device_list)                                                                    \
	X(ibv_open_device)                                                                         \
	X(ibv_close_device)                                                                        \
	X(ibv_get_device_guid)                                                                     \
	X(ibv_get_device_index)                                                                    \
	X(ibv_query_device)                                                                        \
	X(ibv_query_port)                                                                          \
	X(ibv_query_gid)                                                                           \
	X(_ibv_query_gid_ex)                                                                       \
	X(_ibv_query_gid_table)                                                                    \
	X(ibv_query_gid_type)                                                                      \
	X(ibv_query_pkey)                                                                          \
	X(ibv_get_pkey_index)                                                                      \
	X(ibv_get_async_event)                                                                     \
	X(ibv_ack_async_event)                                                                     \
	/* PDs and MRs (verbs-mr.c) */                                                             \
	X(ibv_alloc_pd)                                                                            \
	X(ibv_dealloc_pd)                                                                          \
	X(ibv_reg_mr)                                                                              \
	X(ibv_reg_mr_iova)                                                                         \
	X(ibv_reg_mr_iova2)                                                                        \
	X(ibv_reg_dmabuf_mr)                                                                       \
	X(ibv_rereg_mr)                                                                            \
	X(ibv_dereg_mr)                                                                            \
	/* CQs and completion channels (verbs-cq.c) */                                             \
	X(ibv_create_comp_channel)                                                                 \
	X(ibv_destroy_comp_channel)                                                                \
	X(ibv_create_cq)                                                                           \
	X(ibv_destroy_cq)                                                                          \
	X(ibv_resize_cq)                                                                           \
	X(ibv_get_cq_event)                                                                        \
	X(ibv_ack_cq_events)                                                                       \
	/* QPs and SRQs (verbs-qp.c) */                                                            \
	X(ibv_create_qp)                                                                           \
	X(ibv_modify_qp)                                                                           \
	X(ibv_query_qp)                                                                            \
	X(ibv_destroy_qp)                                                                          \
	X(ibv_qp_to_qp_ex)                                                                         \
	X(ibv_create_srq)                                                                          \
	X(ibv_modify_srq)                                                                          \
	X(ibv_query_srq)                                                                           \
	X(ibv_destroy_srq)                                                                         \
	/* what the virtual device lacks (verbs-unsupported.c) */                                  \
	X(ibv_create_ah)                                                                           \
	X(ibv_create_ah_from_wc)                                                                   \
	X(ibv_init_ah_from_wc)                                                                     \
	X(ibv_destroy_ah)                                                                          \
	X(ibv_attach_mcast)                                                                        \
	X(ibv_detach_mcast)                                                                        \
	X(ibv_query_ece)                                                                           \
	X(ibv_set_ece)                                                                             \
	X(ibv_import_pd)                                                                           \
	X(ibv_unimport_pd)                                                                         \
	X(ibv_import_mr)                                                                           \
	X(ibv_unimport_mr)                                                                         \
	X(ibv_import_dm)                                                                           \
	X(ibv_unimport_dm)                                                                         \
	X(ibv_query_qp_data_in_order)                                                              \
	X(ibv_resolve_eth_l2_from_gid)

#define FFS_RDMACM_LIST(X)                                                                         \
	/* channels and ids (cm-id.c); the first is the anchor */                                  \
	X(rdma_create_event_channel)                                                               \
	X(rdma_destroy_event_channel)                                                              \
	X(rdma_create_id)                                                                          \
	X(rdma_destroy_id)                                                                         \
	X(rdma_bind_addr)                                                                          \
	X(rdma_listen)                                                                             \
	X(rdma_resolve_addr)                                                                       \
	X(rdma_resolve_route)                                                                      \
	X(rdma_connect)                                                                            \
	X(rdma_accept)                                                                             \
	X(rdma_reject)                                                                             \
	X(rdma_disconnect)                                                                         \
	/* events, QPs on ids and the rest (cm-*.c) */                                             \
	X(rdma_get_cm_event)                                                                       \
	X(rdma_ack_cm_event)                                                                       \
	X(rdma_create_qp)                                                                          \
	X(rdma_create_qp_ex)                                                                       \
	X(rdma_destroy_qp)                                                                         \
	X(rdma_set_option)                                                                         \
	X(rdma_get_src_port)                                                                       \
	X(rdma_get_dst_port)                                                                       \
	X(rdma_getaddrinfo)                                                                        \
	X(rdma_freeaddrinfo)                                                                       \
	X(rdma_init_qp_attr)                                                                       \
	X(rdma_establish)                                                                          \
	X(rdma_migrate_id)                                                                         \
	X(rdma_notify)                                                                             \
	X(rdma_get_devices)                                                                        \
	X(rdma_free_devices)                                                                       \
	X(rdma_create_ep)                                                                          \
	X(rdma_destroy_ep)                                                                         \
	X(rdma_get_request)                                                                        \
	X(rdma_join_multicast)                                                                     \
	X(rdma_join_multicast_ex)                                                                  \
	X(rdma_leave_multicast)                                                                    \
	X(rdma_set_local_ece)                                                                      \
	X(rdma_get_remote_ece)                                                                     \
	X(rdma_reject_ece)                                                                         \
	X(rdma_create_srq)                                                                         \
	X(rdma_create_srq_ex)                                                                      \
	X(rdma_destroy_srq)

#define FFS_VREAL_DECL(name) void *name;
struct ffs_ibv_real {
	FFS_IBV_LIST(FFS_VREAL_DECL)
};
struct ffs_rdmacm_real {
	FFS_RDMACM_LIST(FFS_VREAL_DECL)
};
#undef FFS_VREAL_DECL

/* The table of libibverbs (librdmacm): filled on the first call that
 * finds the library loaded; until then one whose entries are all NULL. */
const struct ffs_ibv_real *ffs_ibv_real(void);
const struct ffs_rdmacm_real *ffs_rdmacm_real(void);

#define VREAL(name)  ((typeof(&name))ffs_ibv_real()->name)
#define CMREAL(name) ((typeof(&name))ffs_rdmacm_real()->name)
