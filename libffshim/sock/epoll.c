/* epoll on ring connections, answered from the rings (issue 14).
 *
 * The kernel's answer for a ring connection is its doorbell socket's,
 * which costs the writer a token and the reader a disarm each time the
 * reader catches up (sdoor.c). An event loop that has work on some ring
 * does not need to ask the kernel: this file keeps, for each level-
 * triggered registration of a ring connection, what the app asked for
 * (events and data), and epoll_wait on that set answers from the rings'
 * memory while one of them is ready, with no system call at all:
 *   EPOLLIN  iff the ring we read holds bytes,
 *   EPOLLOUT iff the ring we write has room (what the doorbell mirrors).
 * An end, EOF or error is left to the kernel, which says it with the bits
 * TCP would set.
 * The other fds of the set are not starved: one wait in KERNEL_EVERY of
 * those that find a ring ready asks the kernel instead (without waiting),
 * and any wait that finds no ring ready goes to the kernel as before.
 * So the kernel can tell its events for these registrations from others,
 * they are registered with a tag as their data (TAG: a magic, the slot
 * here and its generation), which every epoll answer the shim returns is
 * translated back from. A tagged event whose ring is empty is a lazy
 * disarm's (sdoor.c) and is dropped, as is a tag of a slot that is gone.
 * Edge-triggered, one-shot and exclusive registrations keep the kernel's
 * answer and the app's data (their events are not the level's to mirror).
 * A fork child shares the set and the slots it inherited: it translates,
 * but answers from the rings only for registrations of its own. Before an
 * exec, tags in sets the new image keeps (no FD_CLOEXEC) become the app's
 * data again. */
#include "sock-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define TAG_MAGIC    0xf5e1dull /* 20 bits: no pointer, small number or -1 starts so */
#define TAG(slot, gen) ((TAG_MAGIC << 44) | ((uint64_t)((gen) & 0xfff) << 32) | (slot))
#define IS_TAG(u)    ((u) >> 44 == TAG_MAGIC)
#define TAG_SLOT(u)  ((uint32_t)(u))
#define TAG_GEN(u)   ((unsigned)((u) >> 32) & 0xfff)
#define KERNEL_EVERY 8	  /* of the waits that find a ring ready, this one asks the kernel */
#define FAST_MAX     1024 /* registrations past which waits go to the kernel (each scans all) */
#define LEVEL_ONLY   (EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE)

struct ep_ent {
	int epfd, fd; /* fd < 0: a free slot */
	unsigned gen;
	bool tagged;	  /* the kernel holds TAG(slot, gen) as its data */
	bool app;	  /* the app has it registered (else deleted, the kernel's not yet) */
	bool dirty;	  /* the kernel's differs from the app's (ep_sync) */
	uint32_t kev;	  /* the events the kernel holds */
	uint32_t events;  /* what the app asked for */
	epoll_data_t data;
	struct ffs_ring *g; /* NULL once the fd closed: translated only */
	pid_t pid;
	int fnext;	    /* the next slot of the same fd (by_fd), or of the free list */
	int enext, eprev;   /* the ring of slots of the same set (by_ep) */
	bool queued;	    /* on the dirty list */
};

static pthread_mutex_t ep_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ep_ent *ents;
static unsigned nents, live;
static bool ever;    /* a tag was ever given: answers need translating */
static bool collide; /* the app's own data looked like a tag: pass unknown ones */
static bool any_dirty;
/* Indexes, so that no call walks every registration of the process (a
 * server may hold thousands): by_fd[fd] the first slot of fd, by_ep[epfd]
 * one slot of the set's ring of them (-1: none), for fds below nidx; the
 * free slots; the slots an emulated epoll_ctl left dirty. */
static int *by_fd, *by_ep, nidx, free_head = -1;
static int *dirty_q;
static unsigned ndirty, dirty_cap;
static int sleepers; /* this process's threads waiting in the kernel */

void ffs_ep_sleeping(int d)
{
	__atomic_add_fetch(&sleepers, d, __ATOMIC_SEQ_CST);
}
static __thread unsigned waits;

static int find(int epfd, int fd)
{
	if (fd < 0 || fd >= nidx)
		return -1;
	for (int i = by_fd[fd]; i >= 0; i = ents[i].fnext)
		if (ents[i].epfd == epfd)
			return i;
	return -1;
}

/* The indexes cover fd (false: no memory). */
static bool idx_room(int fd)
{
	int n = nidx, *a, *b;

	if (fd < nidx)
		return true;
	while (n <= fd)
		n = n ? 2 * n : 256;
	a = realloc(by_fd, sizeof(*a) * (size_t)n);
	if (a)
		by_fd = a;
	b = a ? realloc(by_ep, sizeof(*b) * (size_t)n) : NULL;
	if (!b)
		return false;
	by_ep = b;
	for (int k = nidx; k < n; k++)
		by_fd[k] = by_ep[k] = -1;
	nidx = n;
	return true;
}

