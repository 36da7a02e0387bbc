/* The keeper: the unfiltered process that holds the seccomp listener for
 * as long as a task uses the filter, so the program never finds nobody
 * behind it (a listener nobody holds makes the trapped calls fail with
 * ENOSYS).
 *
 * States (struct keeper.st):
 *   K_SERVED     a router took the listener (Supervise answered OK) and its
 *                channel is open: the keeper never reads the listener, it
 *                only watches the channel for its end and the listener for
 *                POLLHUP.
 *   K_ALONE      no router: every notification is answered CONTINUE (the
 *                call runs as without ffnet); every RETRY_MS (more after a
 *                refusal) a connection to the router's socket is tried.
 *   K_HELLO      Hello sent on a new channel, reply awaited; notifications
 *                are still answered here.
 *   K_SUPERVISE  Supervise sent with the listener: the router may already
 *                be reading it, so the keeper does not until the reply.
 * The first handshake ends with one byte to the launcher: 'R' (served) or
 * 'K' (the keeper answers). The keeper ends with the filter: on POLLHUP
 * of the listener, which the kernel reports once no task uses it.
 *
 * Listeners. A program's listener on an overlay address becomes, in the
 * program, its end of an accept queue whose other end the router holds.
 * The router hands the keeper a copy of that end and a stash holding the
 * kernel listener in flight (Reply body keep); the keeper holds them, as
 * a shim holds its own, so that a router's death is no EOF in the
 * program's accept, and hands them back (Relisten, the listener taken out
 * of the stash) to the next router that supervises it, which sends new
 * keeps. Connections that reach the kernel listener meanwhile wait in its
 * backlog. The router empties the stash the moment it ends the listener
 * (the program closed it; at the latest at its next bind or listen), so
 * the keeper never holds a closed listener's port; the keeper lets a pair
 * go once the program's end is closed (its own end hangs up).
 *
 * Parked calls. A router that parks a call (a blocking accept waiting for
 * a connection, a connect waiting for its core) records it in a page it
 * hands over with its answer to Supervise (ff/exec.h), mapped here
 * read-only. When that router is lost, every call of the page still
 * pending is let through at once, but for blocking accepts: those are held
 * (the program's accept keeps waiting, as with the shim) and handed to the
 * next router (Adopt) after the listeners.
 *
 * A router that took a notification (RECV) and died without answering it
 * leaves its task waiting (WAIT_KILLABLE_RECV: only a fatal signal ends
 * that wait), and only the router knew the id. The ids are sequential:
 * after losing a router, the first notification the keeper receives gives
 * the current id, and the RESCUE_IDS ids before it that are still waiting
 * for an answer are answered CONTINUE (rescue()). A call taken longer ago,
 * or in a program that makes no further trapped call, stays stuck. */
#include "ffexec.h"

#include "addr.h"
#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/exec.h>
#include <ff/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MS     200
#define RETRY_MAX_MS 5000 /* after refusals the delay doubles up to this */
#define REPLY_MS     1000 /* a handshake step; under the launcher's wait */
#define GUARD_MS     100  /* most a RECV may block (someone else took the call) */
#define RESCUE_IDS   4096
#define REPLY_BUF    4096
#define KEPT_MAX     64 /* listeners held across a router restart */
#define HELD_MAX     64 /* blocking accepts held for the next router */

enum kstate { K_ALONE, K_HELLO, K_SUPERVISE, K_SERVED };

/* A listener held for the next router (Relisten's fields and fds). */
struct kept {
	int stash; /* holds the kernel listener in flight; drained by the router
		    * the moment the program closes its listener */
	int qr;	   /* the router's end of the accept queue */
	struct ff_sa addr;
	int32_t backlog;
	bool v6only;
	uint64_t q_ino; /* the program's end */
};

