/* What a registrar registered: one file per container, MARKS/NAME (the
 * CNI plugin's MARKS is RUNDIR/cni, the runtime wrapper's RUNDIR/oci),
 * holding "IFNAME DEV INO NETNS\n" (the attachment that registered it, "-"
 * for the runtime, and its namespace, by path and by identity). The
 * directory is 0700, files 0600, written whole through a rename (from
 * .NAME.tmp): a reader sees the old file or the new one. A file that does
 * not parse is treated as absent. */
#include "reg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int path_of(const char *marks, const char *name, char *buf, size_t cap)
{
	int n = name ? snprintf(buf, cap, "%s/%s", marks, name) : snprintf(buf, cap, "%s", marks);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ffn_mark_read(const char *marks, const char *name, struct ffn_mark *m)
{
	char path[PATH_MAX], line[sizeof(m->ifname) + sizeof(m->netns) + 64];
	uintmax_t dev, ino;
	int n = 0, err = path_of(marks, name, path, sizeof(path));
	FILE *f = err ? NULL : fopen(path, "re");

	if (!f)
		return err ? err : -errno;
	if (!fgets(line, sizeof(line), f) || !strchr(line, '\n'))
		err = -EINVAL;
	fclose(f);
	if (err)
		return err;
	line[strcspn(line, "\n")] = 0;
	if (sscanf(line, "%63s %ju %ju %n", m->ifname, &dev, &ino, &n) != 3 || !n || !line[n] ||
	    strlen(line + n) >= sizeof(m->netns))
		return -EINVAL;
	strcpy(m->netns, line + n);
	m->dev = (dev_t)dev;
	m->ino = (ino_t)ino;
	return 0;
}

int ffn_mark_write(const char *marks, const char *name, const char *ifname, const char *netns)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + FFN_NAME_MAX + 8];
	char line[sizeof(((struct ffn_mark *)0)->netns) + 128];
	struct stat st;
	int n;

	if (stat(netns, &st) < 0)
		return -errno;
	if (path_of(marks, NULL, dir, sizeof(dir)) || path_of(marks, name, path, sizeof(path)) ||
	    strlen(ifname) >= sizeof(((struct ffn_mark *)0)->ifname) || strchr(ifname, ' ') ||
	    strchr(netns, '\n'))
		return -EINVAL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	/* ".NAME.tmp": no container ID starts with a dot, so no name clashes */
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	n = snprintf(line, sizeof(line), "%s %ju %ju %s\n", ifname, (uintmax_t)st.st_dev,
		     (uintmax_t)st.st_ino, netns);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EINVAL;
	return ffn_write_file(tmp, path, line, (size_t)n, 0600);
}

int ffn_write_file(const char *tmp, const char *path, const char *data, size_t len, mode_t mode)
{
	size_t off = 0;
	int fd, err = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 0777);
	if (fd < 0 && errno == EEXIST && unlink(tmp) == 0) /* left by one that died */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 0777);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode & 0777) < 0) /* whatever the umask */
		err = -errno;
	while (!err && off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno != EINTR)
			err = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

int ffn_mark_remove(const char *marks, const char *name)
{
	char path[PATH_MAX];
	int err = path_of(marks, name, path, sizeof(path));

	if (!err && unlink(path) < 0 && errno != ENOENT)
		err = -errno;
	return err;
}

bool ffn_mark_stale(const struct ffn_mark *m)
{
	struct stat st;

	return stat(m->netns, &st) < 0 || st.st_dev != m->dev || st.st_ino != m->ino;
}

int ffn_mark_each(const char *marks, int (*fn)(const char *name, void *arg), void *arg)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int rc = 0;

	if (path_of(marks, NULL, dir, sizeof(dir)))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (!rc && (e = readdir(d))) {
		char name[FFN_NAME_MAX + 1];

		/* only names a container ID gives: skips ".", ".." and ".NAME.tmp" */
		if (ffn_name_of(e->d_name, name, sizeof(name)) == 0 && !strcmp(name, e->d_name))
			rc = fn(e->d_name, arg);
	}
	closedir(d);
	return rc;
}
