/* The seccomp supervisor's frame: the Supervise request, one struct sv per
 * listener handed over, reading notifications and answering them, the
 * internal channel to the core, and parked calls.
 *
 * Parked calls are also written to a page the keeper maps read-only
 * (ff/exec.h), so that a keeper that loses this router can let them
 * through, or hold a blocking accept for the next router (op_adopt).
 *
 * The listener is a file the container holds too: another reader may take
 * a notification between our poll and our RECV, and RECV (like ADDFD,
 * which waits for the task) would then block the loop. Both run under a
 * one-shot timer whose signal interrupts them (guarded()). */
#include "internal.h"
#include "unotify.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define GUARD_MS     100
#define RECV_BATCH   64
#define SWEEP_MS     1000
#define MAX_SVS	     1024 /* listeners per router */
#define MAX_SV_C     64	  /* per container */
#define MAX_CALLS    4096 /* parked calls per listener */
#define GUARD_SIGNAL (SIGRTMIN + 3)

static void guard_sig(int sig)
{
	(void)sig;
}

/* The guard timer signals the thread that runs the loop (the one calling
 * this first); made on first use, as the router may be built elsewhere. */
static void guard_init(struct sv_ctx *x)
{
	struct sigaction sa = {.sa_handler = guard_sig}; /* no SA_RESTART */
	struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = GUARD_SIGNAL};
	sigset_t set;

	x->guard_tried = true;
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	sigemptyset(&set);
	sigaddset(&set, GUARD_SIGNAL);
	if (sigaction(GUARD_SIGNAL, &sa, NULL) == 0 &&
	    pthread_sigmask(SIG_UNBLOCK, &set, NULL) == 0 &&
	    timer_create(CLOCK_MONOTONIC, &sev, &x->guard) == 0)
		x->guard_ok = true;
	else
		ff_warn("seccomp supervisor: no guard timer (%s): a stolen notification can stall",
			strerror(errno));
}

/* ioctl that cannot block the loop for more than GUARD_MS. */
static int guarded(struct sv_ctx *x, int fd, unsigned long req, void *arg)
{
	struct itimerspec on = {.it_value = {0, GUARD_MS * 1000000L}}, off = {0};
	int r, e;

	if (!x->guard_tried)
		guard_init(x);
	if (x->guard_ok)
		timer_settime(x->guard, 0, &on, NULL);
	r = ioctl(fd, req, arg);
	e = errno;
	if (x->guard_ok)
		timer_settime(x->guard, 0, &off, NULL);
	errno = e;
	return r < 0 ? -e : r;
}