struct keeper {
	enum kstate st;
	int lfd;      /* the listener */
	int chan;     /* the router channel, or -1 */
	int sp;	      /* to the launcher until the first answer, then -1 */
	uint32_t pid; /* the launcher's, for Supervise */
	uint64_t req_id;
	int64_t due; /* K_ALONE: next attempt; K_HELLO, K_SUPERVISE: give up */
	int delay;   /* K_ALONE: ms between attempts */
	bool rescue; /* a router was lost: look for the calls it took */
	struct seccomp_notif *n;
	struct seccomp_notif_resp *resp;
	size_t n_size, resp_size;
	struct kept kept[KEPT_MAX];
	int nkept;
	const struct ff_parked_page *pp; /* the serving router's parked calls */
	struct ff_parked held[HELD_MAX];
	int nheld;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- process set-up ---- */

static void close_range_or_loop(unsigned int lo, unsigned int hi)
{
	struct rlimit rl;

	if (lo > hi || syscall(SYS_close_range, lo, hi, 0) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > 65536)
		rl.rlim_cur = 65536;
	for (unsigned int fd = lo; fd <= hi && fd < rl.rlim_cur; fd++)
		close((int)fd);
}

/* Closes every fd but keep[0..n) (ascending, -1 entries first). */
static void close_all_but(const int *keep, int n)
{
	unsigned int lo = 0;

	for (int i = 0; i < n; i++) {
		if (keep[i] < 0)
			continue;
		if ((unsigned int)keep[i] > lo)
			close_range_or_loop(lo, (unsigned int)keep[i] - 1);
		lo = (unsigned int)keep[i] + 1;
	}
	close_range_or_loop(lo, ~0U);
}

static void sort3(int *a)
{
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2 - i; j++)
			if (a[j] > a[j + 1]) {
				int t = a[j];

				a[j] = a[j + 1];
				a[j + 1] = t;
			}
}

/* /dev/null on 0..upto, so no fd the keeper opens lands there; without
 * /dev/null they are closed (and, for stderr, logging stops). */
static void null_stdio(int upto)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	for (int i = 0; i <= upto; i++) {
		if (fd < 0)
			close(i);
		else if (fd != i)
			dup2(fd, i);
	}
	if (fd > upto)
		close(fd);
	if (fd < 0 && upto >= 2)
		ff_log_level = -1;
}

static void guard_sig(int sig)
{
	(void)sig;
}

/* fd, moved above 2 if it is a stdio number (the launcher may have been
 * started with those closed). */
