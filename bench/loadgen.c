/* loadgen: many TCP connections whose every byte is checked, for the load
 * and fault benchmarks (bench/load.sh, bench/faults.sh, tests/integ/t-load.sh).
 *
 *   loadgen server PORT
 *       echoes every byte back on every connection (epoll, non-blocking);
 *       on SIGTERM or SIGINT prints its counts and exits 0.
 *   loadgen client IP PORT [-n N] [-r RATE] [-t SECS] [-b BYTES] [-B BPS]
 *                          [-f] [-k] [-p]
 *       concurrent (default): N connections (default 1000) open at once;
 *           each sends BYTES (default 4096) and reads them back, and none
 *           is closed before every one is established and verified; then
 *           all are held SECS (default 0) and closed.
 *       churn (-r RATE): RATE new connections per second for SECS, each
 *           sends BYTES, reads them back and closes; at most N in flight.
 *       flow (-f): N connections that keep moving data for SECS at BPS
 *           bytes/s each (default 1 MiB/s), then drain and close.
 *       -k: failed connections are expected (a fault run): only a
 *           mismatch makes the exit status nonzero. -p: a progress line a
 *           second. SIGTERM or SIGINT ends the run early, as if SECS were up.
 *
 * Every byte a client sends is a function of (connection id, offset) and is
 * checked when the server echoes it, so a byte lost, changed, duplicated,
 * reordered or delivered to another connection is a mismatch. The result is
 * one line on stdout:
 *   loadgen mode=M conns_ok=N conns_failed=N bytes_verified=N mismatches=N
 *           open_max=N started=N secs=S rate=R
 * (conns_ok: connections that moved all their bytes, verified, and closed
 * cleanly; open_max: most connections established at one time; started:
 * connects attempted; rate: started per second). With -p the same line,
 * prefixed "loadgen-progress t=S open=N", every second. Failures and mismatches are described on stderr
 * (the first few of each). Exit: 0 good, 1 a mismatch, 3 a failed
 * connection (not with -k), 2 usage or set-up error.
 * RLIMIT_NOFILE is raised to its hard limit, and must exceed N. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	       16384
#define MAX_EVENTS     256
#define FLOW_WINDOW    (256 * 1024) /* bytes a flow may have unechoed */
#define CONN_TIMEOUT_S 30.0	    /* churn/concurrent: a connection's time to finish */
#define REPORTS	       5	    /* failures and mismatches described on stderr */

enum mode { CONCURRENT, CHURN, FLOW };
enum cstate { C_CONNECTING, C_OPEN, C_DONE };

struct conn {
	int fd;
	enum cstate state;
	uint64_t id;
	uint64_t sent, rcvd, want; /* want: bytes to send, UINT64_MAX in a flow */
	double t0;
	bool bad; /* a mismatch was seen */
	bool wr;  /* EPOLLOUT is armed */
};

struct opts {
	enum mode mode;
	struct sockaddr_in addr;
	long n, rate;
	double secs;
	uint64_t bytes, bps;
	bool keep_going, progress;
};

struct counts {
	uint64_t ok, failed, verified, mismatches, open, open_max, started;
	unsigned reported_fail, reported_bad;
};

static volatile sig_atomic_t stop;
static int ep;
static struct counts cnt;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Byte OFF of connection ID's stream: splitmix64 of (ID, OFF / 8). */
static uint8_t pattern(uint64_t id, uint64_t off)
{
	uint64_t x = id * 0x9E3779B97F4A7C15ull + (off >> 3) * 0xBF58476D1CE4E5B9ull + 1;

	x ^= x >> 31;
	x *= 0x94D049BB133111EBull;
	x ^= x >> 29;
	return (uint8_t)(x >> ((off & 7) * 8));
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int ep_set(int op, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = {.events = events, .data.ptr = ptr};

	return epoll_ctl(ep, op, fd, &ev);
}

/* ---------------------------------------------------------------- server */

struct echo {
	int fd;
	char buf[CHUNK];
	size_t off, len; /* bytes buf[off..len) still to write back */
	bool eof;
};

static uint64_t echoed, srv_conns, srv_open, srv_open_max;

static void echo_close(struct echo *e)
{
	close(e->fd); /* also leaves the epoll set */
	free(e);
	srv_open--;
}

/* Reads while there is room and writes back what was read; waits for
 * EPOLLOUT (reading nothing meanwhile) when the peer is slow. */
static void echo_io(struct echo *e)
{
	for (;;) {
		ssize_t n;

		if (e->off < e->len) {
			n = write(e->fd, e->buf + e->off, e->len - e->off);
			if (n < 0 && errno == EAGAIN) {
				ep_set(EPOLL_CTL_MOD, e->fd, EPOLLOUT, e);
				return;
			}
			if (n <= 0)
				goto out_close;
			e->off += (size_t)n;
			echoed += (uint64_t)n;
			continue;
		}
		if (e->eof)
			goto out_close;
		n = read(e->fd, e->buf, sizeof(e->buf));
		if (n < 0 && errno == EAGAIN) {
			ep_set(EPOLL_CTL_MOD, e->fd, EPOLLIN | EPOLLRDHUP, e);
			return;
		}
		if (n < 0)
			goto out_close;
		e->eof = n == 0;
		e->off = 0;
		e->len = (size_t)n;
	}
out_close:
	echo_close(e);
}

static void echo_accept(int l)
{
	for (;;) {
		int fd = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct echo *e;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				fprintf(stderr, "loadgen server: accept: %s\n", strerror(errno));
			return;
		}
		e = calloc(1, sizeof(*e));
		if (!e || ep_set(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP, e) < 0) {
			free(e);
			close(fd);
			continue;
		}
		e->fd = fd;
		srv_conns++;
		if (++srv_open > srv_open_max)
			srv_open_max = srv_open;
	}
}

