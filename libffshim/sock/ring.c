/* Same-host connections over shared-memory rings (issue 14): the app's
 * send and recv on such a connection copy into and out of the rings
 * (common/sring.c), and its socket stays what poll, select and epoll look
 * at, kept in step by the doorbell protocol (common/sdoor.c). EOF and the
 * peer's end are the socket's: shutdown goes to it too, and a reader that
 * finds its ring empty asks the socket whether EOF came.
 * Several threads and processes (fork) may use one end: each direction
 * has a lock in a page shared by this end's processes only (the rings'
 * page is shared with the peer, which must not be able to hold our lock).
 * Blocking: the socket's O_NONBLOCK and MSG_DONTWAIT decide; a blocking
 * call sleeps in poll() on the socket, SO_RCVTIMEO / SO_SNDTIMEO bound it,
 * a signal ends it with EINTR (or the bytes moved so far), as TCP does.
 * Each end has a page of its own (ff_sring_end), which only its holders
 * map: the locks, and a count of the processes that hold the end, so
 * that only the last close tells the peer.
 * An fd this process did not make (inherited across exec, received
 * through SCM_RIGHTS) is asked about at the router before its first use
 * (ffs_ring_conn), and takes the rings from there.
 * An exec'd image without the shim gets a relay instead (exec.c). */
#include "sock-internal.h"

#include "fdpass.h"
#include "sdoor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define IOV_STEP 64 /* iovecs copied per pass, past the first one */

struct ffs_ring {
	void *mem;
	size_t len;
	struct ff_sring r;
	struct ff_sdoor d;
	struct ff_sring_end *lk; /* this end's page: its locks and holders */
	bool rd_shut;		 /* shutdown(SHUT_RD): reads end at the ring's end */
	unsigned gen;		 /* ring_gen when a fork last counted it */
	bool live;		 /* counted in rings_live */
	unsigned long ino;	 /* of the socket (exec.c finds its fds by it) */
	bool released;		 /* this process's hold went (ffs_ring_closing) */
	bool nb_seen;		 /* O_NONBLOCK when a recv last asked (spinning's guess) */
	/* O_NONBLOCK of the file, known without asking the kernel (-1: not
	 * known) while only this process can change it: one it made and did
	 * not share (fork, SCM_RIGHTS), whose fcntl and ioctl go through the
	 * shim (ffs_ring_setfl). A read loop's last read, which finds the
	 * ring empty, then costs no system call. */
	int nb;
	bool nb_shared;		 /* another process may change it: always ask */
	/* lazy disarm (sdoor.c): a recv emptied the ring and left the socket
	 * readable; the next wait in this process disarms it first (settle) */
	bool pend;		 /* under lk->rx */
	bool pend_eagain;	 /* a recv said EAGAIN since: the next one asks the socket */
	int fd;			 /* the fd of that recv, for settle (checked there) */
	bool listed;		 /* on the pend list (under pend_mu) */
	bool bulk;		 /* the last read took a piece or more: a stream flows in */
	struct ffs_ring *pnext;
};

/* A process that died holding the lock left the ring as it was between
 * two copies: each copy publishes its counter last, so it is consistent. */
static void lock(pthread_mutex_t *m)
{
	if (pthread_mutex_lock(m) == EOWNERDEAD)
		pthread_mutex_consistent(m);
}

static unsigned rings_live; /* ends attached in this process */

unsigned long ffs_ring_ino(const struct ffs_sock *s)
{
	return s->ring ? s->ring->ino : 0;
}

bool ffs_rings_any(void)
{
	return __atomic_load_n(&rings_live, __ATOMIC_ACQUIRE) != 0;
}

/* One more process holds this end; with credit, one that an fd passed
 * through SCM_RIGHTS brought, whose sender counted it (ffs_ring_passing). */