static int above_stdio(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

/* Keeps *sp, *chan (both moved above 2) and stderr, if there is one; 0
 * and 1 become /dev/null. Nothing but the end of the filter ends the
 * keeper; SIGALRM (no SA_RESTART) cuts a blocked RECV short. */
static void setup_process(int *sp, int *chan)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, alrm = {.sa_handler = guard_sig};
	int keep[3];
	sigset_t none;

	ff_log_init("ffexec keeper", -1);
	*sp = above_stdio(*sp);
	*chan = above_stdio(*chan);
	keep[0] = 2;
	keep[1] = *sp;
	keep[2] = *chan;
	sort3(keep);
	close_all_but(keep, 3);
	null_stdio(fcntl(2, F_GETFD) < 0 ? 2 : 1);
	setsid();
	if (chdir("/") < 0)
		ff_dbg("chdir /: %s", strerror(errno));
	sigaction(SIGPIPE, &ign, NULL);
	sigaction(SIGHUP, &ign, NULL);
	sigaction(SIGINT, &ign, NULL);
	sigaction(SIGTERM, &ign, NULL);
	sigaction(SIGALRM, &alrm, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ---- the listener ---- */

static int notif_bufs(struct keeper *k)
{
	struct seccomp_notif_sizes sz = {0};

	syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz);
	k->n_size = sz.seccomp_notif > sizeof(*k->n) ? sz.seccomp_notif : sizeof(*k->n);
	k->resp_size =
	    sz.seccomp_notif_resp > sizeof(*k->resp) ? sz.seccomp_notif_resp : sizeof(*k->resp);
	k->n = calloc(1, k->n_size);
	k->resp = calloc(1, k->resp_size);
	return k->n && k->resp ? 0 : -ENOMEM;
}

static void let_through(struct keeper *k, uint64_t id)
{
	memset(k->resp, 0, k->resp_size);
	k->resp->id = id;
	k->resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	/* ENOENT: the task died, or its wait was interrupted */
	if (ioctl(k->lfd, SECCOMP_IOCTL_NOTIF_SEND, k->resp) < 0 && errno != ENOENT)
		ff_dbg("NOTIF_SEND: %s", strerror(errno));
}

/* The lost router's unanswered calls among the RESCUE_IDS before id. */
static void rescue(struct keeper *k, uint64_t id)
{
	int n = 0;

	for (uint64_t i = 1; i <= RESCUE_IDS; i++) {
		uint64_t old = id - i;

		if (ioctl(k->lfd, SECCOMP_IOCTL_NOTIF_ID_VALID, &old) == 0) {
			let_through(k, old);
			n++;
		}
	}
	if (n)
		ff_info("%d call(s) the lost router had taken let through", n);
}

/* One notification, answered CONTINUE. Called when poll reported POLLIN. */
static void answer_one(struct keeper *k)
{
	struct itimerval on = {.it_value = {0, GUARD_MS * 1000}}, off = {{0, 0}, {0, 0}};
	int r, e;

	memset(k->n, 0, k->n_size);
	setitimer(ITIMER_REAL, &on, NULL);
	r = ioctl(k->lfd, SECCOMP_IOCTL_NOTIF_RECV, k->n);
	e = errno;
	setitimer(ITIMER_REAL, &off, NULL);
	if (r < 0) {
		/* ENOENT: the task went before we read; EINTR: someone else read it */
		if (e != ENOENT && e != EINTR)
			ff_dbg("NOTIF_RECV: %s", strerror(e));
		return;
	}
	let_through(k, k->n->id);
	if (k->rescue) {
		k->rescue = false;
		rescue(k, k->n->id);
	}
}

/* ---- the router channel ---- */

static void answer_launcher(struct keeper *k, char c)
{
	if (k->sp < 0)
		return;
	if (write(k->sp, &c, 1) != 1)
		ff_dbg("answer: %s", strerror(errno));
	close(k->sp);
	k->sp = -1;
	null_stdio(2); /* a pipe on stderr must see EOF when the program ends */
}

static int send_req(struct keeper *k, Ff__Request *req, const int *fds, int nfds)
{
	req->id = ++k->req_id;
	return ff_msg_send(k->chan, &req->base, fds, nfds);
}

/* ---- the router's parked calls ---- */

static void parked_unmap(struct keeper *k)
{
	if (k->pp)
		munmap((void *)k->pp, sizeof(*k->pp));
	k->pp = NULL;
}

/* The page that came with Supervise's answer (fds consumed). */
static void parked_map(struct keeper *k, int *fds, int nfds)
{
	struct stat st;
	void *p;

	parked_unmap(k);
	if (nfds == 1 && fstat(fds[0], &st) == 0 && st.st_size == (off_t)sizeof(*k->pp) &&
	    (p = mmap(NULL, sizeof(*k->pp), PROT_READ, MAP_SHARED, fds[0], 0)) != MAP_FAILED) {
		k->pp = p;
		if (k->pp->magic != FF_PARKED_MAGIC || k->pp->nslots != FF_PARKED_SLOTS)
			parked_unmap(k);
	}
	ff_close_fds(fds, nfds);
}

static bool is_accept(uint32_t nr)
{
	return nr == SYS_accept || nr == SYS_accept4;
}

/* The router is lost: its parked calls still pending are let through, but
 * blocking accepts, held for the next router. */
static void parked_rescue(struct keeper *k)
{
	int through = 0;

	for (int i = 0; k->pp && i < FF_PARKED_SLOTS; i++) {
		uint64_t id = __atomic_load_n(&k->pp->slot[i].id, __ATOMIC_ACQUIRE);
		struct ff_parked e;

		if (!id)
			continue;
		e = k->pp->slot[i];
		/* (a router still alive may reuse the slot meanwhile) */
		if (__atomic_load_n(&k->pp->slot[i].id, __ATOMIC_ACQUIRE) != id ||
		    ioctl(k->lfd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0)
			continue;
		e.id = id;
		if (is_accept(e.nr) && k->nheld < HELD_MAX) {
			k->held[k->nheld++] = e;
		} else {
			let_through(k, id);
			through++;
		}
	}
	parked_unmap(k);
	if (k->nheld || through)
		ff_info("the lost router's parked calls: %d held for the next, %d let through",
			k->nheld, through);
}

/* A router supervises us again: the held accepts are its to serve. */
static void parked_hand_over(struct keeper *k)
{
	for (int i = 0; i < k->nheld; i++) {
		Ff__Request req = FF__REQUEST__INIT;
		Ff__Adopt m = FF__ADOPT__INIT;
		uint64_t args[4];

		memcpy(args, k->held[i].args, sizeof(args));
		m.id = k->held[i].id;
		m.tid = k->held[i].tid;
		m.nr = k->held[i].nr;
		m.n_args = 4;
		m.args = args;
		req.body_case = FF__REQUEST__BODY_ADOPT;
		req.adopt = &m;
		if (send_req(k, &req, NULL, 0) < 0)
			let_through(k, k->held[i].id); /* (as before the page existed) */
	}
	k->nheld = 0;
}

/* Back to K_ALONE; refused: the router answered no, wait longer. */
static void chan_drop(struct keeper *k, bool refused)
{
	if (k->st == K_SERVED) {
		k->rescue = true;
		parked_rescue(k);
	}
	parked_unmap(k);
	if (k->chan >= 0)
		close(k->chan);
	k->chan = -1;
	k->st = K_ALONE;
	if (refused)
		k->delay = k->delay * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : k->delay * 2;
	k->due = now_ms() + k->delay;
	answer_launcher(k, 'K');
}

static int send_hello(struct keeper *k)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;

	h.version = FF_PROTO_VERSION;
	h.role = (char *)"shim";
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	return send_req(k, &req, NULL, 0);
}

static int send_supervise(struct keeper *k)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Supervise s = FF__SUPERVISE__INIT;

	s.pid = k->pid;
	req.body_case = FF__REQUEST__BODY_SUPERVISE;
	req.supervise = &s;
	return send_req(k, &req, &k->lfd, 1);
}