static int server(int port)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	struct epoll_event evs[MAX_EVENTS];
	int one = 1, l = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 65535) < 0 ||
	    ep_set(EPOLL_CTL_ADD, l, EPOLLIN, NULL) < 0) {
		perror("loadgen server");
		return 2;
	}
	while (!stop) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, 200);

		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr)
				echo_io(evs[i].data.ptr);
			else
				echo_accept(l);
		}
	}
	printf("loadgen mode=server conns=%llu bytes_echoed=%llu open_max=%llu open=%llu\n",
	       (unsigned long long)srv_conns, (unsigned long long)echoed,
	       (unsigned long long)srv_open_max, (unsigned long long)srv_open);
	return 0;
}

/* ---------------------------------------------------------------- client */

static void conn_fail(struct conn *c, const char *what, int err)
{
	if (cnt.reported_fail++ < REPORTS)
		fprintf(stderr,
			"loadgen: connection %llu failed (%s%s%s) after %llu sent, %llu back\n",
			(unsigned long long)c->id, what, err ? ": " : "", err ? strerror(err) : "",
			(unsigned long long)c->sent, (unsigned long long)c->rcvd);
	cnt.failed++;
}

/* Ends a connection: counted ok or failed; its fd closed. */
static void conn_end(struct conn *c, bool ok)
{
	if (c->state == C_OPEN)
		cnt.open--;
	if (ok && !c->bad)
		cnt.ok++;
	close(c->fd);
	c->fd = -1;
	c->state = C_DONE;
}

static void conn_open(struct conn *c)
{
	c->state = C_OPEN;
	if (++cnt.open > cnt.open_max)
		cnt.open_max = cnt.open;
}

/* Starts a non-blocking connect; false (counted failed) if it cannot. */
static bool conn_start(struct conn *c, const struct opts *o, uint64_t id)
{
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->id = id;
	c->want = o->mode == FLOW ? UINT64_MAX : o->bytes;
	c->t0 = now();
	c->state = C_CONNECTING;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cnt.started++;
	if (c->fd < 0) {
		conn_fail(c, "socket", errno);
		c->state = C_DONE;
		return false;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)&o->addr, sizeof(o->addr)) < 0 &&
	    errno != EINPROGRESS) {
		conn_fail(c, "connect", errno);
		conn_end(c, false);
		return false;
	}
	c->wr = true;
	if (ep_set(EPOLL_CTL_ADD, c->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, c) < 0) {
		conn_fail(c, "epoll", errno);
		conn_end(c, false);
		return false;
	}
	return true;
}

static void check(struct conn *c, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t want = pattern(c->id, c->rcvd + i);

		if (b[i] == want && c->rcvd + i < c->sent)
			continue;
		if (!c->bad && cnt.reported_bad++ < REPORTS)
			fprintf(stderr,
				"loadgen: connection %llu: byte %llu is 0x%02x, wanted 0x%02x%s\n",
				(unsigned long long)c->id, (unsigned long long)(c->rcvd + i), b[i],
				want, c->rcvd + i < c->sent ? "" : " (never sent)");
		if (!c->bad)
			cnt.mismatches++;
		c->bad = true;
		return;
	}
	cnt.verified += n;
}

/* How much a connection may send now: what is left, a flow's pace and window. */
static uint64_t send_budget(const struct conn *c, const struct opts *o, double t, bool ending)
{
	uint64_t left = c->want - c->sent, pace;

	if (o->mode != FLOW)
		return left;
	if (ending)
		return 0;
	pace = (uint64_t)((t - c->t0) * (double)o->bps);
	pace = pace > c->sent ? pace - c->sent : 0;
	if (c->sent - c->rcvd >= FLOW_WINDOW)
		return 0;
	left = FLOW_WINDOW - (c->sent - c->rcvd);
	return pace < left ? pace : left;
}