/* Slot i takes epfd and fd (both within the indexes). */
static void slot_link(int i, int epfd, int fd)
{
	struct ep_ent *e = &ents[i];
	int h = by_ep[epfd];

	e->epfd = epfd;
	e->fd = fd;
	e->fnext = by_fd[fd];
	by_fd[fd] = i;
	if (h < 0) {
		e->enext = e->eprev = i;
		by_ep[epfd] = i;
	} else {
		e->enext = h;
		e->eprev = ents[h].eprev;
		ents[e->eprev].enext = i;
		ents[h].eprev = i;
	}
}

static int slot_new(void)
{
	struct ep_ent *n;
	int i = free_head;

	if (i < 0) {
		n = realloc(ents, sizeof(*n) * (nents + 16));
		if (!n)
			return -1;
		ents = n;
		for (unsigned k = nents; k < nents + 16; k++) {
			ents[k] = (struct ep_ent){.fd = -1, .epfd = -1, .fnext = free_head};
			free_head = (int)k;
		}
		nents += 16;
		i = free_head;
	}
	free_head = ents[i].fnext;
	ents[i].gen++;
	return i;
}

/* A slot slot_new gave that was never linked goes back. */
static void slot_unused(int i)
{
	ents[i].fnext = free_head;
	free_head = i;
}

static void slot_free(int i)
{
	struct ep_ent *e;

	if (i < 0 || ents[i].fd < 0)
		return;
	e = &ents[i];
	for (int *p = &by_fd[e->fd]; *p >= 0; p = &ents[*p].fnext)
		if (*p == i) {
			*p = e->fnext;
			break;
		}
	if (e->enext == i) {
		by_ep[e->epfd] = -1;
	} else {
		ents[e->eprev].enext = e->enext;
		ents[e->enext].eprev = e->eprev;
		if (by_ep[e->epfd] == i)
			by_ep[e->epfd] = e->enext;
	}
	e->fd = e->epfd = -1;
	e->g = NULL;
	e->tagged = e->app = e->dirty = false;
	slot_unused(i);
	__atomic_store_n(&live, live - 1, __ATOMIC_RELEASE);
}

/* ep_mu held. The kernel gets the app's registration i (0, or -errno). */
static int sync_one(int i)
{
	struct ep_ent *e = &ents[i];
	struct epoll_event k = {.events = e->events, .data.u64 = TAG((uint64_t)i, e->gen)};
	int r;

	if (!e->dirty)
		return 0;
	e->dirty = false;
	if (!e->app) {
		r = REAL(epoll_ctl)(e->epfd, EPOLL_CTL_DEL, e->fd, NULL);
		slot_free(i);
	} else {
		r = REAL(epoll_ctl)(e->epfd, EPOLL_CTL_MOD, e->fd, &k);
		e->kev = e->events;
	}
	return r < 0 ? -errno : 0;
}

void ffs_ep_sync(void)
{
	pid_t me;

	if (!__atomic_load_n(&any_dirty, __ATOMIC_ACQUIRE))
		return;
	me = ffs_pid();
	pthread_mutex_lock(&ep_mu);
	for (unsigned k = 0; k < ndirty; k++) {
		int i = dirty_q[k];

		ents[i].queued = false;
		if (ents[i].fd >= 0 && ents[i].dirty && ents[i].pid == me)
			sync_one(i);
	}
	ndirty = 0;
	__atomic_store_n(&any_dirty, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ep_mu);
}

/* ep_mu held. Slot i is dirty: on the list for ep_sync (false: no memory,
 * and nothing changed). */
static bool dirty_push(int i)
{
	if (ents[i].queued)
		return true;
	if (ndirty == dirty_cap) {
		unsigned n = dirty_cap ? 2 * dirty_cap : 64;
		int *q = realloc(dirty_q, sizeof(*q) * n);

		if (!q)
			return false;
		dirty_q = q;
		dirty_cap = n;
	}
	dirty_q[ndirty++] = i;
	ents[i].queued = true;
	return true;
}

/* ep_mu held. The app's op on registration e, which the kernel holds
 * with its tag: in memory only (-1 with errno as the kernel's, or 0). */
static int emulate(struct ep_ent *e, int op, const struct epoll_event *ev)
{
	if ((op == EPOLL_CTL_ADD) == e->app) {
		errno = e->app ? EEXIST : ENOENT;
		return -1;
	}
	if (op == EPOLL_CTL_DEL) {
		e->app = false;
	} else {
		e->app = true;
		e->events = ev->events;
		e->data = ev->data;
	}
	e->dirty = !e->app || e->kev != e->events;
	if (e->dirty)
		__atomic_store_n(&any_dirty, true, __ATOMIC_RELEASE);
	return 0;
}