/* ---- listeners kept for the next router ---- */

/* The router's keep (fds: the stash, our copy of its queue end;
 * consumed). */
static void kept_add(struct keeper *k, const Ff__Listen *m, int *fds, int nfds)
{
	struct kept *e = &k->kept[k->nkept];

	if (nfds != 2 || !m || k->nkept == KEPT_MAX || ff_sa_from_proto(&e->addr, m->addr) < 0) {
		ff_warn("a listener not kept (%s): it ends with this router",
			k->nkept == KEPT_MAX ? "too many" : "malformed");
		ff_close_fds(fds, nfds);
		return;
	}
	e->stash = above_stdio(fds[0]);
	e->qr = above_stdio(fds[1]);
	e->backlog = m->backlog;
	e->v6only = m->v6only;
	e->q_ino = m->queue_inode;
	k->nkept++;
}

/* The program closed its end of kept listener i: let the pair go. */
static void kept_drop(struct keeper *k, int i)
{
	close(k->kept[i].stash);
	close(k->kept[i].qr);
	k->kept[i] = k->kept[--k->nkept];
}

/* A copy of the kernel listener in a stash, left there; -1: empty. */
static int stash_peek(int stash)
{
	int got[FF_MAX_FDS], n = 0;
	char b;

	if (ff_recv_fds(stash, &b, 1, got, FF_MAX_FDS, &n, MSG_DONTWAIT | MSG_PEEK) == 1 && n == 1)
		return got[0];
	ff_close_fds(got, n);
	return -1;
}

