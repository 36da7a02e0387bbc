/* The supervised task's memory and files. Every access names the task by
 * its id in the router's pid namespace; a file taken from it is checked
 * against the notification afterwards, so that a task that died (and whose
 * id went to another) is never confused with the one that trapped. */
#include "internal.h"

#include "addr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

int sv_mem_read(pid_t tid, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = {buf, len}, rm = {(void *)(uintptr_t)addr, len};
	ssize_t n;

	if (!len)
		return 0;
	if (!addr)
		return -EFAULT;
	n = process_vm_readv(tid, &l, 1, &rm, 1, 0);
	if (n < 0)
		return errno == ESRCH ? -ESRCH : -EFAULT;
	return (size_t)n == len ? 0 : -EFAULT;
}

int sv_mem_write(pid_t tid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec l = {(void *)buf, len}, rm = {(void *)(uintptr_t)addr, len};
	ssize_t n;

	if (!len)
		return 0;
	if (!addr)
		return -EFAULT;
	n = process_vm_writev(tid, &l, 1, &rm, 1, 0);
	if (n < 0)
		return errno == ESRCH ? -ESRCH : -EFAULT;
	return (size_t)n == len ? 0 : -EFAULT;
}

pid_t sv_tgid(pid_t tid)
{
	char path[64], line[128];
	pid_t tgid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	return tgid;
}

/* A pidfd of the thread group (kernels without PIDFD_THREAD): never
 * cached, as another process's new task could get the same tid while
 * this group lives. */
static int pidfd_of_group(pid_t tid)
{
	pid_t tgid = sv_tgid(tid);

	return tgid > 0 ? (int)syscall(SYS_pidfd_open, tgid, 0) : -1;
}

/* Every trapped call takes the task's file through a pidfd, so thread
 * pidfds are kept by tid. A kept pidfd names one task: once that task is
 * gone (its tid perhaps another's), pidfd_getfd says ESRCH and a fresh
 * one is opened. The sweep closes them all once a second. */
int sv_getfd(struct sv *sv, const struct seccomp_notif *n, int fdnum)
{
	struct sv_ctx *x = sv->x;
	pid_t tid = (pid_t)n->pid;
	unsigned slot = (unsigned)tid % SV_PIDFDS;
	int pfd = -1, fd = -1, err = -ESRCH;

	for (int fresh = 0; fresh < 2 && fd < 0; fresh++) {
		if (!fresh && x->pidfd[slot].fd >= 0 && x->pidfd[slot].tid == tid) {
			pfd = x->pidfd[slot].fd;
		} else {
			if (x->pidfd[slot].fd >= 0)
				close(x->pidfd[slot].fd);
			x->pidfd[slot].fd = -1;
			pfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
			if (pfd < 0 && errno == EINVAL) { /* no PIDFD_THREAD */
				pfd = pidfd_of_group(tid);
				if (pfd < 0)
					return -ESRCH;
				fd = (int)syscall(SYS_pidfd_getfd, pfd, fdnum, 0);
				err = fd < 0 ? -errno : 0;
				close(pfd);
				break;
			}
			if (pfd < 0)
				return -ESRCH;
			x->pidfd[slot].tid = tid;
			x->pidfd[slot].fd = pfd;
		}
		fd = (int)syscall(SYS_pidfd_getfd, pfd, fdnum, 0);
		err = fd < 0 ? -errno : 0;
		if (err != -ESRCH)
			break;
	}
	if (!err && !sv_valid(sv, n->id)) {
		close(fd);
		err = -ESRCH;
	}
	return err ? err : fd;
}

void sv_pidfds_drop(struct sv_ctx *x)
{
	for (int i = 0; i < SV_PIDFDS; i++) {
		if (x->pidfd[i].fd >= 0)
			close(x->pidfd[i].fd);
		x->pidfd[i].fd = -1;
	}
}

bool sv_fd_cloexec(pid_t tid, int fdnum)
{
	char path[64], buf[256];
	const char *f;
	ssize_t n;
	int fd;

	/* one open and one read (no stdio): this is on every connect */
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)tid, fdnum);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	f = strstr(buf, "\nflags:");
	return f && (strtoul(f + 7, NULL, 8) & O_CLOEXEC);
}

int sv_put_addr(pid_t tid, uint64_t addr, uint64_t lenp, const struct ff_sa *sa, int family)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int n, err;

	if (!addr) /* accept(fd, NULL, ...): nothing asked */
		return 0;
	err = sv_mem_read(tid, lenp, &len, sizeof(len));
	if (err)
		return err;
	if ((int)len < 0)
		return -EINVAL;
	n = ff_sa_to_sockaddr(sa, family, &ss);
	if (n < 0)
		n = ff_sa_to_sockaddr(sa, sa->ip.family, &ss);
	if (n < 0)
		return -EINVAL;
	err = sv_mem_write(tid, addr, &ss, len < (socklen_t)n ? len : (size_t)n);
	if (!err) {
		len = (socklen_t)n;
		err = sv_mem_write(tid, lenp, &len, sizeof(len));
	}
	return err;
}
