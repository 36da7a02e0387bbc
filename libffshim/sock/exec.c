/* exec of an image that will not load the shim, while ring connections
 * are open (issue 14).
 *
 * A ring connection's socket carries the doorbell's bytes (common/sdoor.c),
 * not the stream: an image without the shim that inherits it would read
 * those bytes as data and never see the rings. So before such an exec,
 * each ring connection the new image inherits (no FD_CLOEXEC) is put
 * behind a relay: one end of a plain socketpair replaces the fd (same
 * number, same O_NONBLOCK), and a helper process forked from this one
 * (so it holds the rings with the shim's own code, counted as one more
 * holder by the fork handlers) copies between the rings and the pair's
 * other end until both directions have ended. The helper detaches (double
 * fork, setsid), keeps no other fd of ours, and is named "ffnet-relay".
 *
 * The new image loads the shim when LD_PRELOAD in its environment (or
 * /etc/ld.so.preload) names this very file, FFNET_DISABLE is not set in
 * that environment, and the file to run (after its #! interpreters) is a
 * dynamic ELF of our machine whose loader is glibc's, without set-id bits.
 * In doubt, the relay: it is always correct, only slower.
 *
 * What a relay cannot keep, since it reads ahead of the image and writes
 * behind it: bytes forwarded to the image that it did not read before its
 * close are lost to other processes still holding the connection, and the
 * image's last bytes may reach the peer after bytes such a process sends
 * once the image has closed. Neither matters when the new image is the
 * connection's only user from then on (a server handing a connection to
 * a static program). A peer's reset reads as EOF in the image.
 * A vfork child (Python's subprocess) gets its relays as well: it shares
 * its parent's memory, so the shim's tables stay as they are (its copies
 * of the fds were never counted as holders); the helper is forked from it.
 * Not reached: an exec inside posix_spawn() or system() (glibc calls its
 * internal execve there). */
#include "sock-internal.h"

#include "fdpass.h"
#include "log.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ff/wire.h>

#if defined(__x86_64__)
#define OUR_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define OUR_MACHINE EM_AARCH64
#else
#define OUR_MACHINE EM_NONE
#endif

#define MAX_HASHBANG 4		 /* interpreters followed, as the kernel's limit */
#define RELAY_BUF    (64u << 10) /* per direction and connection */

/* ---- will the new image load the shim? ---- */