/* The app's epoll_ctl. Under ep_mu throughout, so that no answer carries
 * a tag this file has not written down yet. */
int ffs_ep_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct ffs_sock *s = NULL;
	struct epoll_event k;
	int r, i, n = -1, saved;

	if (ev && op != EPOLL_CTL_DEL && !(ev->events & LEVEL_ONLY))
		s = ffs_ring_conn(fd); /* (may ask the router: before the lock) */
	if (!s && !__atomic_load_n(&live, __ATOMIC_ACQUIRE)) {
		if (ev && op != EPOLL_CTL_DEL && IS_TAG(ev->data.u64))
			collide = true;
		return REAL(epoll_ctl)(epfd, op, fd, ev);
	}
	pthread_mutex_lock(&ep_mu);
	i = find(epfd, fd);
	/* still this fd's (a close meanwhile frees the ring under ep_mu) */
	if (s && (ffs_fd_get(fd) != s || !s->ring))
		s = NULL;
	if (i >= 0 && ents[i].pid == ffs_pid() && ents[i].tagged && ents[i].g &&
	    (s || op == EPOLL_CTL_DEL) && !__atomic_load_n(&sleepers, __ATOMIC_SEQ_CST) &&
	    dirty_push(i)) {
		/* an event loop that adds and deletes a ring's registration
		 * as it goes costs no system call: the kernel keeps the one it
		 * has, whose events are filtered by what the app asked last,
		 * and learns the app's before anything waits (ep_sync). Not
		 * while another thread waits in the kernel: the change must
		 * reach that wait now. (A thread that begins to wait counts
		 * itself first, then syncs under ep_mu: either we see it
		 * here, or its sync sees what we do.) */
		r = emulate(&ents[i], op, ev);
		saved = errno;
		pthread_mutex_unlock(&ep_mu);
		errno = saved;
		return r;
	}
	if (i >= 0 && ents[i].pid == ffs_pid() && sync_one(i) == 0 && ents[i].fd < 0)
		i = -1; /* deleted for real: the kernel answers as it would */
	if (s && (op == EPOLL_CTL_ADD || i < 0)) {
		n = idx_room(fd > epfd ? fd : epfd) ? slot_new() : -1;
		if (n < 0)
			s = NULL;
	}
	if (s) {
		int t = n >= 0 ? n : i;

		k = *ev;
		k.data.u64 = TAG((uint64_t)t, ents[t].gen);
		r = REAL(epoll_ctl)(epfd, op, fd, &k);
	} else {
		if (ev && op != EPOLL_CTL_DEL && IS_TAG(ev->data.u64))
			collide = true;
		r = REAL(epoll_ctl)(epfd, op, fd, ev);
	}
	saved = errno;
	if (r < 0) {
		if (n >= 0)
			slot_unused(n);
	} else if (s) {
		int t = n >= 0 ? n : i;

		if (n >= 0) {
			slot_free(i); /* a stale one of a closed fd of that number */
			slot_link(n, epfd, fd);
			__atomic_store_n(&live, live + 1, __ATOMIC_RELEASE);
		}
		ents[t].tagged = ents[t].app = true;
		ents[t].dirty = false;
		ents[t].kev = ev->events;
		ents[t].events = ev->events;
		ents[t].data = ev->data;
		ents[t].g = s->ring;
		ents[t].pid = ffs_pid();
		ever = true;
	} else {
		slot_free(i); /* deleted, or now a kind the kernel answers for */
	}
	pthread_mutex_unlock(&ep_mu);
	errno = saved;
	return r;
}

/* ep_mu held. The ready registrations of epfd, from the rings. */
static int scan(int epfd, struct epoll_event *ev, int max)
{
	pid_t me = ffs_pid();
	int n = 0, h, i;

	if (epfd < 0 || epfd >= nidx || (h = by_ep[epfd]) < 0)
		return 0;
	i = h;
	do {
		struct ep_ent *e = &ents[i];
		uint32_t bits;

		i = e->enext;
		if (!e->app || !e->tagged || !e->g || e->pid != me)
			continue;
		bits = ffs_ring_ready(e->g, e->events);
		if (!bits)
			continue;
		ev[n].events = bits;
		ev[n].data = e->data;
		if (++n == max) {
			by_ep[epfd] = i; /* the next scan starts after: each gets its turn */
			break;
		}
	} while (i != h);
	return n;
}