/* A router supervises us again: hand it every listener we kept, with a
 * copy of the kernel listener peeked from its stash (an empty stash: the
 * last router saw the program close it). An entry handed back goes (the
 * router's keep brings a new one); one that could not be sent stays for
 * the next router. Answers are not awaited (a refusal leaves the listener
 * as without us). */
static void kept_hand_back(struct keeper *k)
{
	int sent = 0, n = k->nkept;

	for (int i = k->nkept - 1; i >= 0; i--) { /* (a drop moves the last entry to i) */
		const struct kept *e = &k->kept[i];
		Ff__Request req = FF__REQUEST__INIT;
		struct ff_listen_msg lm;
		int fds[2] = {stash_peek(e->stash), e->qr};

		if (fds[0] < 0) {
			kept_drop(k, i);
			continue;
		}
		ff_listen_to_proto(&lm, &e->addr, e->backlog, e->v6only, e->q_ino);
		req.body_case = FF__REQUEST__BODY_RELISTEN;
		req.relisten = &lm.m;
		if (send_req(k, &req, fds, 2) == 0) {
			sent++;
			kept_drop(k, i);
		}
		close(fds[0]);
	}
	if (n)
		ff_info("%d of %d listener(s) handed back to the router", sent, n);
}

/* A channel is open (k->chan): start the handshake. */
static void chan_start(struct keeper *k)
{
	int err = send_hello(k);

	if (err) {
		ff_dbg("Hello: %s", strerror(-err));
		chan_drop(k, false);
		return;
	}
	k->st = K_HELLO;
	k->due = now_ms() + REPLY_MS;
}

/* The reply to the request in flight (fds consumed). */
static void on_reply(struct keeper *k, const Ff__Reply *rep, int *fds, int nfds)
{
	int err;

	/* only Supervise's OK brings an fd for us (the parked page); a shim
	 * HelloReply's pages are not ours to map */
	if (rep->id != k->req_id || k->st != K_SUPERVISE || rep->status != FF__STATUS__ST_OK)
		ff_close_fds(fds, nfds);
	if (rep->id != k->req_id || (k->st != K_HELLO && k->st != K_SUPERVISE))
		return; /* nothing else is expected: ignored */
	if (rep->status != FF__STATUS__ST_OK) {
		ff_warn("router refused %s: %s%s%s", k->st == K_HELLO ? "Hello" : "Supervise",
			ff_status_name(rep->status), rep->error && *rep->error ? ": " : "",
			rep->error ? rep->error : "");
		chan_drop(k, true);
		return;
	}
	if (k->st == K_SUPERVISE) {
		k->st = K_SERVED;
		k->delay = RETRY_MS;
		parked_map(k, fds, nfds);
		ff_info("the router supervises pid %u", k->pid);
		answer_launcher(k, 'R');
		kept_hand_back(k);
		parked_hand_over(k);
		return;
	}
	err = send_supervise(k);
	if (err) {
		ff_dbg("Supervise: %s", strerror(-err));
		chan_drop(k, false);
		return;
	}
	k->st = K_SUPERVISE;
	k->due = now_ms() + REPLY_MS;
}