static void hold(struct ff_sring_end *e, bool credit)
{
	uint32_t n = __atomic_load_n(&e->inflight, __ATOMIC_RELAXED);

	while (credit && n)
		if (__atomic_compare_exchange_n(&e->inflight, &n, n - 1, false, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return;
	__atomic_add_fetch(&e->holders, 1, __ATOMIC_ACQ_REL);
}

int ffs_ring_attach(struct ffs_sock *s, int fd, const int mfds[2], uint32_t size, int side,
		    bool credit, bool inherited)
{
	struct ffs_ring *g = calloc(1, sizeof(*g));
	struct stat st, es;
	int err = -ENOMEM;

	if (!g)
		goto out;
	g->len = ff_sring_len(size);
	/* the router sealed the sizes: ones we see now stay */
	err = -EINVAL;
	if (!g->len || fstat(mfds[0], &st) < 0 || (size_t)st.st_size < g->len ||
	    fstat(mfds[1], &es) < 0 || (size_t)es.st_size < FF_SRING_HDR)
		goto out;
	g->mem = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_SHARED, mfds[0], 0);
	g->lk = mmap(NULL, FF_SRING_HDR, PROT_READ | PROT_WRITE, MAP_SHARED, mfds[1], 0);
	if (g->mem == MAP_FAILED || g->lk == MAP_FAILED) {
		err = -ENOMEM;
		goto out;
	}
	err = ff_sring_attach(&g->r, g->mem, g->len, side);
	if (!err && __atomic_load_n(&g->lk->magic, __ATOMIC_ACQUIRE) != FF_SRING_END_MAGIC)
		err = -EINVAL;
	if (!err)
		err = ff_sdoor_init(&g->d, &g->r, fd);
	g->d.edges = &g->lk->edges;
	if (!err && fstat(fd, &st) == 0)
		g->ino = (unsigned long)st.st_ino;
	if (!err)
		g->nb_seen = (REAL(fcntl)(fd, F_GETFL) & O_NONBLOCK) != 0;
	g->nb = -1;
	g->nb_shared = inherited;
	if (!err) {
		hold(g->lk, credit);
		ff_close_fds((int *)mfds, 2);
		g->live = true;
		__atomic_add_fetch(&rings_live, 1, __ATOMIC_RELEASE);
		s->ring = g;
		return 0;
	}
out:
	ff_close_fds((int *)mfds, 2);
	ffs_ring_free(g);
	return err;
}

/* Ends whose disarm a recv deferred (g->pend), for settle. */
static pthread_mutex_t pend_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ffs_ring *pend_head;

static void pend_push(struct ffs_ring *g)
{
	if (__atomic_load_n(&g->listed, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&pend_mu);
	if (!g->listed) {
		g->listed = true;
		g->pnext = pend_head;
		__atomic_store_n(&pend_head, g, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&pend_mu);
}

static void pend_unlist(struct ffs_ring *g)
{
	pthread_mutex_lock(&pend_mu);
	for (struct ffs_ring **p = &pend_head; *p; p = &(*p)->pnext)
		if (*p == g) {
			*p = g->pnext;
			break;
		}
	pthread_mutex_unlock(&pend_mu);
}

/* The disarm a recv deferred, under lk->rx: the socket readable iff the
 * ring holds bytes, again. Only through the fd that recv had, if it is
 * still this end's (its number may have gone to another file since). */
static void disarm(struct ffs_ring *g)
{
	struct ffs_sock *s;

	if (!g->pend)
		return;
	g->pend = g->pend_eagain = false;
	s = ffs_fd_get(g->fd);
	if (s && s->ring == g && !ff_sring_readable(&g->r))
		ff_sdoor_took(&g->d, g->fd);
}

/* A stream's reader that emptied its ring and would now sleep: its
 * writer is most likely copying the next piece (FF_SRING_STEP) that very
 * moment, and sleeping would cost it a token and this side a wake-up per
 * piece. So, before the disarms, a wait that may sleep watches the rings
 * of ends whose last read took a piece or more, STREAM_SPIN_NS at most,
 * until one of them has bytes: that end then keeps its socket readable
 * (disarm leaves it), and the wait returns at once. An end that stayed
 * empty is a stream no more until a read takes a piece again, so a
 * bursty app (one large response, then nothing) pays this once. One
 * iperf3 stream, server side: 300-950 context switches per GB before,
 * 17-26 after (issue 14's note). */
#define STREAM_SPIN_NS 8000
#define STREAM_ENDS    8 /* watched at once, at most */

static inline void cpu_relax(void);

static void stream_spin(void)
{
	struct ffs_ring *w[STREAM_ENDS];
	int n = 0;
	int64_t end;

	for (struct ffs_ring *g = pend_head; g && n < STREAM_ENDS; g = g->pnext)
		if (__atomic_load_n(&g->bulk, __ATOMIC_RELAXED))
			w[n++] = g;
	if (!n)
		return;
	end = ffs_now_ns() + STREAM_SPIN_NS;
	for (;;) {
		for (int i = 0; i < n; i++)
			if (ff_sring_readable(&w[i]->r) || ff_sring_eof(&w[i]->r))
				return;
		for (int k = 0; k < 16; k++)
			cpu_relax();
		if (ffs_now_ns() >= end)
			break;
	}
	for (int i = 0; i < n; i++)
		__atomic_store_n(&w[i]->bulk, false, __ATOMIC_RELAXED);
}

void ffs_ring_settle(bool sleeps)
{
	struct ffs_ring *g;

	ffs_ep_sync();
	if (!__atomic_load_n(&pend_head, __ATOMIC_ACQUIRE))
		return; /* (a vfork child would disarm its parent's: no harm) */
	/* an end leaves the list only once disarmed: a thread that finds the
	 * list empty finds no end another thread is still disarming */
	pthread_mutex_lock(&pend_mu);
	if (sleeps)
		stream_spin();
	while ((g = pend_head)) {
		lock(&g->lk->rx);
		disarm(g);
		pthread_mutex_unlock(&g->lk->rx);
		g->listed = false;
		__atomic_store_n(&pend_head, g->pnext, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&pend_mu);
}

void ffs_ring_fork_after(void)
{
	pthread_mutex_unlock(&pend_mu);
}

uint32_t ffs_ring_ready(struct ffs_ring *g, uint32_t want)
{
	struct ff_sring *r = &g->r;
	uint32_t ev = 0;

	if ((want & EPOLLIN) && ff_sring_readable(r))
		ev |= EPOLLIN;
	if ((want & EPOLLOUT) && ff_sring_writable(r))
		ev |= EPOLLOUT;
	/* (the peer's line only for a ring that is ready: a scan of idle
	 * ones touches no more than it must) */
	if (ev && (r->corrupt || ff_sring_peer_gone(r)))
		return 0;
	return ev;
}

void ffs_ring_epoll(int fd, uint32_t events)
{
	struct ffs_sock *s;

	if (!(events & EPOLLET) || !(s = ffs_ring_conn(fd)))
		return;
	if (!__atomic_load_n(&s->ring->lk->edges, __ATOMIC_ACQUIRE))
		__atomic_store_n(&s->ring->lk->edges, 1, __ATOMIC_SEQ_CST);
	ffs_ring_settle(false);
}

void ffs_ring_free(struct ffs_ring *g)
{
	if (!g)
		return;
	pend_unlist(g); /* (a settle may be at it: it holds pend_mu meanwhile) */
	ffs_ep_ring_gone(g);
	if (g->live)
		__atomic_sub_fetch(&rings_live, 1, __ATOMIC_RELEASE);
	if (g->mem && g->mem != MAP_FAILED)
		munmap(g->mem, g->len);
	if (g->lk && g->lk != MAP_FAILED)
		munmap(g->lk, FF_SRING_HDR);
	free(g);
}

/* Before fork: the child will hold every end its parent holds, once each
 * (several fds may share one). Counted before it exists, or the parent
 * could close its last fd first and end the rings under the child (a
 * fork that fails leaves the count high: the kernel's EOF then ends them). */
static void fork_hold(int fd, struct ffs_sock *s, void *arg)
{
	unsigned gen = *(unsigned *)arg;

	(void)fd;
	if (s->kind == FFS_CONN && s->ring && s->ring->gen != gen) {
		s->ring->gen = gen;
		s->ring->nb_shared = true; /* the child holds the file too */
		hold(s->ring->lk, false);
	}
}

static unsigned ring_gen; /* a walk's mark: each end once, whatever its fds */

void ffs_ring_fork_prepare(void)
{
	if (__atomic_load_n(&rings_live, __ATOMIC_ACQUIRE)) { /* most processes: none */
		ring_gen++;
		ffs_fd_each(fork_hold, &ring_gen);
	}
	pthread_mutex_lock(&pend_mu); /* released by ffs_ring_fork_after */
}

static void exit_release(int fd, struct ffs_sock *s, void *arg)
{
	unsigned gen = *(unsigned *)arg;

	if (s->kind == FFS_CONN && s->ring && s->ring->gen != gen) {
		s->ring->gen = gen;
		ffs_ring_closing(s, fd);
	}
}

/* exit(): the kernel closes our fds, but only the shim can tell the end's
 * other holders that this process no longer holds it; otherwise its peer
 * would see the end only through the socket (reads: EOF; writes: EPIPE
 * once the ring is full). A process killed, or one that calls _exit(),
 * does not come here. */
__attribute__((destructor)) static void ring_exit(void)
{
	if (!__atomic_load_n(&rings_live, __ATOMIC_ACQUIRE) || ffs_vfork_child())
		return;
	ring_gen++;
	ffs_fd_each(exit_release, &ring_gen);
}

void ffs_ring_passing(int fd)
{
	struct ffs_sock *s = ffs_ring_conn(fd);

	if (!s)
		return;
	__atomic_store_n(&s->ring->nb_shared, true, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->ring->lk->holders, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&s->ring->lk->inflight, 1, __ATOMIC_ACQ_REL);
}

struct ffs_sock *ffs_ring_conn(int fd)
{
	struct ffs_sock *s = ffs_fd_get(fd);

	if (__builtin_expect(!s, 0) && ffs_fd_inherited_take(fd))
		s = ffs_lookup_fd(fd);

	return s && s->kind == FFS_CONN && s->ring ? s : NULL;
}

/* The iovecs past the first skip bytes, at most max of them, into out. */
static int iov_skip(const struct iovec *iov, int n, size_t skip, struct iovec *out, int max)
{
	int k = 0;

	for (int i = 0; i < n && k < max; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		out[k].iov_base = (char *)iov[i].iov_base + skip;
		out[k++].iov_len = iov[i].iov_len - skip;
		skip = 0;
	}
	return k;
}

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Whether a call on fd (g's) with flags may not wait. */
static bool nonblocking(struct ffs_ring *g, int fd, int flags)
{
	int nb;

	if (flags & MSG_DONTWAIT)
		return true;
	nb = __atomic_load_n(&g->nb, __ATOMIC_RELAXED);
	if (nb >= 0 && !__atomic_load_n(&g->nb_shared, __ATOMIC_RELAXED))
		return nb;
	nb = (REAL(fcntl)(fd, F_GETFL) & O_NONBLOCK) != 0;
	if (!__atomic_load_n(&g->nb_shared, __ATOMIC_RELAXED))
		__atomic_store_n(&g->nb, nb, __ATOMIC_RELAXED);
	return nb;
}

void ffs_ring_setfl(int fd, int nb)
{
	struct ffs_sock *s = ffs_fd_get(fd);

	if (s && s->kind == FFS_CONN && s->ring)
		__atomic_store_n(&s->ring->nb, nb >= 0 ? !!nb : -1, __ATOMIC_RELAXED);
}

/* Waits for events on fd up to the socket's timeout opt (SO_RCVTIMEO or
 * SO_SNDTIMEO; 0: none): 0 when something happened, -EAGAIN when the time
 * ran out, -EINTR on a signal. *end keeps the deadline across waits. */
static int wait_for(int fd, short events, int opt, int64_t *end)
{
	struct pollfd p = {.fd = fd, .events = events};
	int ms = -1;

	if (*end < 0) {
		struct timeval tv = {0};
		socklen_t len = sizeof(tv);

		*end = 0;
		if (REAL(getsockopt)(fd, SOL_SOCKET, opt, &tv, &len) == 0 &&
		    (tv.tv_sec || tv.tv_usec))
			*end = ffs_now_ns() + (int64_t)tv.tv_sec * 1000000000 + tv.tv_usec * 1000;
	}
	if (*end) {
		int64_t left = *end - ffs_now_ns();

		if (left <= 0)
			return -EAGAIN;
		ms = (int)((left + 999999) / 1000000);
	}
	if (REAL(poll)(&p, 1, ms) < 0)
		return errno == EINTR ? -EINTR : 0;
	return 0;
}

#define ROOM_SPIN_NS  20000 /* at most, per full ring */
#define ROOM_QUIET_NS 2000  /* the reader took nothing for this long: it is not reading */

/* The ring we write is full. A reader busy on another CPU makes room
 * within microseconds: watching its tail for that long costs less than
 * the doorbell's filling, a sleep and a wake-up. Only while the tail
 * moves (a reader asleep, or on this CPU, does not), and until a quarter
 * of the ring is free: a writer resuming at the first free bytes would
 * chase the reader one small message at a time (64 B messages ran at
 * half the rate), its loads of the tail's line slowing the reader's
 * stores. True: room came. */
static bool room_spin(struct ffs_ring *g)
{
	struct ff_sring *r = &g->r;
	uint64_t tail = __atomic_load_n(&r->tx->tail, __ATOMIC_ACQUIRE);
	int64_t now = ffs_now_ns(), end = now + ROOM_SPIN_NS, quiet = now + ROOM_QUIET_NS;

	for (;;) {
		for (int k = 0; k < 4; k++) {
			if (ff_sring_writable(r) >= r->size / 4 || r->corrupt ||
			    ff_sring_peer_gone(r))
				return true;
			for (int i = 0; i < 8; i++)
				cpu_relax();
		}
		now = ffs_now_ns();
		if (__atomic_load_n(&r->tx->tail, __ATOMIC_ACQUIRE) != tail) {
			tail = __atomic_load_n(&r->tx->tail, __ATOMIC_ACQUIRE);
			quiet = now + ROOM_QUIET_NS;
		}
		if (now >= end || now >= quiet)
			return ff_sring_writable(r) > 0;
	}
}

ssize_t ffs_ring_send(int fd, struct ffs_sock *s, const struct iovec *iov, int n, int flags)
{
	struct ffs_ring *g = s->ring;
	size_t want = iov_total(iov, n), done = 0;
	int64_t end = -1;
	int err = 0;
	bool spun = false;

	if (s->shut_wr) {
		err = EPIPE;
		goto out;
	}
	lock(&g->lk->tx);
	while (done < want) {
		struct iovec v[IOV_STEP];
		int k = iov_skip(iov, n, done, v, IOV_STEP);
		ssize_t w = ff_sring_writev(&g->r, v, k);

		if (w < 0) {
			err = (int)-w;
			break;
		}
		if (w > 0) {
			int e = ff_sdoor_wrote(&g->d, fd);

			done += (size_t)w;
			if (e) {
				err = -e;
				break;
			}
			continue;
		}
		if (!spun && room_spin(g)) {
			spun = true;
			continue;
		}
		spun = true;
		w = ff_sdoor_full(&g->d, fd);
		if (w < 0) {
			err = (int)-w;
			break;
		}
		if (w == 1)
			continue;
		/* a blocking send waits until every byte is in, as TCP's does
		 * (a timeout or a signal returns what went so far) */
		if (nonblocking(g, fd, flags)) {
			err = done ? 0 : EAGAIN;
			break;
		}
		pthread_mutex_unlock(&g->lk->tx);
		err = -wait_for(fd, POLLOUT, SO_SNDTIMEO, &end);
		lock(&g->lk->tx);
		if (err)
			break;
	}
	pthread_mutex_unlock(&g->lk->tx);
out:
	if (done)
		return (ssize_t)done;
	if (!err)
		return 0;
	errno = err;
	/* EPIPE as TCP gives it (ffs_sent): once quietly, then with SIGPIPE */
	return err == EPIPE ? ffs_sent(fd, s, -1, want, flags) : -1;
}

/* Takes the bytes on the socket although the ring is empty and the
 * doorbell took what it counted (a peer that lost count, or a token for
 * bytes we already read), counting them as the doorbell counts what it
 * takes. One recv in the common case, where there is nothing. Returns
 * what it found: 2 bytes (taken; the ring may have more now), 1 the
 * peer's EOF (nothing queued), 0 nothing, or -errno. */
static int sock_take(struct ffs_ring *g, int fd)
{
	char buf[256];
	uint64_t got = 0;
	ssize_t k;

	do
		k = REAL(recv)(fd, buf, sizeof(buf), MSG_DONTWAIT);
	while (k > 0 && (got += (uint64_t)k) && k == (ssize_t)sizeof(buf));
	if (got) {
		__atomic_add_fetch(&g->r.rx->drained, got, __ATOMIC_RELEASE);
		return 2;
	}
	if (k == 0)
		return 1;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return -errno;
}

static bool stray(struct ffs_ring *g, int fd)
{
	return sock_take(g, fd) == 2;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* A reader that would sleep watches the ring for ns first (FFNET_SPIN_US,
 * or STREAM_SPIN_NS after a read that took a piece: see stream_spin), the
 * producer sending no token meanwhile (sdoor.c), until bytes or the
 * peer's EOF come. The caller looks at the ring again after: that is the
 * look the protocol asks for once spinning has ended. False: nothing came. */
static bool spin_rx(struct ffs_ring *g, int64_t ns)
{
	struct ff_sring *r = &g->r;
	int64_t end = ffs_now_ns() + ns;
	bool got = false;

	ff_sdoor_spin_begin(&g->d, (uint64_t)ns);
	do {
		for (int i = 0; i < 64 && !got; i++) {
			got = ff_sring_readable(r) || ff_sring_eof(r);
			cpu_relax();
		}
	} while (!got && ffs_now_ns() < end);
	ff_sdoor_spin_end(&g->d);
	return got;
}

ssize_t ffs_ring_recv(int fd, struct ffs_sock *s, const struct iovec *iov, int n, int flags)
{
	struct ffs_ring *g = s->ring;
	bool peek = flags & MSG_PEEK, waitall = (flags & MSG_WAITALL) && !peek;
	size_t want = iov_total(iov, n), done = 0;
	int err = 0, e, strays = 0;
	bool spun = false, push = false, looked = false, again = false;
	ssize_t got;
	char c;

	if (!want)
		return 0;
	lock(&g->lk->rx);
	for (;;) {
		struct iovec v[IOV_STEP];
		int k = iov_skip(iov, n, done, v, IOV_STEP);
		ssize_t r = ff_sring_readv(&g->r, v, k, peek);

		if (r < 0) {
			err = (int)-r;
			break;
		}
		if (r > 0) {
			done += (size_t)r;
			if (!peek)
				__atomic_store_n(&g->bulk, done >= FF_SRING_STEP, __ATOMIC_RELAXED);
			if (!peek && ff_sdoor_took_lazy(&g->d, fd) == 1) {
				/* the ring is empty, the socket still readable:
				 * this process's next wait disarms it (settle) */
				push = !g->pend;
				g->pend = true;
				g->pend_eagain = false;
				g->fd = fd;
			}
			if (done == want || !waitall)
				break;
			continue;
		}
		if (g->rd_shut || (done && !waitall))
			break;
		/* deferred: a call that may not wait says EAGAIN from the ring
		 * alone, once; the next asks the socket too (a peer killed
		 * shows only there) */
		if (g->pend && !g->pend_eagain && !ff_sring_eof(&g->r) && nonblocking(g, fd, flags)) {
			g->pend_eagain = true;
			err = EAGAIN;
			break;
		}
		g->pend = false;
		ff_sdoor_took(&g->d, fd); /* empty: the socket is not readable now */
		if (ff_sring_readable(&g->r))
			continue;
		if (ff_sring_eof(&g->r))
			break;
		/* spinning: the ring first, the socket once that time is up */
		/* (O_NONBLOCK as last seen: a call that may not wait must not
		 * spin, and a stale guess only costs one spin or none, since
		 * the decision to wait below asks the kernel) */
		if ((ffs_spin_ns || g->bulk) && !spun && !(flags & MSG_DONTWAIT) && !g->nb_seen) {
			int64_t ns = ffs_spin_ns ? ffs_spin_ns : STREAM_SPIN_NS;

			spun = true;
			pthread_mutex_unlock(&g->lk->rx);
			if (!spin_rx(g, ns))
				__atomic_store_n(&g->bulk, false, __ATOMIC_RELAXED);
			lock(&g->lk->rx);
			continue;
		}
		/* the socket: EOF (after the ring's last bytes), an error, or a
		 * byte no count explains, taken (or the wait below would end
		 * at once for ever); looked at by a call that may not wait, and
		 * once a wait ended */
		if (looked || (flags & MSG_DONTWAIT)) {
			e = sock_take(g, fd);
			if (e < 0) {
				err = -e;
				break;
			}
			if (e == 1) {
				if (ff_sring_readable(&g->r))
					continue;
				break;
			}
			if (e == 2 && ++strays < 3)
				continue;
			if (again || (flags & MSG_DONTWAIT)) {
				g->nb_seen = !(flags & MSG_DONTWAIT);
				err = EAGAIN;
				break;
			}
		}
		/* One call waits for a byte as the socket's O_NONBLOCK and
		 * SO_RCVTIMEO say (EAGAIN at once, or when the time is up; a
		 * signal: EINTR, or a restart under SA_RESTART, the kernel's
		 * rules), and its EOF ends it too: it is only peeked at. */
		pthread_mutex_unlock(&g->lk->rx);
		got = REAL(recv)(fd, &c, 1, MSG_PEEK);
		e = errno;
		lock(&g->lk->rx);
		looked = true;
		if (got >= 0) {
			g->nb_seen = false; /* (a guess: it may have waited) */
			continue;
		}
		if (e == EAGAIN || e == EWOULDBLOCK) {
			again = true; /* an EOF, or bytes, since? then EAGAIN */
			continue;
		}
		err = e;
		break;
	}
	pthread_mutex_unlock(&g->lk->rx);
	if (push)
		pend_push(g);
	if (done)
		return (ssize_t)done;
	if (!err)
		return 0;
	if (err == ECONNRESET)
		s->peer_gone = true;
	errno = err;
	return -1;
}

void ffs_ring_closing(struct ffs_sock *s, int fd)
{
	struct ffs_ring *g = s->ring;
	bool unread;

	if (g->released)
		return; /* at exit already (ring_exit) */
	g->released = true;
	/* another process holds this end (a fork, an exec'd image, an fd
	 * passed on): the kernel's EOF comes when the last one closes */
	if (__atomic_sub_fetch(&g->lk->holders, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	lock(&g->lk->rx);
	unread = ff_sring_readable(&g->r) > 0;
	if (!unread && fd >= 0)
		stray(g, fd);
	pthread_mutex_unlock(&g->lk->rx);
	/* bytes unread: TCP resets, and so does the kernel, for the doorbell
	 * bytes left on the socket; the peer reads ECONNRESET there, not the
	 * EOF of our ring */
	if (!unread)
		ff_sring_shut_tx(&g->r);
	ff_sring_shut_rx(&g->r);
}

void ffs_ring_shutdown(struct ffs_sock *s, int how)
{
	struct ffs_ring *g = s->ring;

	if (how == SHUT_WR || how == SHUT_RDWR)
		ff_sring_shut_tx(&g->r);
	if (how == SHUT_RD || how == SHUT_RDWR) {
		ff_sring_shut_rx(&g->r);
		g->rd_shut = true;
	}
}

bool ffs_ring_ioctl(int fd, unsigned long req, int *v)
{
	struct ffs_sock *s = ffs_ring_conn(fd);
	size_t n;

	if (!s || (req != FIONREAD && req != SIOCOUTQ))
		return false;
	n = req == FIONREAD ? ff_sring_readable(&s->ring->r)
			    : s->ring->r.size - ff_sring_writable(&s->ring->r);
	*v = n > INT32_MAX ? INT32_MAX : (int)n;
	return true;
}

int ffs_ring_mmsg(int fd, struct ffs_sock *s, struct mmsghdr *v, unsigned n, int flags, bool tx)
{
	unsigned i;

	if (n > UIO_MAXIOV)
		n = UIO_MAXIOV;
	for (i = 0; i < n; i++) {
		struct msghdr *m = &v[i].msg_hdr;
		ssize_t r;

		if (m->msg_iovlen > IOV_MAX) {
			errno = EINVAL;
			break;
		}
		if (!tx) {
			m->msg_namelen = 0;
			m->msg_controllen = 0;
			m->msg_flags = 0;
		}
		r = tx ? ffs_ring_send(fd, s, m->msg_iov, (int)m->msg_iovlen, flags)
		       : ffs_ring_recv(fd, s, m->msg_iov, (int)m->msg_iovlen, flags);
		if (r < 0)
			break;
		v[i].msg_len = (unsigned)r;
		/* a stream: stop at a short message or at EOF */
		if (r == 0 || (size_t)r < iov_total(m->msg_iov, (int)m->msg_iovlen))
			return (int)i + 1;
		if (!tx && (flags & MSG_WAITFORONE))
			flags |= MSG_DONTWAIT;
	}
	return i ? (int)i : -1;
}

#define SENDFILE_CHUNK (64u << 10)

ssize_t ffs_ring_sendfile(int out, struct ffs_sock *s, int in, off_t *off, size_t n)
{
	char *buf = malloc(SENDFILE_CHUNK);
	size_t done = 0;
	ssize_t r = 0;

	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	while (done < n) {
		size_t k = n - done < SENDFILE_CHUNK ? n - done : SENDFILE_CHUNK;
		struct iovec v = {.iov_base = buf};
		ssize_t w;

		r = off ? pread(in, buf, k, *off) : REAL(read)(in, buf, k);
		if (r <= 0)
			break;
		v.iov_len = (size_t)r;
		w = ffs_ring_send(out, s, &v, 1, 0);
		if (w <= 0) {
			/* the bytes not sent stay in the file, as sendfile leaves them */
			if (!off)
				lseek(in, -r, SEEK_CUR);
			r = w;
			break;
		}
		if (off)
			*off += w;
		else if (w < r)
			lseek(in, w - r, SEEK_CUR);
		done += (size_t)w;
		if (w < r)
			break;
	}
	free(buf);
	if (done)
		return (ssize_t)done;
	return r < 0 ? -1 : 0;
}

static bool is_pipe(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* Whether fd has events now (no wait). */
static bool ready(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};

	return REAL(poll)(&p, 1, 0) > 0;
}

/* splice between a ring connection and a pipe, through a buffer: from the
 * connection, bytes are peeked, written to the pipe, and only what the pipe
 * took is consumed; into it, no more is read from the pipe than the ring
 * takes at once when the socket may not wait. As the kernel's, the
 * socket's O_NONBLOCK decides whether its side waits, SPLICE_F_NONBLOCK
 * only the pipe's. The errors are the kernel's
 * (a second socket: EINVAL; an offset on the pipe: ESPIPE, on the
 * socket: EINVAL). */
ssize_t ffs_ring_splice(int in, off_t *inoff, int out, off_t *outoff, size_t n, unsigned flags)
{
	struct ffs_sock *si = ffs_ring_conn(in), *so = ffs_ring_conn(out);
	bool nb = flags & SPLICE_F_NONBLOCK;
	int pipe_fd = si ? out : in;
	size_t k = n < SENDFILE_CHUNK ? n : SENDFILE_CHUNK;
	struct iovec v;
	ssize_t r, w;
	char *buf;

	if ((si && so) || !is_pipe(pipe_fd)) {
		errno = EINVAL;
		return -1;
	}
	if (si ? outoff != NULL : inoff != NULL) {
		errno = ESPIPE;
		return -1;
	}
	if (si ? inoff != NULL : outoff != NULL) {
		errno = EINVAL;
		return -1;
	}
	if (!k)
		return 0;
	if (nb && !ready(pipe_fd, si ? POLLOUT : POLLIN)) {
		errno = EAGAIN;
		return -1;
	}
	if (nb && si) { /* no more than the pipe takes without waiting */
		int cap = REAL(fcntl)(out, F_GETPIPE_SZ), inq = 0;

		if (cap > 0 && REAL(ioctl)(out, FIONREAD, &inq) == 0 && inq >= 0 && inq < cap)
			k = k < (size_t)(cap - inq) ? k : (size_t)(cap - inq);
	}
	if (so && nonblocking(so->ring, out, 0)) {
		size_t room = ff_sring_writable(&so->ring->r);

		if (!room) {
			errno = EAGAIN;
			return -1;
		}
		k = k < room ? k : room;
	}
	buf = malloc(k);
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	v.iov_base = buf;
	if (si) {
		v.iov_len = k;
		r = ffs_ring_recv(in, si, &v, 1, MSG_PEEK);
		if (r > 0) {
			w = REAL(write)(out, buf, (size_t)r);
			if (w > 0) {
				v.iov_len = (size_t)w;
				ffs_ring_recv(in, si, &v, 1, MSG_DONTWAIT);
			}
			r = w;
		}
	} else {
		r = REAL(read)(in, buf, k);
		if (r > 0) {
			v.iov_len = (size_t)r;
			w = ffs_ring_send(out, so, &v, 1, 0);
			r = w;
		}
	}
	free(buf);
	return r;
}