static void conn_write(struct conn *c, const struct opts *o, double t, bool ending)
{
	uint8_t b[CHUNK];
	uint64_t budget = send_budget(c, o, t, ending);
	bool want_wr = false;

	while (budget) {
		size_t n = budget < sizeof(b) ? (size_t)budget : sizeof(b);
		ssize_t w;

		for (size_t i = 0; i < n; i++)
			b[i] = pattern(c->id, c->sent + i);
		w = write(c->fd, b, n);
		if (w < 0 && errno == EAGAIN) {
			want_wr = true;
			break;
		}
		if (w < 0) {
			conn_fail(c, "write", errno);
			conn_end(c, false);
			return;
		}
		c->sent += (uint64_t)w;
		budget -= (uint64_t)w;
	}
	if (want_wr != c->wr) {
		c->wr = want_wr;
		ep_set(EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP | (want_wr ? EPOLLOUT : 0), c);
	}
}

/* Reads and checks what came back; a connection that got all it sent back
 * is finished (closed at once, or left open until every connection of a
 * concurrent run is: *done set). */
static void conn_read(struct conn *c, bool ending, bool *done)
{
	uint8_t b[CHUNK];

	for (;;) {
		ssize_t n = read(c->fd, b, sizeof(b));

		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_fail(c, n ? "read" : "early EOF", n ? errno : 0);
			conn_end(c, false);
			return;
		}
		check(c, b, (size_t)n);
		c->rcvd += (uint64_t)n;
	}
	*done = c->rcvd == c->want || (ending && c->rcvd == c->sent);
}

static void conn_event(struct conn *c, uint32_t ev, const struct opts *o, double t, bool ending,
		       bool *done)
{
	*done = false;
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (ev & EPOLLERR)) {
			conn_fail(c, "connect", err ? err : ECONNRESET);
			conn_end(c, false);
			return;
		}
		conn_open(c);
	}
	if (ev & EPOLLIN || ev & EPOLLRDHUP || ev & EPOLLHUP || ev & EPOLLERR)
		conn_read(c, ending, done);
	if (c->state == C_OPEN && !*done)
		conn_write(c, o, t, ending);
}

static void result(const char *mode, double secs)
{
	printf("loadgen mode=%s conns_ok=%llu conns_failed=%llu bytes_verified=%llu "
	       "mismatches=%llu open_max=%llu started=%llu secs=%.1f rate=%.0f\n",
	       mode, (unsigned long long)cnt.ok, (unsigned long long)cnt.failed,
	       (unsigned long long)cnt.verified, (unsigned long long)cnt.mismatches,
	       (unsigned long long)cnt.open_max, (unsigned long long)cnt.started, secs,
	       secs > 0 ? (double)cnt.started / secs : 0);
	fflush(stdout);
}

