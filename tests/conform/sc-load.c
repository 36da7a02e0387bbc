/* sc-load.c - many connections at once (--conns) and a full-duplex bulk
 * transfer (--big-mib each way), both verified end to end.
 *
 * conns: the client opens all connections (non-blocking connects) before it
 * sends a single request, and closes none before every reply is verified; the
 * server closes each only after the client's EOF, so all are open at once.
 * bulk: each side sends a deterministic stream followed by an 8-byte trailer
 * holding the stream's hash, from a sender thread, while the main thread
 * receives; counts and hashes are printed, timings go to stderr.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <endian.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ffconform.h"

enum { C_CONNECTING, C_OPEN, C_REPLIED, C_DONE, C_FAILED };

struct conn {
	int fd;
	int state;
	int got;
	char buf[12];
};

#define REQ_LEN 9 /* "q%07ld\n" and "a%07ld\n" */

static long answer(long i)
{
	return (i * 7919 + 13) % 10000000;
}

/* Polls the conns in state `state` for `events` until none is left in that
 * state or nothing happens for FFC_IO_MS; calls ready() for each event. */
static void poll_state(struct conn *c, long n, int state, short events,
		       void (*ready)(struct conn *c, long i, short rev), struct pollfd *pfd,
		       long *idx)
{
	for (;;) {
		long m = 0;

		for (long i = 0; i < n; i++) {
			if (c[i].state != state)
				continue;
			pfd[m] = (struct pollfd){.fd = c[i].fd, .events = events};
			idx[m++] = i;
		}
		if (m == 0)
			return;
		int r = poll(pfd, (nfds_t)m, FFC_IO_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		for (long k = 0; k < m; k++)
			if (pfd[k].revents)
				ready(c, idx[k], pfd[k].revents);
	}
}

static void cl_connected(struct conn *c, long i, short rev FFC_UNUSED)
{
	int err = -1;
	socklen_t len = sizeof(err);

	getsockopt(c[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
	c[i].state = err == 0 ? C_OPEN : C_FAILED;
}

static void cl_reply(struct conn *c, long i, short rev FFC_UNUSED)
{
	char want[24];
	ssize_t r = recv(c[i].fd, c[i].buf + c[i].got, (size_t)(REQ_LEN - c[i].got), MSG_DONTWAIT);

	if (r < 0 && errno == EAGAIN)
		return;
	if (r <= 0) {
		c[i].state = C_FAILED;
		return;
	}
	c[i].got += (int)r;
	if (c[i].got < REQ_LEN)
		return;
	snprintf(want, sizeof(want), "a%07ld\n", answer(i));
	c[i].state = memcmp(c[i].buf, want, REQ_LEN) == 0 ? C_DONE : C_FAILED;
}

static long count_state(const struct conn *c, long n, int state)
{
	long k = 0;

	for (long i = 0; i < n; i++)
		k += c[i].state == state;
	return k;
}

void cl_conns(void)
{
	long n = ffc_opt.conns, opened = 0;
	struct sockaddr_in sa;
	struct conn *c = calloc((size_t)n, sizeof(*c));
	struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
	long *idx = calloc((size_t)n, sizeof(*idx));
	char arg[24], req[24];
	int s = -1;

	ck_yes("conns.nofile-raised", raise_nofile(4 * n + 64) == 0);
	snprintf(arg, sizeof(arg), "%ld", n);
	if (!c || !pfd || !idx || (s = cl_open("conns", arg, false)) < 0 || cl_ready(s) < 0)
		goto out_free;
	addr_make(&sa, ffc_opt.ip, ffc_opt.port + FFC_PORT_AUX);
	for (long i = 0; i < n; i++) {
		c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		c[i].state = C_FAILED;
		if (c[i].fd < 0)
			continue;
		opened++;
		if (connect(c[i].fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
		    errno == EINPROGRESS)
			c[i].state = C_CONNECTING;
	}
	ck_eq("conns.sockets", n, opened);
	poll_state(c, n, C_CONNECTING, POLLOUT, cl_connected, pfd, idx);
	ck_eq("conns.connected", n, count_state(c, n, C_OPEN));
	for (long i = 0; i < n; i++) {
		if (c[i].state != C_OPEN)
			continue;
		snprintf(req, sizeof(req), "q%07ld\n", i);
		c[i].state = io_write_all(c[i].fd, req, REQ_LEN) == 0 ? C_REPLIED : C_FAILED;
	}
	poll_state(c, n, C_REPLIED, POLLIN, cl_reply, pfd, idx);
	ck_eq("conns.replies-verified", n, count_state(c, n, C_DONE));
	for (long i = 0; i < n; i++)
		if (c[i].fd >= 0)
			close(c[i].fd);
	step("done", io_expect_line(s, "done"));
out_free:
	if (s >= 0)
		close(s);
	free(c);
	free(pfd);
	free(idx);
}

struct sv_conns {
	struct conn *c;
	long n, accepted, open, max_open, served, eofs;
	bool peers_ok;
	uint32_t peer_ip;
	uint8_t *ports; /* bitmap of peer ports seen */
};

static void sv_accept_all(struct sv_conns *st, int l)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int a;

	while (st->accepted < st->n &&
	       (a = accept4(l, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		unsigned port = ntohs(sa.sin_port);

		if (st->accepted == 0)
			st->peer_ip = sa.sin_addr.s_addr;
		if (sa.sin_addr.s_addr != st->peer_ip || (st->ports[port / 8] & (1u << port % 8)))
			st->peers_ok = false;
		st->ports[port / 8] |= (uint8_t)(1u << port % 8);
		st->c[st->accepted++] = (struct conn){.fd = a, .state = C_OPEN};
		if (++st->open > st->max_open)
			st->max_open = st->open;
		len = sizeof(sa);
	}
}

/* One readable accepted connection: gather its request and answer it, or
 * take its EOF once answered. */
static void sv_conn_ready(struct sv_conns *st, struct conn *c)
{
	char reply[24];
	long i;
	ssize_t r = recv(c->fd, c->buf + c->got,
			 c->state == C_OPEN ? (size_t)(REQ_LEN - c->got) : 1, MSG_DONTWAIT);

	if (r < 0 && errno == EAGAIN)
		return;
	if (r == 0 && c->state == C_REPLIED) {
		st->eofs++;
		c->state = C_DONE;
	} else if (r <= 0 || c->state != C_OPEN) {
		c->state = C_FAILED;
	} else if ((c->got += (int)r) == REQ_LEN) {
		c->buf[REQ_LEN] = '\0';
		if (sscanf(c->buf, "q%7ld", &i) == 1) {
			snprintf(reply, sizeof(reply), "a%07ld\n", answer(i));
			c->state = io_write_all(c->fd, reply, REQ_LEN) == 0 ? C_REPLIED : C_FAILED;
			st->served += c->state == C_REPLIED;
		} else {
			c->state = C_FAILED;
		}
	}
	if (c->state == C_DONE || c->state == C_FAILED) {
		close(c->fd);
		c->fd = -1;
		st->open--;
	}
}

static void sv_conns_loop(struct sv_conns *st, int l, struct pollfd *pfd, struct conn **map)
{
	for (;;) {
		long m = 0;

		if (st->accepted < st->n)
			pfd[m++] = (struct pollfd){.fd = l, .events = POLLIN};
		for (long i = 0; i < st->accepted; i++) {
			if (st->c[i].fd < 0)
				continue;
			map[m] = &st->c[i];
			pfd[m++] = (struct pollfd){.fd = st->c[i].fd, .events = POLLIN};
		}
		if (m == 0)
			return;
		int r = poll(pfd, (nfds_t)m, FFC_IO_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		for (long k = 0; k < m; k++) {
			if (!pfd[k].revents)
				continue;
			if (pfd[k].fd == l)
				sv_accept_all(st, l);
			else
				sv_conn_ready(st, map[k]);
		}
	}
}

void sv_conns(int fd, const char *arg)
{
	struct sv_conns st = {.n = atol(arg), .peers_ok = true};
	struct pollfd *pfd = NULL;
	struct conn **map = NULL;
	int l = -1;

	if (st.n < 1 || st.n > 60000) {
		ck_fail("conns.count", "expected 1..60000 got %s", arg);
		goto out_finish;
	}
	ck_yes("conns.nofile-raised", raise_nofile(4 * st.n + 64) == 0);
	st.c = calloc((size_t)st.n, sizeof(*st.c));
	st.ports = calloc(65536 / 8, 1);
	pfd = calloc((size_t)st.n + 1, sizeof(*pfd));
	map = calloc((size_t)st.n + 1, sizeof(*map));
	if (!st.c || !st.ports || !pfd || !map)
		goto out_free;
	l = sv_aux(fd, SOCK_NONBLOCK, (int)st.n);
	if (l < 0)
		goto out_free;
	sv_conns_loop(&st, l, pfd, map);
	ck_eq("conns.accepted", st.n, st.accepted);
	ck_eq("conns.max-open-at-once", st.n, st.max_open);
	ck_eq("conns.served", st.n, st.served);
	ck_eq("conns.eof-after-reply", st.n, st.eofs);
	ck_yes("conns.peers-one-ip-distinct-ports", st.peers_ok && st.accepted == st.n);
	for (long i = 0; i < st.accepted; i++)
		if (st.c[i].fd >= 0)
			close(st.c[i].fd);
	close(l);
	step("done", io_send_line(fd, "done"));
out_free:
	free(st.c);
	free(st.ports);
	free(pfd);
	free(map);
out_finish:
	sv_finish(fd);
}

#define BULK_CHUNK (256 * 1024)

struct bulk_tx {
	int fd;
	uint64_t bytes, seed, hash;
	int err;
};

/* Sender thread: the stream, then its hash as an 8-byte trailer. */
static void *bulk_send(void *arg)
{
	struct bulk_tx *t = arg;
	struct ffc_hash h;
	uint8_t *buf = malloc(BULK_CHUNK);
	uint64_t left = t->bytes, state = t->seed, trailer;

	t->err = buf ? 0 : -ENOMEM;
	ffc_hash_init(&h);
	while (t->err == 0 && left > 0) {
		size_t len = left < BULK_CHUNK ? (size_t)left : BULK_CHUNK;

		ffc_rand_fill(&state, buf, len);
		ffc_hash_update(&h, buf, len);
		t->err = io_write_all(t->fd, buf, len);
		left -= len;
	}
	t->hash = ffc_hash_final(&h);
	trailer = htole64(t->hash);
	if (t->err == 0)
		t->err = io_write_all(t->fd, &trailer, sizeof(trailer));
	free(buf);
	return NULL;
}

/* Receives bytes + 8; returns 0 or a negative errno, fills hash and trailer. */
static int bulk_recv(int fd, uint64_t bytes, uint64_t *hash, uint64_t *trailer)
{
	struct ffc_hash h;
	uint8_t *buf = malloc(BULK_CHUNK), tail[8] = {0};
	uint64_t got = 0, total = bytes + 8;
	int r = buf ? 0 : -ENOMEM;

	ffc_hash_init(&h);
	while (r == 0 && got < total) {
		r = io_wait(fd, POLLIN, FFC_IO_MS);
		r = r < 0 ? r : r == 0 ? -ETIMEDOUT : 0;
		ssize_t n = r ? -1 : recv(fd, buf, BULK_CHUNK, MSG_DONTWAIT);

		if (r == 0 && n == 0)
			r = -ENODATA;
		else if (r == 0 && n < 0)
			r = errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (r || n <= 0)
			continue;
		size_t data = got < bytes
				  ? (size_t)(bytes - got < (uint64_t)n ? bytes - got : (uint64_t)n)
				  : 0;

		if ((uint64_t)n > total - got) {
			r = -EPROTO;
			break;
		}
		ffc_hash_update(&h, buf, data);
		if ((size_t)n > data)
			memcpy(tail + (got + data - bytes), buf + data, (size_t)n - data);
		got += (uint64_t)n;
	}
	*hash = ffc_hash_final(&h);
	memcpy(trailer, tail, sizeof(*trailer));
	*trailer = le64toh(*trailer);
	free(buf);
	return r;
}

static void bulk_run(int fd, uint64_t bytes, uint64_t send_seed)
{
	struct bulk_tx tx = {.fd = fd, .bytes = bytes, .seed = send_seed};
	uint64_t rhash = 0, trailer = 0, t0 = now_ms();
	pthread_t th;
	int r;

	if (!step("thread", -pthread_create(&th, NULL, bulk_send, &tx)))
		goto out_close;
	r = bulk_recv(fd, bytes, &rhash, &trailer);
	pthread_join(th, NULL);
	fprintf(stderr, "ffconform %c: bulk %llu MiB each way in %.2f s\n", ffc_role,
		(unsigned long long)(bytes >> 20), (double)(now_ms() - t0) / 1000.0);
	if (step("send", tx.err))
		ck_ok("bulk.send", "%llu bytes hash 0x%016llx", (unsigned long long)bytes,
		      (unsigned long long)tx.hash);
	if (step("recv", r))
		ck_ok("bulk.recv", "%llu bytes hash 0x%016llx", (unsigned long long)bytes,
		      (unsigned long long)rhash);
	ck_yes("bulk.recv-hash-matches-sender", r == 0 && rhash == trailer);
	shutdown(fd, SHUT_WR);
	if (io_wait(fd, POLLIN, FFC_IO_MS) > 0)
		ck_eq("bulk.eof", 0, recv(fd, &trailer, sizeof(trailer), 0));
	else
		ck_fail("bulk.eof", "expected 0 got timeout");
out_close:
	close(fd);
}

void cl_bulk(void)
{
	uint64_t bytes = (uint64_t)ffc_opt.big_mib << 20;
	char arg[32];
	int s;

	snprintf(arg, sizeof(arg), "%llu", (unsigned long long)bytes);
	s = cl_open("bulk", arg, false);
	if (s >= 0)
		bulk_run(s, bytes, 1);
}

void sv_bulk(int fd, const char *arg)
{
	char *end;
	unsigned long long bytes = strtoull(arg, &end, 10);

	if (*arg == '\0' || *end != '\0') {
		ck_fail("bulk.size", "expected a byte count got %s", arg);
		close(fd);
		return;
	}
	bulk_run(fd, bytes, 2);
}
