/* The fd table: two levels of 1024 entries, allocated on first use and
 * never freed, so lookups are two loads without a lock and there is no fixed
 * fd ceiling below the kernel's own (nr_open). struct ffs_sock memory goes
 * back to a free list, never to malloc, so a thread racing a close() on the
 * same fd reads a stale struct rather than unmapped memory. */
#include "sock-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define L2_BITS 10
#define L2_SIZE (1 << L2_BITS)
#define L1_SIZE (1 << 14) /* 16M fds, more than nr_open allows */

typedef _Atomic(struct ffs_sock *) slot_t;

static _Atomic(slot_t *) l1[L1_SIZE];
static atomic_int fd_limit;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ffs_sock *pool; /* linked through ->owner */

static slot_t *chunk(int fd, bool create)
{
	unsigned i = (unsigned)fd >> L2_BITS;
	slot_t *c;

	if (fd < 0 || i >= L1_SIZE)
		return NULL;
	c = atomic_load_explicit(&l1[i], memory_order_acquire);
	if (c || !create)
		return c;
	c = calloc(L2_SIZE, sizeof(*c));
	if (!c)
		return NULL;
	{
		slot_t *expect = NULL;

		if (!atomic_compare_exchange_strong(&l1[i], &expect, c)) {
			free(c);
			c = expect;
		}
	}
	return c;
}

void ffs_fdtab_fork(int phase)
{
	if (phase == 0)
		pthread_mutex_lock(&pool_lock);
	else
		pthread_mutex_unlock(&pool_lock);
}

struct ffs_sock *ffs_fd_get(int fd)
{
	slot_t *c = chunk(fd, false);

	return c ? atomic_load_explicit(&c[fd & (L2_SIZE - 1)], memory_order_acquire) : NULL;
}

int ffs_fd_limit(void)
{
	return atomic_load(&fd_limit);
}

void ffs_fd_set(int fd, struct ffs_sock *s)
{
	slot_t *c = chunk(fd, s != NULL);
	struct ffs_sock *old;
	int lim;

	if (!c) {
		ffs_sock_unref(s);
		return;
	}
	lim = atomic_load(&fd_limit);
	while (s && fd >= lim && !atomic_compare_exchange_weak(&fd_limit, &lim, fd + 1))
		;
	old = atomic_exchange(&c[fd & (L2_SIZE - 1)], s);
	ffs_sock_unref(old);
}

void ffs_fd_each(void (*fn)(int fd, struct ffs_sock *s, void *arg), void *arg)
{
	int lim = atomic_load(&fd_limit);

	for (int i = 0; i < L1_SIZE && i << L2_BITS < lim; i++) {
		slot_t *c = atomic_load_explicit(&l1[i], memory_order_acquire);

		for (int j = 0; c && j < L2_SIZE; j++) {
			struct ffs_sock *s = atomic_load_explicit(&c[j], memory_order_acquire);

			if (s)
				fn(i << L2_BITS | j, s, arg);
		}
	}
}

struct ffs_sock *ffs_fd_take(int fd)
{
	slot_t *c = chunk(fd, false);

	return c ? atomic_exchange(&c[fd & (L2_SIZE - 1)], NULL) : NULL;
}

static _Atomic uint64_t *inherited; /* a bit per fd, set at load, never grown */
static int inherited_max;

void ffs_fd_inherited_scan(void)
{
	DIR *d;
	struct dirent *e;

	if (!ffs_enabled || !(d = opendir("/proc/self/fd")))
		return;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		int dom = -1;
		socklen_t len = sizeof(dom);
		struct stat st;

		if (*end || fd < 0 || fd == dirfd(d) || fd >= (1L << 20) || fstat((int)fd, &st) < 0 ||
		    !S_ISSOCK(st.st_mode) ||
		    REAL(getsockopt)((int)fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0 ||
		    (dom != AF_UNIX && dom != AF_INET && dom != AF_INET6))
			continue;
		if (fd >= inherited_max) {
			int n = (int)((fd / 64 + 1) * 64);
			_Atomic uint64_t *m = realloc((void *)inherited, (size_t)n / 8);

			if (!m)
				break;
			memset((void *)(m + inherited_max / 64), 0, (size_t)(n - inherited_max) / 8);
			inherited = m;
			inherited_max = n;
		}
		atomic_fetch_or(&inherited[fd / 64], 1ull << (fd % 64));
	}
	closedir(d);
}

bool ffs_fd_inherited_take(int fd)
{
	uint64_t bit;

	if (fd < 0 || fd >= inherited_max)
		return false;
	bit = 1ull << (fd % 64);
	return atomic_fetch_and(&inherited[fd / 64], ~bit) & bit;
}

bool ffs_fd_inherited_any(void)
{
	for (int i = 0; i < inherited_max / 64; i++)
		if (atomic_load(&inherited[i]))
			return true;
	return false;
}

int ffs_fd_inherited_next(void)
{
	for (int i = 0; i < inherited_max / 64; i++) {
		uint64_t w = atomic_load(&inherited[i]);

		while (w) {
			int fd = i * 64 + __builtin_ctzll(w);

			if (ffs_fd_inherited_take(fd))
				return fd;
			w &= w - 1;
		}
	}
	return -1;
}

struct ffs_sock *ffs_sock_new(enum ffs_kind kind, int family)
{
	struct ffs_sock *s;

	pthread_mutex_lock(&pool_lock);
	s = pool;
	if (s)
		pool = (struct ffs_sock *)s->owner;
	pthread_mutex_unlock(&pool_lock);
	if (!s)
		s = malloc(sizeof(*s));
	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	atomic_init(&s->refs, 1);
	s->kind = kind;
	s->family = family;
	s->kfd = -1;
	s->qr = -1;
	ffs_tcpopts_default(&s->tcp);
	return s;
}

