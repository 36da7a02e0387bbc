/* fork(): no other thread may hold a socket-half lock across it, or the
 * child would inherit that lock locked for good. The handlers take every
 * lock before fork() in one order (sock-internal.h) and release them after
 * it, in the child once its own state is reset. */
#include "sock-internal.h"

#include <pthread.h>
#include <unistd.h>

static pid_t mem_pid; /* the process this memory is of (a vfork child shares it) */

pid_t ffs_pid(void)
{
	return mem_pid ? mem_pid : getpid();
}

bool ffs_vfork_child(void)
{
	return mem_pid && getpid() != mem_pid;
}

static void fork_prepare(void)
{
	ffs_pending_fork(0);
	ffs_listen_fork(0);
	ffs_meta_fork(0);
	ffs_chan_fork_prepare();
	ffs_watch_fork_prepare();
	ffs_fdtab_fork(0);
	ffs_ring_fork_prepare();
	ffs_ep_fork(0);
}

static void fork_parent(void)
{
	ffs_ep_fork(1);
	ffs_ring_fork_after();
	ffs_fdtab_fork(1);
	ffs_watch_fork_parent();
	ffs_chan_fork_parent();
	ffs_meta_fork(1);
	ffs_listen_fork(1);
	ffs_pending_fork(1);
}

/* The child's own state is reset while it holds every lock but the pool's
 * (the resets close fds, which puts their entries back in the pool). */
static void fork_child(void)
{
	mem_pid = getpid();
	ffs_ep_fork(1);
	ffs_ring_fork_after();
	ffs_fdtab_fork(1);
	ffs_watch_fork_child();
	ffs_chan_fork_child();
	ffs_meta_fork(1);
	ffs_listen_fork(1);
	ffs_pending_fork(2);
}

void ffs_sock_atfork(void)
{
	mem_pid = getpid();
	ffs_fd_inherited_scan();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}