/* Whether path is this library's file. */
static bool is_us(const char *path, size_t len)
{
	static dev_t dev;
	static ino_t ino;
	static int known; /* 1 found, -1 not found */
	char p[4096];
	struct stat st;

	if (!known) {
		Dl_info di;

		known = -1;
		if (dladdr((void *)is_us, &di) && di.dli_fname && stat(di.dli_fname, &st) == 0) {
			dev = st.st_dev;
			ino = st.st_ino;
			known = 1;
		}
	}
	if (known < 0 || !len || len >= sizeof(p))
		return false;
	memcpy(p, path, len);
	p[len] = '\0';
	return stat(p, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/* Whether a preload list (':' or blank separated) names us. */
static bool list_names_us(const char *s)
{
	while (s && *s) {
		size_t n = strcspn(s, ": \t\n");

		if (is_us(s, n))
			return true;
		s += n;
		s += strspn(s, ": \t\n");
	}
	return false;
}

static const char *env_get(char *const envp[], const char *name)
{
	size_t n = strlen(name);

	for (int i = 0; envp && envp[i]; i++)
		if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
			return envp[i] + n + 1;
	return NULL;
}

bool ffs_exec_env_loads(char *const envp[])
{
	const char *off = env_get(envp, FF_ENV_DISABLE);
	char buf[4096];
	ssize_t n;
	int fd;

	if (off && *off && *off != '0')
		return false;
	if (list_names_us(env_get(envp, "LD_PRELOAD")))
		return true;
	fd = open("/etc/ld.so.preload", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	REAL(close)(fd);
	buf[n > 0 ? n : 0] = '\0';
	return list_names_us(buf);
}

static int image_at(int dirfd, const char *path, int flags, int depth);

/* What running the file open at fd gives: 1 glibc's loader (with the
 * shim), 0 anything else. */
static int image_fd(int fd, int depth)
{
	union {
		Elf64_Ehdr eh;
		char b[256];
	} u;
	Elf64_Phdr ph;
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & (S_ISUID | S_ISGID)))
		return 0; /* set-id: the loader ignores LD_PRELOAD's paths */
	n = pread(fd, u.b, sizeof(u.b) - 1, 0);
	if (n >= 2 && u.b[0] == '#' && u.b[1] == '!') {
		char *p = u.b + 2, *e;

		u.b[n] = '\0';
		p += strspn(p, " \t");
		e = p + strcspn(p, " \t\n");
		if (!*e || e == p || depth >= MAX_HASHBANG)
			return 0;
		*e = '\0';
		return image_at(AT_FDCWD, p, 0, depth + 1) == 1;
	}
	if (n < (ssize_t)sizeof(Elf64_Ehdr) || memcmp(u.eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    u.eh.e_ident[EI_CLASS] != ELFCLASS64 || u.eh.e_machine != OUR_MACHINE ||
	    u.eh.e_phentsize != sizeof(Elf64_Phdr) || u.eh.e_phnum > 256)
		return 0;
	for (unsigned i = 0; i < u.eh.e_phnum; i++) {
		char interp[256];

		if (pread(fd, &ph, sizeof(ph), (off_t)(u.eh.e_phoff + i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			return 0;
		if (ph.p_type != PT_INTERP)
			continue;
		if (ph.p_filesz < 2 || ph.p_filesz >= sizeof(interp) ||
		    pread(fd, interp, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz)
			return 0;
		interp[ph.p_filesz] = '\0';
		return strstr(interp, "/ld-linux") != NULL;
	}
	return 0; /* static */
}

/* As image_fd for a path; -1 when the exec would fail for want of it. */
static int image_at(int dirfd, const char *path, int flags, int depth)
{
	int fd, r;

	if ((flags & AT_EMPTY_PATH) && path && !*path)
		return image_fd(dirfd, depth);
	fd = openat(dirfd, path,
		    O_RDONLY | O_CLOEXEC | (flags & AT_SYMLINK_NOFOLLOW ? O_NOFOLLOW : 0));
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? -1 : 0;
	r = image_fd(fd, depth);
	REAL(close)(fd);
	return r;
}

/* execvp's search: the first executable file on PATH (ours, as glibc
 * reads it), or -1 if none. */
static int image_search(const char *file)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (strchr(file, '/'))
		return image_at(AT_FDCWD, file, 0, 0);
	if (!path)
		path = "/bin:/usr/bin";
	while (*file) {
		size_t n = strcspn(path, ":");
		int k = snprintf(buf, sizeof(buf), "%.*s%s%s", (int)n, n ? path : ".", n ? "/" : "",
				 file);

		if (!n)
			k = snprintf(buf, sizeof(buf), "./%s", file);
		if (k > 0 && (size_t)k < sizeof(buf) && access(buf, X_OK) == 0)
			return image_at(AT_FDCWD, buf, 0, 0);
		if (!path[n])
			break;
		path += n + 1;
	}
	return -1;
}

int ffs_exec_image(int dirfd, const char *path, int flags, bool search)
{
	return search ? image_search(path) : image_at(dirfd, path, flags, 0);
}

/* ---- the relay ---- */

struct rconn {
	struct ffs_sock *s;
	unsigned long ino; /* of its socket */
	bool relayed;	   /* the new image inherits it */
	int x;		   /* in the helper: its one copy of the connection */
	int pair[2];	   /* [0] becomes the image's fd, [1] the helper's */
	char *down;	   /* rings -> image */
	size_t dn, doff;
	char *up; /* image -> rings */
	size_t un, uoff;
	bool x_eof, p_eof, p_shut, done;
};

/* Every ring end the shim's table holds (c), and the fds of this process
 * that are one of them and survive the exec (fds, with their conn). */
struct rset {
	struct rconn *c;
	int n, cap;
	int *fds, *idx;
	int nfds, cap_fds;
};

static bool grow_conns(struct rset *r)
{
	int cap = r->cap ? 2 * r->cap : 8;
	struct rconn *c;

	if (r->n < r->cap)
		return true;
	c = realloc(r->c, (size_t)cap * sizeof(*c));
	if (!c)
		return false;
	r->c = c;
	r->cap = cap;
	return true;
}

static void collect_ring(int fd, struct ffs_sock *s, void *arg)
{
	struct rset *r = arg;
	int i;

	(void)fd;
	if (s->kind != FFS_CONN || !s->ring)
		return;
	for (i = 0; i < r->n && r->c[i].s != s; i++)
		;
	if (i < r->n || !grow_conns(r))
		return;
	r->c[r->n++] = (struct rconn){.s = s, .ino = ffs_ring_ino(s), .x = -1, .pair = {-1, -1}};
}

/* The fds by what they are, not by what the table says: a vfork child's
 * fds (dup2'ed into place for the image, the originals closed) are not
 * its parent's, whose table it shares. */
static void collect_fds(struct rset *r)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		int flags, i;
		struct stat st;

		if (*end || fd < 0 || fd > INT32_MAX || fd == dirfd(d) ||
		    (flags = REAL(fcntl)((int)fd, F_GETFD)) < 0 || (flags & FD_CLOEXEC) ||
		    fstat((int)fd, &st) < 0 || !S_ISSOCK(st.st_mode))
			continue;
		for (i = 0; i < r->n && r->c[i].ino != (unsigned long)st.st_ino; i++)
			;
		if (i == r->n)
			continue;
		if (r->nfds == r->cap_fds) {
			int cap = r->cap_fds ? 2 * r->cap_fds : 8;
			int *f = realloc(r->fds, (size_t)cap * sizeof(int)), *x;

			if (!f)
				continue;
			r->fds = f;
			x = realloc(r->idx, (size_t)cap * sizeof(int));
			if (!x)
				continue;
			r->idx = x;
			r->cap_fds = cap;
		}
		r->fds[r->nfds] = (int)fd;
		r->idx[r->nfds++] = i;
		if (!r->c[i].relayed) {
			r->c[i].relayed = true;
			r->c[i].x = (int)fd;
		}
	}
	if (d)
		closedir(d);
}

static void rset_free(struct rset *r)
{
	for (int i = 0; i < r->n; i++)
		ff_close_fds(r->c[i].pair, 2);
	free(r->c);
	free(r->fds);
	free(r->idx);
}

static void count(struct rconn *c, ssize_t n, bool tx)
{
	if (n > 0 && c->s->slot)
		__atomic_fetch_add(tx ? &c->s->slot->tx : &c->s->slot->rx, (uint64_t)n,
				   __ATOMIC_RELAXED);
}

/* The image let go of its end (closed it, or its writes fail): our copy
 * of the connection goes as a close of one of its holders would. */
static void image_gone(struct rconn *c)
{
	ffs_ring_closing(c->s, c->x);
	REAL(close)(c->x);
	REAL(close)(c->pair[1]);
	c->done = true;
}

static void pump_down(struct rconn *c)
{
	if (c->dn == c->doff && !c->x_eof) {
		struct iovec v = {.iov_base = c->down, .iov_len = RELAY_BUF};
		ssize_t r = ffs_ring_recv(c->x, c->s, &v, 1, MSG_DONTWAIT);

		count(c, r, false);
		if (r > 0) {
			c->dn = (size_t)r;
			c->doff = 0;
		} else if (r == 0) {
			c->x_eof = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			c->x_eof = true; /* a reset: the image reads EOF */
		}
	}
	while (c->dn > c->doff) {
		ssize_t w = REAL(send)(c->pair[1], c->down + c->doff, c->dn - c->doff,
				       MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0) {
			if (errno != EAGAIN && errno != EINTR)
				image_gone(c);
			return;
		}
		c->doff += (size_t)w;
	}
	c->dn = c->doff = 0;
	if (c->x_eof && !c->p_shut) {
		REAL(shutdown)(c->pair[1], SHUT_WR);
		c->p_shut = true;
	}
}

static void pump_up(struct rconn *c, short revents)
{
	if (c->un == c->uoff && !c->p_eof) {
		ssize_t r = REAL(recv)(c->pair[1], c->up, RELAY_BUF, MSG_DONTWAIT);

		if (r > 0) {
			c->un = (size_t)r;
			c->uoff = 0;
		} else if (r == 0) {
			c->p_eof = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			image_gone(c); /* it closed with bytes unread */
			return;
		}
	}
	while (c->un > c->uoff) {
		struct iovec v = {.iov_base = c->up + c->uoff, .iov_len = c->un - c->uoff};
		ssize_t w = ffs_ring_send(c->x, c->s, &v, 1, MSG_DONTWAIT | MSG_NOSIGNAL);

		count(c, w, true);
		if (w < 0) {
			if (errno != EAGAIN && errno != EINTR)
				image_gone(c); /* the peer is gone: so is the image's end */
			return;
		}
		c->uoff += (size_t)w;
	}
	c->un = c->uoff = 0;
	if (!c->p_eof)
		return;
	/* The image's end said EOF. Both ways done, or its close (HUP while
	 * our side is still open), end our copy; its shutdown(SHUT_WR) is
	 * passed on. */
	if ((c->x_eof && c->p_shut) || (revents & POLLHUP)) {
		image_gone(c);
	} else if (!c->s->shut_wr) {
		c->s->shut_wr = true;
		ffs_ring_shutdown(c->s, SHUT_WR);
		REAL(shutdown)(c->x, SHUT_WR);
	}
}

/* The helper forgets the table it inherited without a word to anyone:
 * its numbers may be stale (a vfork child's), so nothing is closed here,
 * and a listener's entry must not tell the router to stop it. */
static void forget(int fd, struct ffs_sock *s, void *arg)
{
	(void)arg;
	if (s->kind == FFS_LISTEN) {
		s->listener_id = 0;
		s->kfd = s->qr = -1;
	}
	ffs_sock_unref(ffs_fd_take(fd));
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Closes every fd but the n in keep (each >= 3); 0, 1 and 2 become
 * /dev/null, so that nothing we print lands in a connection. */
static void close_others(int *keep, int n)
{
	unsigned lo = 0;

	qsort(keep, (size_t)n, sizeof(int), cmp_int);
	for (int i = 0; i < n; i++) {
		if ((unsigned)keep[i] > lo)
			syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0u, 0);
	for (int i = 0; i < 3; i++)
		if (open("/dev/null", O_RDWR) < 0)
			break;
}

/* The helper: never returns. The fork that made it counted it as a
 * holder of every ring end in the table: it keeps the relayed ones. */
static void relay_main(struct rset *r)
{
	int *keep = calloc((size_t)r->n * 2 + 1, sizeof(int));
	struct pollfd *p = calloc((size_t)r->n * 2 + 1, sizeof(*p));
	sigset_t all;
	int live, nk = 0;

	setsid();
	prctl(PR_SET_NAME, "ffnet-relay");
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, sig == SIGPIPE ? SIG_IGN : SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (!keep || !p)
		_exit(1);
	for (int i = 0; i < r->n; i++) {
		if (r->c[i].relayed)
			ffs_sock_ref(r->c[i].s);
		else
			ffs_ring_closing(r->c[i].s, -1);
	}
	ffs_fd_each(forget, NULL);
	for (int i = 0; i < r->n; i++) {
		struct rconn *c = &r->c[i];
		int nx;

		if (!c->relayed) {
			c->done = true;
			continue;
		}
		nx = REAL(fcntl)(c->x, F_DUPFD_CLOEXEC, 3);
		c->down = malloc(RELAY_BUF);
		c->up = malloc(RELAY_BUF);
		if (nx < 0 || !c->down || !c->up)
			_exit(1);
		c->x = nx; /* above 2; the old number goes below */
		keep[nk++] = c->x;
		keep[nk++] = c->pair[1];
	}
	close_others(keep, nk);
	free(keep);
	do {
		live = 0;
		for (int i = 0; i < r->n; i++) {
			struct rconn *c = &r->c[i];
			short xe = 0, pe = 0;

			if (c->done) {
				p[2 * i].fd = p[2 * i + 1].fd = -1;
				continue;
			}
			live++;
			if (!c->x_eof && c->dn == c->doff)
				xe |= POLLIN;
			if (c->un > c->uoff)
				xe |= POLLOUT;
			if (!c->p_eof && c->un == c->uoff)
				pe |= POLLIN;
			if (c->dn > c->doff)
				pe |= POLLOUT;
			p[2 * i] = (struct pollfd){.fd = xe ? c->x : -1, .events = xe};
			p[2 * i + 1] = (struct pollfd){.fd = c->pair[1], .events = pe};
		}
		if (!live)
			break;
		if (REAL(poll)(p, (nfds_t)r->n * 2, -1) < 0 && errno != EINTR)
			_exit(1);
		for (int i = 0; i < r->n; i++) {
			struct rconn *c = &r->c[i];

			if (c->done)
				continue;
			pump_down(c);
			if (!c->done)
				pump_up(c, p[2 * i + 1].revents);
		}
	} while (live);
	_exit(0);
}

/* Resolves the sockets inherited across our own exec that the router may
 * know, so that a ring among them is seen. */
static void resolve_inherited(void)
{
	int fd;

	while ((fd = ffs_fd_inherited_next()) >= 0) {
		int flags = REAL(fcntl)(fd, F_GETFD);

		if (flags >= 0 && !(flags & FD_CLOEXEC))
			ffs_ring_conn(fd);
	}
}

/* Puts the relays in: 0, or -1 with nothing changed. */
static int relay_start(struct rset *r)
{
	bool vf = ffs_vfork_child();
	pid_t pid, w;
	int st = 0;

	for (int i = 0; i < r->n; i++)
		if (r->c[i].relayed &&
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->c[i].pair) < 0)
			return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		pid_t h = _Fork();

		if (h == 0)
			relay_main(r);
		if (h < 0) /* the holds the fork counted for us go */
			for (int i = 0; i < r->n; i++)
				ffs_ring_closing(r->c[i].s, -1);
		_exit(h < 0);
	}
	while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	/* (with SIGCHLD ignored, no status: the helper is taken as started) */
	if (w == pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		return -1;
	for (int i = 0; i < r->nfds; i++) {
		struct rconn *c = &r->c[r->idx[i]];
		int fd = r->fds[i], fl = REAL(fcntl)(fd, F_GETFL);
		bool ours = !vf && ffs_fd_get(fd) == c->s;

		/* as a close of this copy (the last one drops our hold), then
		 * the pair's end in its place; a vfork child's copies were
		 * never counted, and the table is its parent's */
		if (ours)
			ffs_fd_closing(fd);
		if (REAL(dup3)(c->pair[0], fd, 0) < 0)
			continue;
		if (ours)
			ffs_fd_set(fd, NULL);
		if (fl >= 0 && (fl & O_NONBLOCK))
			REAL(fcntl)(fd, F_SETFL, O_NONBLOCK);
	}
	return 0;
}

void ffs_exec_prepare(int dirfd, const char *path, int flags, bool search, char *const envp[])
{
	struct rset r = {0};
	int saved = errno, img;

	if (ffs_enabled && !ffs_vfork_child())
		ffs_ep_exec(); /* the new image has no tags to translate */
	if (!ffs_enabled || (!ffs_rings_any() && !ffs_fd_inherited_any()))
		return;
	/* the image first: a file read, where the inherited sockets would
	 * each cost a router round trip */
	img = ffs_exec_image(dirfd, path, flags, search);
	if (img < 0 || (img == 1 && ffs_exec_env_loads(envp)))
		goto out; /* the exec fails, or the image reattaches itself */
	resolve_inherited();
	ffs_fd_each(collect_ring, &r);
	if (r.n)
		collect_fds(&r);
	if (!r.nfds)
		goto out;
	if (relay_start(&r) < 0)
		ff_warn("ffnet: exec: no relay for the ring connections it inherits (%s): the "
			"new image may read their doorbell bytes",
			strerror(errno));
	else
		ff_info("ffnet: exec of an image without the shim: %d fds relayed", r.nfds);
out:
	rset_free(&r);
	errno = saved;
}
