/* The fuzz targets' shared parts (harness.h). */
#include "harness.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REC_ALL 0xffff

/* ---- inputs ---- */

bool fh_next(struct fh_in *in, struct fh_rec *r)
{
	size_t len;

	if (in->left < 3)
		return false;
	len = (size_t)in->p[0] | (size_t)in->p[1] << 8;
	r->aux = in->p[2];
	in->p += 3;
	in->left -= 3;
	if (len == REC_ALL)
		len = FF_MSG_MAX + 1;
	if (len > in->left)
		len = in->left;
	r->p = in->p;
	r->len = len;
	in->p += len;
	in->left -= len;
	return true;
}

/* ---- sockets ---- */

int fh_tcp_listener(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 4) < 0)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int a_pipe(void)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	close(p[1]);
	return p[0];
}

int fh_make_fds(uint8_t aux, int *fds)
{
	int sv[2], n = 0;

	switch (aux % 5) {
	case 1:
		fds[n] = a_pipe();
		n += fds[n] >= 0;
		break;
	case 2:
		fds[n] = fh_tcp_listener();
		n += fds[n] >= 0;
		break;
	case 3:
		fds[n] = fh_tcp_listener();
		n += fds[n] >= 0;
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
			fds[n++] = sv[0];
			close(sv[1]);
		}
		break;
	case 4:
		for (int i = 0; i < 3; i++) {
			fds[n] = a_pipe();
			n += fds[n] >= 0;
		}
		break;
	}
	return n;
}

void fh_send_raw(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)] = {0};
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds > 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	(void)sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void fh_send_rec(int sock, const struct fh_rec *r)
{
	int fds[4], n = fh_make_fds(r->aux, fds);

	fh_send_raw(sock, r->p, r->len, fds, n);
	ff_close_fds(fds, n);
}

void fh_drain(int sock)
{
	static uint8_t buf[FF_MSG_MAX];
	int fds[FF_MAX_FDS], nfds;

	ssize_t r;

	/* a datagram too big or with too many fds is dropped (its fds closed)
	 * with an error: go on to the next */
	while ((r = ff_recv_fds(sock, buf, sizeof(buf), fds, FF_MAX_FDS, &nfds, MSG_DONTWAIT)) > 0 ||
	       r == -EMSGSIZE || r == -ETOOMANYREFS)
		if (r > 0)
			ff_close_fds(fds, nfds);
}

int fh_nfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		abort();
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

void fh_list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[PATH_MAX], to[PATH_MAX];
	ssize_t n;

	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, to, sizeof(to) - 1);
		if (n > 0)
			fprintf(stderr, "  fd %s -> %.*s\n", e->d_name, (int)n, to);
	}
	if (d)
		closedir(d);
}

/* ---- seeds ---- */

static FILE *seed_f;

void fh_seed_begin(const char *dir, const char *name, int flags)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	seed_f = fopen(path, "we");
	if (!seed_f)
		abort();
	if (flags >= 0)
		fputc(flags, seed_f);
}

void fh_seed_rec(const void *buf, size_t len, uint8_t aux)
{
	uint8_t hdr[3] = {(uint8_t)len, (uint8_t)(len >> 8), aux};

	if (len >= REC_ALL) /* the rest of the file */
		hdr[0] = hdr[1] = 0xff;
	fwrite(hdr, 1, 3, seed_f);
	fwrite(buf, 1, len, seed_f);
}

void fh_seed_msg(const ProtobufCMessage *m, uint8_t aux)
{
	uint8_t *buf = malloc(FF_MSG_MAX);
	size_t len;

	if (!buf || ff_msg_size(m) > FF_MSG_MAX)
		abort();
	len = ff_msg_pack(m, buf);
	fh_seed_rec(buf, len, aux);
	free(buf);
}

void fh_seed_msg_send(int sock, const ProtobufCMessage *m)
{
	static uint8_t buf[FF_MSG_MAX];

	if (ff_msg_size(m) > sizeof(buf))
		abort();
	fh_send_raw(sock, buf, ff_msg_pack(m, buf), NULL, 0);
}

void fh_seed_end(void)
{
	fclose(seed_f);
	seed_f = NULL;
}

void fh_seeds_if_asked(void (*fn)(const char *dir))
{
	const char *dir = getenv("FUZZ_SEEDS");

	if (!dir)
		return;
	ff_log_level = -1;
	fn(dir);
	exit(0);
}