static void respond(struct sv *sv, uint64_t id, int64_t val, int err, uint32_t flags)
{
	struct seccomp_notif_resp resp = {.id = id, .val = val, .error = err, .flags = flags};

	/* ENOENT: the task is gone or was interrupted; nothing to answer */
	if (ioctl(sv->lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 && errno != ENOENT)
		ff_dbg("%s: seccomp answer: %s", sv->c->name, strerror(errno));
}

void sv_continue(struct sv *sv, uint64_t id)
{
	sv->x->continued++;
	respond(sv, id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
}

void sv_answer(struct sv *sv, uint64_t id, int64_t val, int err)
{
	sv->x->answered++;
	respond(sv, id, err ? 0 : val, err, 0);
}

bool sv_valid(struct sv *sv, uint64_t id)
{
	return ioctl(sv->lfd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

int sv_addfd(struct sv *sv, uint64_t id, int fd, int fdnum, bool cloexec)
{
	struct seccomp_notif_addfd a = {
	    .id = id,
	    .flags = fdnum >= 0 ? SECCOMP_ADDFD_FLAG_SETFD : SECCOMP_ADDFD_FLAG_SEND,
	    .srcfd = (uint32_t)fd,
	    .newfd = fdnum >= 0 ? (uint32_t)fdnum : 0,
	    .newfd_flags = cloexec ? O_CLOEXEC : 0,
	};
	int r = guarded(sv->x, sv->lfd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);

	if (r >= 0 && fdnum < 0)
		sv->x->answered++;
	return r;
}

/* ---------------------------------------------------------------- calls */

/* Records a parked call in the keeper's page: the fields, then the id. */
static int parked_put(struct sv *sv, const struct seccomp_notif *n)
{
	for (unsigned i = 0; sv->pp && i < FF_PARKED_SLOTS; i++) {
		unsigned k = (sv->pp_hint + i) % FF_PARKED_SLOTS;
		struct ff_parked *e = &sv->pp->slot[k];

		if (__atomic_load_n(&e->id, __ATOMIC_RELAXED))
			continue;
		memcpy(e->args, n->data.args, sizeof(e->args));
		e->tid = n->pid;
		e->nr = (uint32_t)n->data.nr;
		__atomic_store_n(&e->id, n->id, __ATOMIC_RELEASE);
		sv->pp_hint = k + 1;
		return (int)k;
	}
	return -1; /* full: the keeper's late rescue (by id) covers it */
}

struct sv_call *sv_call_new(struct sv *sv, enum sv_kind kind, const struct seccomp_notif *n,
			    int afd)
{
	struct sv_call *call;

	if (sv->ncalls >= MAX_CALLS || !(call = calloc(1, sizeof(*call)))) {
		close(afd);
		return NULL;
	}
	call->slot = parked_put(sv, n);
	call->sv = sv;
	call->kind = kind;
	call->id = n->id;
	call->tid = (pid_t)n->pid;
	call->fdnum = (int)n->data.args[0];
	call->afd = afd;
	TAILQ_INSERT_TAIL(&sv->calls, call, link);
	sv->ncalls++;
	return call;
}

void sv_call_free(struct sv_call *call)
{
	if (!call)
		return;
	if (call->slot >= 0 && call->sv->pp)
		__atomic_store_n(&call->sv->pp->slot[call->slot].id, 0, __ATOMIC_RELEASE);
	TAILQ_REMOVE(&call->sv->calls, call, link);
	call->sv->ncalls--;
	if (call->ev)
		event_free(call->ev);
	if (call->afd >= 0)
		close(call->afd);
	free(call);
}

/* ------------------------------------------------ the internal channel */

/* The parked call waiting for core request v (by_req), or answering
 * notification v. */
static struct sv_call *call_find(struct sv *sv, uint64_t v, bool by_req)
{
	struct sv_call *call;

	TAILQ_FOREACH(call, &sv->calls, link)
	if ((by_req ? call->req : call->id) == v)
		return call;
	return NULL;
}

/* Copies of fds[0..nfds) into out (all or none); 0 or -EMFILE. */
static int dup_all(const int *fds, int nfds, int *out)
{
	for (int n = 0; n < nfds; n++) {
		out[n] = fcntl(fds[n], F_DUPFD_CLOEXEC, 0);
		if (out[n] < 0) {
			ff_close_fds(out, n);
			return -EMFILE;
		}
	}
	return 0;
}

/* The core's reply, straight from its handler (ffr_chan_local): the fds
 * stay the core's, the call gets copies. */
static void deliver(void *arg, const Ff__Reply *rep, const int *fds, int nfds)
{
	struct sv *sv = arg;
	struct sv_call *call = rep->id ? call_find(sv, rep->id, true) : NULL;
	int own[FF_MAX_FDS], n = nfds;

	if (!call)
		return;
	if (n > FF_MAX_FDS || dup_all(fds, n, own) < 0)
		n = 0; /* out of fds: as if the core had sent none */
	call->req = 0;
	sv_call_reply(call, rep, own, n);
}

int sv_call_request(struct sv_call *call, Ff__Request *req, const int *fds, int nfds)
{
	struct sv *sv = call->sv;
	int dup[FF_MAX_FDS];

	req->id = ++sv->next_req;
	call->req = req->id;
	if (!sv->core) {
		if (ff_msg_send(sv->cfd, &req->base, fds, nfds) == 0)
			return 0;
		call->req = 0;
		return -EPIPE;
	}
	if (nfds > FF_MAX_FDS || dup_all(fds, nfds, dup) < 0) {
		call->req = 0;
		return -EMFILE;
	}
	/* (the core may answer, and the call be gone, before this returns;
	 * if the channel dies instead, its end frees the calls) */
	ffr_chan_request(sv->core, req, dup, nfds);
	return 0;
}

static void sv_free(struct sv *sv);

/* Supervise answered OK, with the parked page (ff/exec.h) for the keeper. */
static void supervise_ok(struct sv *sv)
{
	Ff__Reply rep = FF__REPLY__INIT;

	rep.id = sv->sup_id;
	rep.status = FF__STATUS__ST_OK;
	ffr_reply(sv->kch, &rep, &sv->pfd, sv->pfd >= 0 ? 1 : 0);
	if (sv->pfd >= 0)
		close(sv->pfd);
	sv->pfd = -1;
}

static void chan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sv *sv = arg;
	uint8_t buf[4096];

	for (int i = 0; i < RECV_BATCH; i++) {
		ProtobufCMessage *m = NULL;
		int fds[FF_MAX_FDS], nfds = 0;
		int r = ff_msg_recv(sv->cfd, &ff__reply__descriptor, buf, sizeof(buf), &m, fds,
				    FF_MAX_FDS, &nfds, MSG_DONTWAIT);
		Ff__Reply *rep = (Ff__Reply *)m;
		struct sv_call *call;

		if (r == -EAGAIN)
			return;
		if (r == 0 || r == -ECONNRESET || r == -ENOTCONN) {
			ff_info("%s: seccomp supervision of pid %d ends (container gone)",
				sv->c->name, (int)sv->pid);
			if (!sv->ready)
				ffr_reply_status(sv->kch, sv->sup_id, FF__STATUS__ST_INTERNAL,
						 "supervise: the container went away");
			sv_free(sv);
			return;
		}
		if (r < 0)
			continue;
		if (rep->id == 0 && !sv->ready) {
			/* only now may the task go on: a call before this would
			 * have been let through to the kernel, unaccelerated */
			if (rep->body_case != FF__REPLY__BODY_HELLO || rep->status) {
				ff_warn(
				    "%s: seccomp supervision of pid %d: internal channel refused",
				    sv->c->name, (int)sv->pid);
				ffr_reply_status(sv->kch, sv->sup_id, FF__STATUS__ST_INTERNAL,
						 "supervise: internal channel refused");
				protobuf_c_message_free_unpacked(m, NULL);
				ff_close_fds(fds, nfds);
				sv_free(sv);
				return;
			}
			sv->ready = true;
			if (sv->core)
				ffr_chan_local(sv->core, deliver, sv);
			ff_info("%s: supervising the programs of pid %d (seccomp)", sv->c->name,
				(int)sv->pid);
			supervise_ok(sv);
		} else if ((call = call_find(sv, rep->id, true))) {
			call->req = 0;
			sv_call_reply(call, rep, fds, nfds);
			nfds = 0;
		}
		ff_close_fds(fds, nfds);
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

/* A shim channel of c for sv, and its Hello (id 0). */
static int chan_open(struct sv *sv)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	int sp[2], err;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
		return -errno;
	err = ffr_chan_new(sv->x->r, sv->c, sp[0]);
	if (err) {
		close(sp[1]);
		return err;
	}
	sv->core = ffr_chan_of_fd(sv->c, sp[0]);
	sv->cfd = sp[1];
	sv->cev = event_new(sv->x->r->base, sv->cfd, EV_READ | EV_PERSIST, chan_cb, sv);
	if (!sv->cev || event_add(sv->cev, NULL) < 0)
		return -ENOMEM;
	h.version = FF_PROTO_VERSION;
	h.role = (char *)"shim";
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	req.id = 0;
	return ff_msg_send(sv->cfd, &req.base, NULL, 0);
}

/* ------------------------------------------------------ notifications */

static void notif_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sv *sv = arg;
	struct sv_ctx *x = sv->x;
	struct seccomp_notif *n = calloc(1, x->sizes.seccomp_notif);

	for (int i = 0; n && i < RECV_BATCH; i++) {
		struct pollfd p = {.fd = sv->lfd, .events = POLLIN};

		if (poll(&p, 1, 0) != 1)
			break;
		if (!(p.revents & POLLIN)) {
			if (p.revents & (POLLHUP | POLLERR)) {
				ff_dbg("%s: no task uses the filter of pid %d any more",
				       sv->c->name, (int)sv->pid);
				free(n);
				sv_free(sv);
				return;
			}
			break;
		}
		memset(n, 0, x->sizes.seccomp_notif);
		if (guarded(sv->x, sv->lfd, SECCOMP_IOCTL_NOTIF_RECV, n) < 0)
			break; /* taken by someone else, or the task went */
		x->trapped++;
		ffr_doing(x->r, "seccomp call", sv->c->name, (pid_t)n->pid);
		if (!sv->ready || !ffr_container_has_pid(sv->c, (pid_t)n->pid))
			sv_continue(sv, n->id);
		else
			sv_dispatch(sv, n);
	}
	free(n);
}

/* Drops parked calls whose task is gone; forgets sockets the core forgot. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sv_ctx *x = arg;
	struct sv *sv;

	TAILQ_FOREACH(sv, &x->svs, link)
	{
		struct sv_call *call, *next;

		for (call = TAILQ_FIRST(&sv->calls); call; call = next) {
			next = TAILQ_NEXT(call, link);
			if (!sv_valid(sv, call->id))
				sv_call_free(call);
		}
		sv_socks_sweep(sv->socks, sv->c);
	}
	sv_pidfds_drop(x);
}

static void sv_free(struct sv *sv)
{
	if (!sv)
		return;
	while (!TAILQ_EMPTY(&sv->calls)) {
		struct sv_call *call = TAILQ_FIRST(&sv->calls);

		/* the keeper answers from now on; this one goes on untouched */
		if (call->req || call->ev)
			sv_continue(sv, call->id);
		sv_call_free(call);
	}
	if (sv->core)
		ffr_chan_local(sv->core, NULL, NULL);
	TAILQ_REMOVE(&sv->x->svs, sv, link);
	sv->x->nsvs--;
	if (sv->lev)
		event_free(sv->lev);
	if (sv->cev)
		event_free(sv->cev);
	if (sv->cfd >= 0)
		close(sv->cfd);
	if (sv->lfd >= 0)
		close(sv->lfd);
	if (sv->pfd >= 0)
		close(sv->pfd);
	if (sv->pp)
		munmap(sv->pp, sizeof(*sv->pp));
	sv_socks_free(sv->socks);
	free(sv);
}

/* The page of parked calls: written here, sealed so that the keeper's
 * copy can only read it (F_SEAL_FUTURE_WRITE keeps our mapping writable).
 * Without one (no memfd, no seals) the keeper falls back to its rescue. */
static void parked_page(struct sv *sv)
{
	int fd = memfd_create("ffnet-parked", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *p;

	if (fd < 0)
		return;
	if (ftruncate(fd, sizeof(*sv->pp)) < 0 ||
	    (p = mmap(NULL, sizeof(*sv->pp), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
		MAP_FAILED) {
		close(fd);
		return;
	}
	sv->pp = p;
	sv->pp->magic = FF_PARKED_MAGIC;
	sv->pp->nslots = FF_PARKED_SLOTS;
	if (fcntl(fd, F_ADD_SEALS,
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return; /* (the page still serves nobody: no harm) */
	}
	sv->pfd = fd;
}

/* ----------------------------------------------------------- Supervise */

/* A seccomp listener answers ID_VALID for an unknown id with ENOENT; any
 * other file with ENOTTY or EINVAL. */
static bool is_listener(int fd)
{
	uint64_t id = 0;
	struct stat st;

	return fstat(fd, &st) == 0 && !S_ISSOCK(st.st_mode) && !S_ISREG(st.st_mode) &&
	       ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0 && errno == ENOENT;
}

static unsigned svs_of(struct sv_ctx *x, const struct ffr_container *c)
{
	unsigned n = 0;
	struct sv *sv;

	TAILQ_FOREACH(sv, &x->svs, link)
	n += sv->c == c;
	return n;
}

static const struct ffr_feature sv_feature;

static void op_supervise(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct sv_ctx *x = ffr_feature_priv(ch->r, &sv_feature);
	struct sv *sv = NULL;
	int err = 0;

	if (!is_listener(fds[0])) {
		ch->r->bad_messages++;
		err = -EINVAL;
	} else if (x->nsvs >= MAX_SVS || svs_of(x, ch->c) >= MAX_SV_C) {
		err = -ENOBUFS;
	} else if (ffr_fd_budget(ch->r, 4) < 0) {
		err = -EMFILE;
	} else if (!(sv = calloc(1, sizeof(*sv))) || !(sv->socks = sv_socks_new())) {
		free(sv);
		sv = NULL;
		err = -ENOMEM;
	}
	if (err) {
		close(fds[0]);
		ff_warn("%s: seccomp listener of pid %d refused: %s", ch->c->name, (int)ch->pid,
			err == -EINVAL ? "not a seccomp listener" : strerror(-err));
		ffr_reply_status(ch, req->id, ffr_errno_status(err), "supervise: %s",
				 err == -EINVAL ? "not a seccomp listener" : strerror(-err));
		return;
	}
	sv->x = x;
	sv->c = ch->c;
	sv->kch = ch;
	ch->keeper = true;
	sv->pid = ch->pid;
	sv->lfd = fds[0];
	sv->cfd = -1;
	sv->pfd = -1;
	parked_page(sv);
	sv->sup_id = req->id;
	TAILQ_INIT(&sv->calls);
	TAILQ_INSERT_TAIL(&x->svs, sv, link);
	x->nsvs++;
	fcntl(sv->lfd, F_SETFD, FD_CLOEXEC);
	sv->lev = event_new(ch->r->base, sv->lfd, EV_READ | EV_PERSIST, notif_cb, sv);
	err = sv->lev && event_add(sv->lev, NULL) == 0 ? chan_open(sv) : -ENOMEM;
	if (err) {
		sv_free(sv);
		ffr_reply_status(ch, req->id, ffr_errno_status(err), "supervise: %s",
				 strerror(-err));
		return;
	}
	/* answered (sv->sup_id) when the internal channel said Hello: chan_cb */
}

/* The keeper hands back a blocking accept the previous router had parked
 * (Adopt, ff.proto): served as if trapped here, once checked as a
 * notification is (pending, a task of the container; sv_dispatch then
 * checks the fd, and an fd that is no accelerated listener is let
 * through). Only accepts: nothing else is held across routers. */
static void op_adopt(struct ffr_chan *ch, Ff__Request *req, int *fds, int nfds)
{
	struct sv_ctx *x = ffr_feature_priv(ch->r, &sv_feature);
	const Ff__Adopt *m = req->adopt;
	struct seccomp_notif *n;
	struct sv *sv;

	TAILQ_FOREACH(sv, &x->svs, link)
	if (sv->kch == ch && sv->ready)
		break;
	if (!sv || !m || m->n_args != 4 || (m->nr != SYS_accept && m->nr != SYS_accept4) ||
	    !ffr_container_has_pid(sv->c, (pid_t)m->tid) || !sv_valid(sv, m->id) ||
	    call_find(sv, m->id, false)) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INVALID, "adopt: no such call");
		return;
	}
	n = calloc(1, x->sizes.seccomp_notif);
	if (!n) {
		ffr_reply_status(ch, req->id, FF__STATUS__ST_INTERNAL, "adopt: out of memory");
		return;
	}
	n->id = m->id;
	n->pid = m->tid;
	n->data.nr = (int)m->nr;
	n->data.arch = AUDIT_ARCH_X86_64;
	memcpy(n->data.args, m->args, sizeof(uint64_t) * 4);
	x->trapped++;
	sv_dispatch(sv, n);
	free(n);
	ffr_reply_status(ch, req->id, FF__STATUS__ST_OK, NULL);
}

/* ------------------------------------------------------------- feature */

static void sv_chan_free(void *priv, struct ffr_chan *ch)
{
	struct sv_ctx *x = priv;
	struct sv *sv, *next;

	for (sv = TAILQ_FIRST(&x->svs); sv; sv = next) {
		next = TAILQ_NEXT(sv, link);
		if (sv->core == ch)
			sv->core = NULL; /* (its socket's end tells the rest) */
		if (sv->kch == ch)
			sv_free(sv);
	}
}

static void sv_container_free(void *priv, struct ffr_container *c)
{
	struct sv_ctx *x = priv;
	struct sv *sv, *next;

	for (sv = TAILQ_FIRST(&x->svs); sv; sv = next) {
		next = TAILQ_NEXT(sv, link);
		if (sv->c == c)
			sv_free(sv);
	}
}

static void ctx_free(void *priv)
{
	struct sv_ctx *x = priv;

	while (!TAILQ_EMPTY(&x->svs))
		sv_free(TAILQ_FIRST(&x->svs));
	if (x->sweep_ev)
		event_free(x->sweep_ev);
	for (int i = 0; i < 2; i++)
		if (x->scratch[i] >= 0)
			close(x->scratch[i]);
	sv_pidfds_drop(x);
	if (x->guard_ok)
		timer_delete(x->guard);
	free(x);
}

static const struct ffr_feature sv_feature = {
    .name = "seccomp",
    .free = ctx_free,
    .container_free = sv_container_free,
    .chan_free = sv_chan_free,
};

static const struct ffr_op sv_ops[] = {
    {FF__REQUEST__BODY_SUPERVISE, op_supervise, 1, true, false},
    {FF__REQUEST__BODY_ADOPT, op_adopt, 0, true, false},
};

int ffr_unotify_attach(struct ffr_router *r)
{
	struct sv_ctx *x = calloc(1, sizeof(*x));
	struct timeval tv = {SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000};
	int err;

	if (!x)
		return -ENOMEM;
	x->r = r;
	TAILQ_INIT(&x->svs);
	for (int i = 0; i < SV_PIDFDS; i++)
		x->pidfd[i].fd = -1;
	x->scratch[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	x->scratch[1] = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &x->sizes) < 0)
		memset(&x->sizes, 0, sizeof(x->sizes));
	if (x->sizes.seccomp_notif < sizeof(struct seccomp_notif))
		x->sizes.seccomp_notif = sizeof(struct seccomp_notif);
	err = ffr_feature_add(r, &sv_feature, x);
	if (err < 0) {
		ctx_free(x);
		return err;
	}
	/* from here on the router frees x */
	x->sweep_ev = event_new(r->base, -1, EV_PERSIST, sweep_cb, x);
	if (!x->sweep_ev || event_add(x->sweep_ev, &tv) < 0)
		return -ENOMEM;
	return ffr_ops_add(r, sv_ops, sizeof(sv_ops) / sizeof(sv_ops[0]));
}