/* The event loop of every client mode over the connection slots cs[0..n). */
static int client(const struct opts *o)
{
	static const char *const names[] = {"concurrent", "churn", "flow"};
	struct epoll_event evs[MAX_EVENTS];
	long n = o->n, live = 0, finished = 0, next_free = 0;
	struct conn *cs = calloc((size_t)n, sizeof(*cs));
	long *free_slots = calloc((size_t)n, sizeof(long));
	uint64_t id0 = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
	double t0 = now(), t = t0, last_progress = t0, held = 0, t_end = 0;
	bool ending = false;

	if (!cs || !free_slots) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 2;
	}
	for (long i = 0; i < n; i++) {
		cs[i].state = C_DONE; /* a free slot */
		cs[i].fd = -1;
		free_slots[i] = n - 1 - i; /* a stack of free slots */
	}
	next_free = n;
	if (o->mode != CHURN) {
		for (long i = 0; i < n; i++)
			live += conn_start(&cs[i], o, id0 + (uint64_t)i);
		next_free = 0;
	}
	for (;;) {
		int k;

		t = now();
		ending = stop || (o->mode != CONCURRENT && t - t0 >= o->secs);
		if (o->mode == CHURN && !ending) {
			uint64_t due = (uint64_t)((t - t0) * (double)o->rate);

			while (cnt.started < due && next_free > 0) {
				long s = free_slots[--next_free];

				if (conn_start(&cs[s], o, id0 + cnt.started))
					live++;
				else
					free_slots[next_free++] = s;
			}
		}
		if (o->mode == CONCURRENT && finished + (long)cnt.failed >= n && !held)
			held = t; /* every connection verified (or failed): hold, then close */
		if (held && (t - held >= o->secs || stop))
			break;
		if ((o->mode == CONCURRENT && stop) || (o->mode == FLOW && live == 0))
			break;
		/* a run ends when its connections have, or CONN_TIMEOUT_S after
		 * its end (a flow whose peer stopped answering) */
		if (ending && o->mode != CONCURRENT &&
		    (live == 0 || (t_end && t - t_end > CONN_TIMEOUT_S)))
			break;
		k = epoll_wait(ep, evs, MAX_EVENTS, o->mode == CHURN ? 1 : 10);
		t = now();
		for (int i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;
			bool done;

			conn_event(c, evs[i].events, o, t, ending, &done);
			if (done && o->mode == CONCURRENT) {
				ep_set(EPOLL_CTL_DEL, c->fd, 0, c);
				finished++;
			} else if (done) {
				conn_end(c, true);
			}
			if (c->state == C_DONE) {
				live--;
				if (o->mode == CHURN)
					free_slots[next_free++] = c - cs;
			}
		}
		/* flows send on their pace, not only on events, and end once
		 * all they sent is back */
		for (long i = 0; o->mode == FLOW && i < n; i++) {
			if (cs[i].state == C_OPEN && ending && cs[i].rcvd == cs[i].sent) {
				conn_end(&cs[i], true);
				live--;
			} else if (cs[i].state == C_OPEN) {
				conn_write(&cs[i], o, t, ending);
			}
		}
		if (ending && !t_end)
			t_end = t;
		/* connections that hang (a peer killed mid-way) fail in time */
		for (long i = 0; o->mode != FLOW && i < n && !held; i++)
			if (cs[i].state != C_DONE && t - cs[i].t0 > CONN_TIMEOUT_S &&
			    cs[i].rcvd < cs[i].want) {
				conn_fail(&cs[i], "timeout", 0);
				conn_end(&cs[i], false);
				live--;
				if (o->mode == CHURN)
					free_slots[next_free++] = i;
			}
		if (o->progress && t - last_progress >= 1) {
			last_progress = t;
			printf("loadgen-progress t=%.0f open=%llu ", t - t0,
			       (unsigned long long)cnt.open);
			result(names[o->mode], t - t0);
		}
	}
	for (long i = 0; i < n; i++) {
		bool ok = o->mode == CONCURRENT && cs[i].rcvd == cs[i].want;

		if (cs[i].state == C_DONE)
			continue;
		if (!ok)
			conn_fail(&cs[i], "unfinished", 0);
		conn_end(&cs[i], ok);
	}
	result(names[o->mode], (o->mode == CONCURRENT ? held : t) - t0);
	free(cs);
	free(free_slots);
	if (cnt.mismatches)
		return 1;
	return cnt.failed && !o->keep_going ? 3 : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: loadgen server PORT\n"
			"       loadgen client IP PORT [-n N] [-r RATE] [-t SECS] [-b BYTES] "
			"[-B BPS] [-f] [-k] [-p]\n");
	return 2;
}

static int parse_client(struct opts *o, int argc, char **argv)
{
	int ch;

	*o = (struct opts){.mode = CONCURRENT, .n = 1000, .bytes = 4096, .bps = 1 << 20};
	o->addr.sin_family = AF_INET;
	if (argc < 4 || inet_pton(AF_INET, argv[2], &o->addr.sin_addr) != 1)
		return -1;
	o->addr.sin_port = htons((uint16_t)atoi(argv[3]));
	optind = 4;
	while ((ch = getopt(argc, argv, "n:r:t:b:B:fkp")) != -1) {
		switch (ch) {
		case 'n':
			o->n = atol(optarg);
			break;
		case 'r':
			o->rate = atol(optarg);
			o->mode = CHURN;
			break;
		case 't':
			o->secs = atof(optarg);
			break;
		case 'b':
			o->bytes = strtoull(optarg, NULL, 0);
			break;
		case 'B':
			o->bps = strtoull(optarg, NULL, 0);
			break;
		case 'f':
			o->mode = FLOW;
			break;
		case 'k':
			o->keep_going = true;
			break;
		case 'p':
			o->progress = true;
			break;
		default:
			return -1;
		}
	}
	if (o->n < 1 || optind != argc || (o->mode == CHURN && (o->rate < 1 || o->secs <= 0)) ||
	    (o->mode != FLOW && o->bytes == 0))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_stop};
	struct opts o;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	raise_nofile();
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("loadgen: epoll");
		return 2;
	}
	if (argc == 3 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]));
	if (argc >= 4 && !strcmp(argv[1], "client") && parse_client(&o, argc, argv) == 0)
		return client(&o);
	return usage();
}