/* The channel is readable, or ended. */
static void on_chan(struct keeper *k)
{
	uint8_t buf[REPLY_BUF];
	int fds[FF_MAX_FDS], nfds = 0, r;
	ProtobufCMessage *m = NULL;

	r = ff_msg_recv(k->chan, &ff__reply__descriptor, buf, sizeof(buf), &m, fds, FF_MAX_FDS,
			&nfds, MSG_DONTWAIT);
	if (r == -EAGAIN || r == -EBADMSG || r == -EMSGSIZE || r == -ETOOMANYREFS)
		return; /* nothing, or a message we drop */
	if (r <= 0) {
		if (k->st == K_SERVED)
			ff_info("router gone (%s): letting every call through",
				r ? strerror(-r) : "channel closed");
		chan_drop(k, false);
		return;
	}
	if (((Ff__Reply *)m)->id == 0 && ((Ff__Reply *)m)->body_case == FF__REPLY__BODY_KEEP) {
		kept_add(k, ((Ff__Reply *)m)->keep, fds, nfds);
		protobuf_c_message_free_unpacked(m, NULL);
		return;
	}
	on_reply(k, (Ff__Reply *)m, fds, nfds);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* A timer ran out: try the router again, or give up waiting for it. */
static void on_due(struct keeper *k)
{
	int fd;

	if (k->st != K_ALONE) {
		ff_dbg("the router did not answer in %d ms", REPLY_MS);
		chan_drop(k, true);
		return;
	}
	fd = ffe_router_connect(0);
	if (fd < 0) {
		k->due = now_ms() + k->delay;
		return;
	}
	k->chan = fd;
	chan_start(k);
}

/* ---- the loop ---- */

/* Returns when no task uses the filter any more. */
static int keep(struct keeper *k)
{
	for (;;) {
		bool reading = k->st == K_ALONE || k->st == K_HELLO;
		struct pollfd p[2 + KEPT_MAX] = {
		    {.fd = k->lfd, .events = reading ? POLLIN : 0},
		    {.fd = k->chan, .events = POLLIN},
		};
		int64_t left = k->due - now_ms();
		int r, nk = k->nkept;

		for (int i = 0; i < nk; i++)
			p[2 + i] = (struct pollfd){.fd = k->kept[i].qr}; /* POLLHUP only */
		if (k->st == K_SERVED)
			left = -1;
		else if (left < 0)
			left = 0;
		r = poll(p, 2 + (nfds_t)nk, (int)left);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r < 0)
			continue;
		if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
			return 0;
		for (int i = nk - 1; i >= 0; i--) /* (a drop moves the last entry to i) */
			if (p[2 + i].revents)
				kept_drop(k, i);
		if (p[0].revents & POLLIN)
			answer_one(k);
		if (k->chan >= 0 && p[1].revents)
			on_chan(k);
		if (k->st != K_SERVED && now_ms() >= k->due)
			on_due(k);
	}
}

/* The listener from the launcher; -errno, or 0 when it sent none. */
static int take_listener(struct keeper *k)
{
	char c;
	int fds[FF_MAX_FDS], nfds = 0;
	ssize_t n = ff_recv_fds(k->sp, &c, 1, fds, FF_MAX_FDS, &nfds, 0);

	if (n < 0)
		return (int)n;
	if (n == 0 || nfds != 1) {
		ff_close_fds(fds, nfds);
		return 0; /* the launcher runs the program without the filter */
	}
	k->lfd = fds[0];
	return 1;
}

int ffe_keeper(int sp, int chan, uint32_t pid)
{
	struct keeper k = {.st = K_ALONE, .lfd = -1, .pid = pid, .delay = RETRY_MS};
	int r;

	setup_process(&sp, &chan);
	k.sp = sp;
	k.chan = chan;
	r = sp < 0 ? -EBADF : take_listener(&k);
	if (r <= 0)
		goto out;
	r = notif_bufs(&k);
	if (r)
		goto out;
	if (k.chan >= 0) {
		fcntl(k.chan, F_SETFL, fcntl(k.chan, F_GETFL) | O_NONBLOCK);
		chan_start(&k);
	} else {
		chan_drop(&k, false);
	}
	r = keep(&k);
	if (r)
		ff_err("poll: %s", strerror(-r));
out:
	if (k.sp >= 0)
		answer_launcher(&k, 'K');
	if (k.chan >= 0)
		close(k.chan);
	if (k.lfd >= 0)
		close(k.lfd);
	while (k.nkept)
		kept_drop(&k, 0);
	parked_unmap(&k);
	free(k.n);
	free(k.resp);
	return r < 0 ? 1 : 0;
}