/* ep_mu held. */
static int translate(struct epoll_event *ev, int n)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		uint64_t u = ev[i].data.u64;
		uint32_t bits = ev[i].events;

		if (IS_TAG(u)) {
			struct ep_ent *e = TAG_SLOT(u) < nents ? &ents[TAG_SLOT(u)] : NULL;

			if (!e || e->fd < 0 || (e->gen & 0xfff) != TAG_GEN(u)) {
				if (!collide)
					continue; /* a registration gone since */
			} else if (!e->app) {
				continue; /* deleted; the kernel's goes before it waits */
			} else {
				bits &= e->events | EPOLLHUP | EPOLLERR;
				/* readable with nothing to read: a deferred disarm */
				if (e->g && (bits & EPOLLIN) &&
				    !(bits & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)) &&
				    !(ffs_ring_ready(e->g, EPOLLIN) & EPOLLIN))
					bits &= ~(uint32_t)EPOLLIN;
				if (ffs_hup_hidden(e->fd, bits))
					bits &= ~(uint32_t)EPOLLHUP; /* the peer's close: a FIN */
				if (!bits)
					continue;
				ev[i].data = e->data;
			}
		}
		ev[i].events = bits;
		ev[k++] = ev[i];
	}
	return k;
}

int ffs_ep_answer(struct epoll_event *ev, int n)
{
	if (n <= 0 || !__atomic_load_n(&ever, __ATOMIC_ACQUIRE))
		return n;
	pthread_mutex_lock(&ep_mu);
	n = translate(ev, n);
	pthread_mutex_unlock(&ep_mu);
	return n;
}

int ffs_ep_fast(int epfd, struct epoll_event *ev, int max, ffs_ep_kwait kw, const sigset_t *mask)
{
	unsigned l = __atomic_load_n(&live, __ATOMIC_ACQUIRE);
	int n;

	if (!l || l > FAST_MAX || max <= 0)
		return 0;
	pthread_mutex_lock(&ep_mu);
	n = scan(epfd, ev, max);
	pthread_mutex_unlock(&ep_mu);
	if (n > 0 && ++waits % KERNEL_EVERY == 0) {
		int k = ffs_ep_answer(ev, kw(epfd, ev, max, 0, mask));

		if (k != 0)
			return k;
		pthread_mutex_lock(&ep_mu);
		n = scan(epfd, ev, max);
		pthread_mutex_unlock(&ep_mu);
	}
	return n;
}

bool ffs_ep_any(void)
{
	return __atomic_load_n(&live, __ATOMIC_ACQUIRE) != 0;
}

void ffs_ep_closing(int fd)
{
	/* (a vfork child's fds are not the ones of the memory it shares) */
	if (!__atomic_load_n(&live, __ATOMIC_ACQUIRE) || ffs_vfork_child())
		return;
	/* the set goes with its registrations; an fd's registration goes with
	 * its last copy (the shim deletes it at once, ffs_epoll_forget), and
	 * events of one a copy keeps elsewhere are dropped as gone */
	pthread_mutex_lock(&ep_mu);
	if (fd >= 0 && fd < nidx) {
		int i;

		while ((i = by_ep[fd]) >= 0)
			slot_free(i);
		while ((i = by_fd[fd]) >= 0) {
			/* one the app deleted, still the kernel's: gone for real
			 * now, or a copy of the file elsewhere (a fork) would
			 * keep it */
			if (!ents[i].app && ents[i].pid == ffs_pid())
				sync_one(i);
			slot_free(i);
		}
	}
	pthread_mutex_unlock(&ep_mu);
}

void ffs_ep_ring_gone(const struct ffs_ring *g)
{
	if (!__atomic_load_n(&live, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&ep_mu);
	for (unsigned i = 0; i < nents; i++)
		if (ents[i].g == g)
			ents[i].g = NULL;
	pthread_mutex_unlock(&ep_mu);
}

void ffs_ep_exec(void)
{
	if (!__atomic_load_n(&live, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&ep_mu);
	for (unsigned i = 0; i < nents; i++) {
		struct ep_ent *e = &ents[i];
		struct epoll_event k = {.events = e->events, .data = e->data};
		int fl;

		if (e->fd < 0 || !e->tagged || e->pid != ffs_pid())
			continue;
		fl = REAL(fcntl)(e->epfd, F_GETFD);
		if (fl < 0 || (fl & FD_CLOEXEC))
			continue;
		if (!e->app) {
			e->dirty = true;
			sync_one((int)i);
		} else if (REAL(epoll_ctl)(e->epfd, EPOLL_CTL_MOD, e->fd, &k) == 0) {
			e->tagged = false; /* (if the exec fails: the kernel answers) */
		}
	}
	pthread_mutex_unlock(&ep_mu);
}

void ffs_ep_fork(int phase)
{
	if (phase == 0)
		ffs_ep_sync(); /* the child shares the sets: the kernel's are the app's */
	if (phase == 0)
		pthread_mutex_lock(&ep_mu);
	else
		pthread_mutex_unlock(&ep_mu);
}