struct ffs_sock *ffs_sock_ref(struct ffs_sock *s)
{
	if (s)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

void ffs_sock_unref(struct ffs_sock *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	if (s->kind == FFS_INTERNAL && s->owner)
		*s->owner = -1; /* the app closed one of our fds */
	if (s->kind == FFS_LISTEN)
		ffs_watch_forget(s);
	ffs_internal_close(&s->kfd);
	ffs_internal_close(&s->qr);
	if (s->kind == FFS_LISTEN && s->listener_id)
		ffs_unlisten(s->listener_id);
	free(s->eps);
	s->eps = NULL;
	free(s->vopts);
	s->vopts = NULL;
	pthread_mutex_lock(&pool_lock); /* a fork counting the rings reads them (ring.c) */
	ffs_ring_free(s->ring);
	s->ring = NULL;
	s->owner = (int *)pool;
	pool = s;
	pthread_mutex_unlock(&pool_lock);
}

void ffs_track_socket(int fd, int domain, int type, int protocol)
{
	if (ffs_enabled && (domain == AF_INET || domain == AF_INET6) &&
	    (type & 0xf) == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP))
		ffs_fd_set(fd, ffs_sock_new(FFS_TCP, domain));
	else
		ffs_fd_set(fd, NULL);
}

void ffs_track_bind(int fd)
{
	struct ffs_sock *s = ffs_fd_get(fd);

	if (s && s->kind == FFS_TCP)
		s->bound = true;
}

/* A new copy shares the entry, except for the shim's own fds and the ones
 * the router said are not its. */
void ffs_fd_copy(int old, int nfd)
{
	struct ffs_sock *s = ffs_fd_get(old);

	/* a vfork child's fds are not the ones of the memory it shares */
	if ((s || ffs_fd_get(nfd)) && ffs_vfork_child())
		return;
	if (s && (s->kind == FFS_INTERNAL || s->kind == FFS_OTHER))
		s = NULL;
	ffs_fd_set(nfd, ffs_sock_ref(s));
}

int ffs_close(int fd)
{
	struct ffs_sock *s;
	int r, saved;

	if (ffs_fd_get(fd) && ffs_vfork_child())
		return REAL(close)(fd); /* as in ffs_fd_copy */
	ffs_fd_closing(fd);
	s = ffs_fd_take(fd);
	r = REAL(close)(fd);
	saved = errno;
	ffs_sock_unref(s);
	errno = saved;
	return r;
}

void ffs_fd_closing(int fd)
{
	struct ffs_sock *s = ffs_fd_get(fd);

	ffs_ep_closing(fd);
	ffs_epoll_closed(fd);
	if (s && s->pending)
		ffs_pending_cancel(fd);
	if (s)
		ffs_epoll_forget(s, fd);
	/* a vfork child's close is not its parent's */
	if (s && s->ring && atomic_load(&s->refs) == 1 && !ffs_vfork_child())
		ffs_ring_closing(s, fd);
}

void ffs_fd_replacing(int old, int nfd)
{
	struct ffs_sock *s = ffs_fd_get(nfd);

	bool closes;

	if (s && s->pending && old != nfd)
		ffs_pending_cancel(nfd);
	/* only a dup that will succeed closes nfd */
	closes = old != nfd && (s || ffs_ep_any()) && REAL(fcntl)(old, F_GETFD) >= 0;
	if (closes)
		ffs_ep_closing(nfd);
	if (old != nfd)
		ffs_epoll_closed(nfd);
	if (!s || !closes || ffs_vfork_child())
		return;
	if (s->handed)
		ffs_epoll_forget(s, nfd);
	/* the last copy of a ring end goes as a close would take it */
	if (s->ring && atomic_load(&s->refs) == 1)
		ffs_ring_closing(s, nfd);
}

void ffs_fd_closing_range(unsigned first, unsigned last)
{
	int lim = ffs_fd_limit();

	for (unsigned fd = first; fd <= last && fd < (unsigned)lim; fd++)
		ffs_fd_closing((int)fd);
}

/* A listener's hidden kernel fd in the range is already closed: forget it
 * rather than close that number twice. */
void ffs_fd_drop_range(unsigned first, unsigned last)
{
	int lim = ffs_fd_limit();

	for (unsigned fd = first; fd <= last && fd < (unsigned)lim; fd++) {
		struct ffs_sock *s = ffs_fd_take((int)fd);

		if (!s)
			continue;
		if (s->kfd >= (int)first && (unsigned)s->kfd <= last)
			s->kfd = -1;
		ffs_sock_unref(s);
	}
}

void ffs_fd_internal(int fd, int *owner)
{
	struct ffs_sock *s = ffs_sock_new(FFS_INTERNAL, 0);

	if (s)
		s->owner = owner;
	ffs_fd_set(fd, s);
}

void ffs_internal_close(int *fdp)
{
	struct ffs_sock *k;

	if (*fdp < 0)
		return;
	k = ffs_fd_take(*fdp);
	if (k) {
		k->owner = NULL;
		ffs_sock_unref(k);
	}
	REAL(close)(*fdp);
	*fdp = -1;
}

int ffs_hide_fd(int fd)
{
	struct rlimit rl;
	int min = 100, nfd;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur <= 200)
		min = 3;
	nfd = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, min);
	if (nfd < 0)
		return fd;
	REAL(close)(fd);
	return nfd;
}
