/* The router channel: one SOCK_SEQPACKET connection per process, opened on
 * first need, one request in flight at a time under a mutex. After a
 * failed attempt the shim waits RETRY_NS before trying again, so programs
 * run at plain-socket speed while no router is there. A broken channel is
 * reopened at once on the next call: a restarted router takes over without
 * delay. The map and stats pages of every router this process talked to
 * stay mapped (other threads may be reading them; they are small). */
#include "sock-internal.h"

#include "fdpass.h"
#include "log.h"
#include "map.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RETRY_NS	 (1000LL * 1000 * 1000)
#define REPLY_TIMEOUT_MS 5000
#define REPLY_BUF	 4096

static struct {
	pthread_mutex_t lock;
	int fd;
	uint64_t next_id;
	int64_t retry_at;
	struct ff_map_hdr *map;
	struct ff_stat_hdr *stats;
	struct ff_ip ips[8];
	int nips;
	bool policy_host;
} ch = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

int64_t ffs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *sock_path(void)
{
	const char *p = getenv(FF_ENV_SOCK);

	return p && *p ? p : FF_DEFAULT_SOCK;
}

static void chan_close(void)
{
	ffs_internal_close(&ch.fd);
}

/* Sends req and waits for the reply with its id. Lock held. */
static int xfer(Ff__Request *req, const int *fds, int nfds, Ff__Reply **rep, int *rfds, int *nrfds)
{
	uint8_t buf[REPLY_BUF];
	int err;

	req->id = ++ch.next_id;
	err = ff_msg_send(ch.fd, &req->base, fds, nfds);
	if (err)
		return err;
	for (;;) {
		struct pollfd p = {.fd = ch.fd, .events = POLLIN};
		ProtobufCMessage *m;
		int r;

		r = REAL(poll)(&p, 1, REPLY_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ETIMEDOUT;
		r = ff_msg_recv(ch.fd, &ff__reply__descriptor, buf, sizeof(buf), &m, rfds,
				FF_MAX_FDS, nrfds, 0);
		if (r <= 0)
			return r ? r : -ECONNRESET;
		if (((Ff__Reply *)m)->id == req->id) {
			*rep = (Ff__Reply *)m;
			return 0;
		}
		ff_close_fds(rfds, *nrfds);
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

static void *map_fd(int fd, size_t size, int prot)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) < 0 || (size_t)st.st_size < size)
		return NULL;
	p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

static int take_hello(const Ff__Reply *rep, int *fds, int nfds)
{
	const Ff__HelloReply *h = rep->hello;
	struct ff_map_hdr *map;
	struct ff_stat_hdr *st;

	if (rep->status || rep->body_case != FF__REPLY__BODY_HELLO || nfds != 2)
		return -EPROTO;
	map = map_fd(fds[0], FF_MAP_SIZE, PROT_READ);
	st = map_fd(fds[1], FF_STAT_SIZE, PROT_READ | PROT_WRITE);
	if (!map || !st || map->magic != FF_MAP_MAGIC || st->magic != FF_STAT_MAGIC) {
		if (map)
			munmap(map, FF_MAP_SIZE);
		if (st)
			munmap(st, FF_STAT_SIZE);
		return -EPROTO;
	}
	ch.policy_host = h->policy && !strcmp(h->policy, "host");
	ch.nips = 0;
	for (size_t i = 0; i < h->n_ips && ch.nips < 8; i++) {
		struct ff_sa sa;

		if (ff_sa_from_proto(&sa, h->ips[i]) == 0)
			ch.ips[ch.nips++] = sa.ip;
	}
	__atomic_store_n(&ch.map, map, __ATOMIC_RELEASE);
	__atomic_store_n(&ch.stats, st, __ATOMIC_RELEASE);
	return 0;
}

static int hello(void)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	Ff__Reply *rep = NULL;
	int fds[FF_MAX_FDS], nfds = 0, err;

	h.version = FF_PROTO_VERSION;
	h.role = (char *)"shim";
	h.caps = FF_CAP_RINGS;
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	err = xfer(&req, NULL, 0, &rep, fds, &nfds);
	if (!err) {
		err = take_hello(rep, fds, nfds);
		if (err)
			ff_err("ffnet: router refused Hello: %s", rep->error);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	ff_close_fds(fds, nfds);
	return err;
}

/* Opens the channel if it is closed and the retry delay has passed. */
static int chan_open(bool force)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	const char *path = sock_path();
	int fd, err;

	if (ch.fd >= 0)
		return 0;
	if (!force && ffs_now_ns() < ch.retry_at)
		return -ECONNREFUSED;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = REAL(socket)(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (REAL(connect)(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = -errno;
		REAL(close)(fd);
		ch.retry_at = ffs_now_ns() + RETRY_NS;
		return err;
	}
	ch.fd = ffs_hide_fd(fd);
	ffs_fd_internal(ch.fd, &ch.fd);
	err = hello();
	if (err) {
		chan_close();
		ch.retry_at = ffs_now_ns() + RETRY_NS;
	}
	return err;
}

int ffs_call(Ff__Request *req, const int *fds, int nfds, Ff__Reply **rep, int *rfds, int *nrfds)
{
	int err;

	*nrfds = 0;
	pthread_mutex_lock(&ch.lock);
	err = chan_open(false);
	if (!err) {
		err = xfer(req, fds, nfds, rep, rfds, nrfds);
		if (err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN) {
			/* the router restarted: one fresh attempt */
			chan_close();
			err = chan_open(true);
			if (!err)
				err = xfer(req, fds, nfds, rep, rfds, nrfds);
		}
		if (err)
			chan_close();
	}
	pthread_mutex_unlock(&ch.lock);
	return err;
}

int ffs_chan_up(void)
{
	int up;

	pthread_mutex_lock(&ch.lock);
	up = chan_open(false) == 0;
	pthread_mutex_unlock(&ch.lock);
	return up;
}

int ffs_is_overlay(const struct ff_ip *ip)
{
	struct ff_map_hdr *map;
	uint8_t flags;

	if (!ffs_chan_up())
		return 0;
	map = __atomic_load_n(&ch.map, __ATOMIC_ACQUIRE);
	return map && ff_map_find(map, ip, &flags) == 1;
}

int ffs_policy_host(void)
{
	return ffs_chan_up() && ch.policy_host;
}

int ffs_is_own(const struct ff_ip *ip)
{
	int own = 0;

	if (!ffs_chan_up())
		return 0;
	if (ff_ip_is_any(ip))
		return 1;
	pthread_mutex_lock(&ch.lock);
	for (int i = 0; i < ch.nips && !own; i++)
		own = ff_ip_equal(&ch.ips[i], ip);
	pthread_mutex_unlock(&ch.lock);
	return own;
}

struct ff_stat_slot *ffs_stat_slot(uint32_t slot)
{
	struct ff_stat_hdr *st = __atomic_load_n(&ch.stats, __ATOMIC_ACQUIRE);

	if (!st && ffs_chan_up())
		st = __atomic_load_n(&ch.stats, __ATOMIC_ACQUIRE);
	return st && slot < FF_STAT_SLOTS ? &st->slot[slot] : NULL;
}

void ffs_chan_fork_prepare(void)
{
	pthread_mutex_lock(&ch.lock);
}

void ffs_chan_fork_parent(void)
{
	pthread_mutex_unlock(&ch.lock);
}

/* The child must not share the parent's request stream: it gets its own
 * channel on first need. The pages stay mapped and valid. */
void ffs_chan_fork_child(void)
{
	chan_close();
	ch.retry_at = 0;
	pthread_mutex_unlock(&ch.lock);
}
