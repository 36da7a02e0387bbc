/* A reset for an app whose connection the other side reset (or whose
 * pair died): TCP would give it ECONNRESET, and an AF_UNIX socket gives
 * its peer exactly that when it is closed with data unread. The router's
 * end only ever holds what the app wrote, and the router has read it, so
 * the router takes the app's end from a process of the container that
 * holds it (pidfd_getfd, which needs the router's CAP_SYS_PTRACE), writes
 * one byte into it, which lands unread at the router's end, and then
 * closes its own end. Where the app's end cannot be found (passed away,
 * the process gone, no capability), the app reads EOF instead. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SCAN_MAX 4096 /* processes looked at for one reset, at most */

/* The number of pid's fd that is the socket ino, or -1. */
static int fd_of(pid_t pid, ino_t ino)
{
	char path[64], want[64], link[64];
	struct dirent *e;
	DIR *d;
	int fdnum = -1;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	snprintf(want, sizeof(want), "socket:[%llu]", (unsigned long long)ino);
	d = opendir(path);
	if (!d)
		return -1;
	while (fdnum < 0 && (e = readdir(d))) {
		ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);

		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strcmp(link, want))
			fdnum = atoi(e->d_name);
	}
	closedir(d);
	return fdnum;
}

/* Writes one byte through pid's fd fdnum if it is still the socket ino. */
static bool poke(pid_t pid, int fdnum, ino_t ino)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), fd;
	struct stat st;
	bool done = false;

	if (pfd < 0)
		return false;
	fd = (int)syscall(SYS_pidfd_getfd, pfd, fdnum, 0);
	close(pfd);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && st.st_ino == ino)
		done = send(fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1;
	close(fd);
	return done;
}

static bool try_pid(pid_t pid, ino_t ino)
{
	int fdnum = pid > 0 ? fd_of(pid, ino) : -1;

	return fdnum >= 0 && poke(pid, fdnum, ino);
}

bool rs_reset_app(struct rs *rs, const char *cname, pid_t hint, ino_t ino)
{
	struct ffr_container *ct = ffr_container_find(rs->r, cname);
	struct dirent *e;
	DIR *d;
	int n = 0;
	bool done;

	if (!ino || !ct || ct->remote)
		return false;
	if (try_pid(hint, ino))
		return true;
	if (!ct->ns_ino) /* no namespace to tell its processes by */
		return false;
	d = opendir("/proc");
	if (!d)
		return false;
	done = false;
	while (!done && n < SCAN_MAX && (e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name);

		if (pid <= 0 || pid == hint)
			continue;
		n++;
		done = ffr_container_has_pid(ct, pid) && try_pid(pid, ino);
	}
	closedir(d);
	return done;
}
