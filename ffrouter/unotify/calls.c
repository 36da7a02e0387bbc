/* The trapped calls, answered as the shim answers them:
 * - connect to an overlay address (or outside it, policy host): the core's
 *   Connect; the socket it hands back replaces the app's at the same fd
 *   number (ADDFD SETFD), with the app's flags and socket options;
 * - listen on an address the container owns: the kernel listen, then the
 *   core's Listen; the app's end of the accept queue replaces the socket;
 * - accept on such a queue: one queued connection, returned as the call's
 *   result (ADDFD SEND) with the peer's address written as accept's;
 * - getsockname/getpeername, and the options of an accelerated socket,
 *   answer as TCP with the overlay's addresses;
 * - sendto with an address on an accelerated same-host socket: TCP
 *   ignores the address of a connected socket, AF_UNIX refuses it
 *   (EISCONN), so the supervisor sends the bytes without it.
 * - bind, and listen: first, the listeners the program closed are ended,
 *   so that their port is free at once, as after TCP's close;
 * Anything else, and any failure before the app saw a result, continues
 * untouched: the kernel does what it would have done without ffnet. */
#include "internal.h"

#include "fdpass.h"
#include "log.h"
#include "msg.h"

#include <ff/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OPTLEN_MAX 256

static int sock_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, level, name, &v, &len) == 0 ? v : -1;
}

/* The app's TCP socket family, or 0 if fd is not an AF_INET/6 TCP socket
 * (protocol TCP: a stream socket, MPTCP has its own number). */
static int tcp_family(int fd)
{
	int d = sock_int(fd, SOL_SOCKET, SO_DOMAIN);

	if ((d != AF_INET && d != AF_INET6) || sock_int(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP)
		return 0;
	return d;
}

static int sock_name(int fd, struct ff_sa *sa, bool peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
		     : getsockname(fd, (struct sockaddr *)&ss, &len);

	return r < 0 ? -errno : ff_sa_from_sockaddr(sa, (struct sockaddr *)&ss, len);
}

/* tcp_family, and the socket's name, in one syscall less: the family
 * comes with the name. */
static int tcp_family_name(int fd, struct ff_sa *name)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
	    sock_int(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP ||
	    ff_sa_from_sockaddr(name, (struct sockaddr *)&ss, len) < 0)
		return 0;
	return ss.ss_family;
}

/* What an accelerated socket of sv's container is, by the app's file. */
static int lookup(struct sv *sv, int afd, struct ffr_sock_info *si, struct sv_sock **s)
{
	ino_t ino = ffr_fd_ino(afd);

	if (ffr_sock_lookup(sv->c, ino, si) < 0)
		return -ENOENT;
	*s = sv_sock_get(sv->socks, ino, true);
	if (*s && !(*s)->family)
		(*s)->family = si->local.ip.family;
	return *s ? 0 : -ENOMEM;
}

/* ------------------------------------------------ options of the swap */

/* The options a swap carries over (copy_opts), in the order it reads them. */
static const struct {
	int level, name;
	bool buf;
} copied[] = {
    {SOL_SOCKET, SO_SNDBUF, true},
    {SOL_SOCKET, SO_RCVBUF, true},
    {SOL_SOCKET, SO_KEEPALIVE, false},
    {SOL_SOCKET, SO_LINGER, false},
    {SOL_SOCKET, SO_RCVLOWAT, false},
    {SOL_SOCKET, SO_PRIORITY, false},
    {SOL_SOCKET, SO_MARK, false},
    {SOL_SOCKET, SO_RCVTIMEO_NEW, false},
    {SOL_SOCKET, SO_SNDTIMEO_NEW, false},
    {IPPROTO_TCP, TCP_NODELAY, false},
    {IPPROTO_TCP, TCP_CORK, false},
    {IPPROTO_TCP, TCP_KEEPIDLE, false},
    {IPPROTO_TCP, TCP_KEEPINTVL, false},
    {IPPROTO_TCP, TCP_KEEPCNT, false},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, false},
    {IPPROTO_TCP, TCP_NOTSENT_LOWAT, false},
    {IPPROTO_TCP, TCP_CONGESTION, false},
    {IPPROTO_IP, IP_TOS, false},
    {IPPROTO_IP, IP_TTL, false},
    {IPPROTO_IPV6, IPV6_V6ONLY, false},
    {IPPROTO_IPV6, IPV6_TCLASS, false},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS, false},
};
_Static_assert(sizeof(copied) / sizeof(copied[0]) == SV_NOPTS, "SV_NOPTS");

static bool copied_applies(size_t i, int family)
{
	return (copied[i].level == IPPROTO_IPV6) == (family == AF_INET6) ||
	       copied[i].level == SOL_SOCKET || copied[i].level == IPPROTO_TCP;
}

/* A fresh TCP socket's values of the copied options, read once per family
 * (every connect compares against them). */
static void opt_defaults(struct sv_ctx *x, int v6)
{
	int ref = x->scratch[v6];

	for (size_t i = 0; i < SV_NOPTS; i++) {
		x->def[v6][i].len = sizeof(x->def[v6][i].v);
		x->def[v6][i].ok = getsockopt(ref, copied[i].level, copied[i].name, x->def[v6][i].v,
					      &x->def[v6][i].len) == 0;
	}
	x->def_ready[v6] = true;
}

/* Options the app set on its socket (they differ from a fresh socket's)
 * onto the socket that replaces it: socket-level ones set, TCP and IP ones
 * set as well if that is TCP, else kept in rec (an AF_UNIX socket has
 * none, the supervisor answers for them). The IP and TCP levels are read
 * only if the program ever set one on a socket of its own (ipopts): those
 * setsockopt calls are trapped, the socket level's are not. Each read is
 * a syscall on every connect. */
static void copy_opts(struct sv_ctx *x, int family, int from, int to, struct sv_sock *rec,
		      bool ipopts)
{
	int v6 = family == AF_INET6;

	if (!x->def_ready[v6])
		opt_defaults(x, v6);
	for (size_t i = 0; i < SV_NOPTS; i++) {
		uint8_t a[32];
		socklen_t la = sizeof(a);

		if (!copied_applies(i, family) || !x->def[v6][i].ok ||
		    (!ipopts && copied[i].level != SOL_SOCKET) ||
		    getsockopt(from, copied[i].level, copied[i].name, a, &la) < 0 ||
		    (la == x->def[v6][i].len && !memcmp(a, x->def[v6][i].v, la)))
			continue;
		if (copied[i].buf && la == sizeof(int)) { /* the kernel doubles what is set */
			int v;

			memcpy(&v, a, sizeof(v));
			v /= 2;
			memcpy(a, &v, sizeof(v));
		}
		if (copied[i].level == SOL_SOCKET || !rec)
			setsockopt(to, copied[i].level, copied[i].name, a, la);
		else
			sv_sock_opt_set(rec, copied[i].level, copied[i].name, a, la);
	}
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && !!(fl & O_NONBLOCK) != on)
		fcntl(fd, F_SETFL, fl ^ O_NONBLOCK);
}

/* ----------------------------------------------------------- connect */

static int refusal(Ff__Status st)
{
	switch (st) {
	case FF__STATUS__ST_REFUSED:
		return ECONNREFUSED;
	case FF__STATUS__ST_UNREACH:
		return EHOSTUNREACH;
	case FF__STATUS__ST_TIMEDOUT:
		return ETIMEDOUT;
	default:
		return 0;
	}
}

/* A non-blocking TCP connect learns of a refusal later, through POLLOUT
 * and SO_ERROR: have the app's own socket refused in its own namespace
 * (nothing listens on port 0) and report what its connect said. */
static int refuse_later(int afd, int family)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;

	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		len = sizeof(*in6);
	}
	if (connect(afd, (struct sockaddr *)&ss, len) == 0)
		return -ECONNREFUSED;
	return -errno;
}

static void connect_reply(struct sv_call *call, const Ff__Reply *rep, int *fds, int nfds)
{
	struct sv *sv = call->sv;
	struct sv_sock *s;
	bool unix_end;
	int err;

	if (rep->status || nfds != 1 || rep->body_case != FF__REPLY__BODY_CONNECT) {
		err = rep->status ? refusal(rep->status) : 0;
		if (!err)
			sv_continue(sv, call->id);
		else if (err == ECONNREFUSED && call->nonblock)
			sv_answer(sv, call->id, 0, refuse_later(call->afd, call->family));
		else
			sv_answer(sv, call->id, 0, -err);
		ff_close_fds(fds, nfds);
		return;
	}
	s = sv_sock_get(sv->socks, ffr_fd_ino(fds[0]), true);
	if (s) {
		s->family = call->family;
		s->connecting = call->nonblock;
	}
	unix_end = rep->connect->path == FF__PATH__PATH_SAME_HOST;
	copy_opts(sv->x, call->family, call->afd, fds[0], unix_end ? s : NULL, sv->ip_opts_set);
	set_nonblock(fds[0], call->nonblock);
	err = sv_addfd(sv, call->id, fds[0], call->fdnum, call->cloexec);
	if (err < 0) {
		/* the app's socket is still there: the kernel's connect */
		sv_continue(sv, call->id);
		if (s)
			sv_sock_del(sv->socks, s->ino);
	} else {
		/* a non-blocking TCP connect says EINPROGRESS even on loopback */
		sv_answer(sv, call->id, 0, call->nonblock ? -EINPROGRESS : 0);
	}
	ff_close_fds(fds, nfds);
}

static void do_connect(struct sv *sv, const struct seccomp_notif *n, int afd)
{
	socklen_t len = (socklen_t)n->data.args[2];
	struct sockaddr_storage ss;
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Connect m = FF__CONNECT__INIT;
	Ff__Addr dmsg, smsg;
	uint8_t dip[16], sip[16];
	struct ffr_sock_info si;
	struct ff_sa dst, src, peer;
	struct sv_sock *s;
	struct sv_call *call;
	int fam;

	if (lookup(sv, afd, &si, &s) == 0) {
		if (si.kind == FF_KIND_CONN && s->connecting) {
			s->connecting = false;
			sv_answer(sv, n->id, 0, 0);
		} else {
			sv_answer(sv, n->id, 0, -EISCONN);
		}
		goto out_close;
	}
	fam = tcp_family_name(afd, &src);
	if (!fam || len > sizeof(ss) || sv_mem_read((pid_t)n->pid, n->data.args[1], &ss, len) < 0 ||
	    ss.ss_family != fam || ff_sa_from_sockaddr(&dst, (struct sockaddr *)&ss, len) < 0 ||
	    !dst.port || !ff_ip_is_unicast(&dst.ip) || sock_name(afd, &peer, true) == 0)
		goto out_continue;
	if (fam == AF_INET6 && dst.ip.family == AF_INET && sock_int(afd, IPPROTO_IPV6, IPV6_V6ONLY))
		goto out_continue;
	if (!ffr_container_by_ip(sv->x->r, &dst.ip)) {
		if (sv->c->policy != FFR_POLICY_HOST)
			goto out_continue;
		m.outside = true;
	}
	ff_sa_to_proto(&dst, &dmsg, dip);
	m.dst = &dmsg;
	if (src.port) {
		ff_sa_to_proto(&src, &smsg, sip);
		m.src = &smsg;
	}
	req.body_case = FF__REQUEST__BODY_CONNECT;
	req.connect = &m;
	call = sv_call_new(sv, SV_CONNECT, n, afd);
	if (!call)
		goto out_continue_closed;
	call->family = fam;
	call->nonblock = fcntl(afd, F_GETFL) & O_NONBLOCK;
	call->cloexec = sv_fd_cloexec(call->tid, call->fdnum);
	if (sv_call_request(call, &req, NULL, 0) < 0) {
		sv_call_free(call);
		goto out_continue_closed;
	}
	return;
out_continue:
	close(afd);
out_continue_closed:
	sv_continue(sv, n->id);
	return;
out_close:
	close(afd);
}

/* ------------------------------------------------------------- listen */

static void listen_reply(struct sv_call *call, const Ff__Reply *rep, int *fds, int nfds)
{
	struct sv *sv = call->sv;
	struct sv_sock *s;

	/* the kernel socket listens already: refused, it stays the app's */
	if (!rep->status && nfds == 2 && rep->body_case == FF__REPLY__BODY_LISTEN) {
		set_nonblock(fds[0], call->nonblock);
		if (sv_addfd(sv, call->id, fds[0], call->fdnum, call->cloexec) >= 0) {
			s = sv_sock_get(sv->socks, ffr_fd_ino(fds[0]), true);
			if (s)
				s->family = call->family;
			/* for the keeper: without it the queue would end with
			 * this router, EOF in the program's accept */
			if (ffr_listener_keep(sv->kch, rep->listen->listener_id) < 0)
				ff_warn("%s: the keeper of pid %d did not take a listener: it "
					"ends with this router",
					sv->c->name, (int)sv->pid);
		}
	}
	sv_answer(sv, call->id, 0, 0);
	ff_close_fds(fds, nfds);
}

static void do_listen(struct sv *sv, const struct seccomp_notif *n, int afd)
{
	Ff__Request req = FF__REQUEST__INIT;
	struct ff_listen_msg lm;
	struct ffr_sock_info si;
	struct ff_sa bound;
	struct sv_sock *s;
	struct sv_call *call;
	int fam;

	if (lookup(sv, afd, &si, &s) == 0) { /* again: only the backlog changes */
		sv_answer(sv, n->id, 0, si.kind == FF_KIND_LISTENER ? 0 : -EINVAL);
		close(afd);
		return;
	}
	fam = tcp_family(afd);
	if (!fam) {
		close(afd);
		sv_continue(sv, n->id);
		return;
	}
	/* a listener the program closed just now may hold the port still */
	ffr_listeners_reap(sv->c);
	if (listen(afd, (int)n->data.args[1]) < 0) {
		sv_answer(sv, n->id, 0, -errno);
		close(afd);
		return;
	}
	if (sock_name(afd, &bound, false) < 0 ||
	    (!ff_ip_is_any(&bound.ip) && !ffr_container_owns_ip(sv->c, &bound.ip))) {
		sv_answer(sv, n->id, 0, 0);
		close(afd);
		return;
	}
	ff_listen_to_proto(&lm, &bound, (int32_t)n->data.args[1],
			   fam == AF_INET6 && sock_int(afd, IPPROTO_IPV6, IPV6_V6ONLY) == 1, 0);
	req.body_case = FF__REQUEST__BODY_LISTEN;
	req.listen = &lm.m;
	call = sv_call_new(sv, SV_LISTEN, n, afd);
	if (!call) {
		sv_answer(sv, n->id, 0, 0);
		return;
	}
	call->family = fam;
	call->nonblock = fcntl(afd, F_GETFL) & O_NONBLOCK;
	call->cloexec = sv_fd_cloexec(call->tid, call->fdnum);
	if (sv_call_request(call, &req, &afd, 1) < 0) {
		sv_answer(sv, n->id, 0, 0);
		sv_call_free(call);
	}
}

/* ------------------------------------------------------------- accept */

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
	sv_accept_retry(arg);
}

/* Hands connection nfd (consumed) to the task; false if it could not, and
 * the connection went back to the queue. */
static bool accept_deliver(struct sv_call *call, const Ff__Accepted *a, int nfd)
{
	struct sv *sv = call->sv;
	struct ffr_sock_info si;
	struct ff_sa peer;
	struct sv_sock *s;
	int err;

	if (ff_sa_from_proto(&peer, a->peer) < 0) {
		close(nfd);
		return false;
	}
	set_nonblock(nfd, call->aflags & SOCK_NONBLOCK);
	err = sv_put_addr(call->tid, call->addr, call->lenp, &peer, call->family);
	if (err == -EFAULT || err == -EINVAL) { /* as the kernel: the connection is lost */
		sv_answer(sv, call->id, 0, err);
		close(nfd);
		return true;
	}
	if (!err && a->path != FF__PATH__PATH_NONE &&
	    (s = sv_sock_get(sv->socks, ffr_fd_ino(nfd), true)))
		s->family = call->family;
	if (!err && sv_addfd(sv, call->id, nfd, -1, call->aflags & SOCK_CLOEXEC) >= 0) {
		close(nfd);
		return true;
	}
	/* the task went away meanwhile: the next accept gets it */
	if (ffr_sock_lookup(sv->c, ffr_fd_ino(call->afd), &si) == 0 && si.l)
		ffr_listener_push(si.l, a, nfd);
	else
		close(nfd);
	return false;
}

void sv_accept_retry(struct sv_call *call)
{
	struct sv *sv = call->sv;

	if (call->ev) {
		event_free(call->ev);
		call->ev = NULL;
	}
	for (;;) {
		uint8_t buf[512];
		int fds[FF_MAX_FDS], nfds = 0;
		ssize_t r;
		Ff__Accepted *a;
		bool done;

		if (!sv_valid(sv, call->id))
			break;
		r = ff_recv_fds(call->afd, buf, sizeof(buf), fds, 1, &nfds, MSG_DONTWAIT);
		if (r == -EMSGSIZE || r == -ETOOMANYREFS)
			continue;
		if (r == -EAGAIN && !call->nonblock) {
			call->ev = event_new(sv->x->r->base, call->afd, EV_READ, accept_cb, call);
			if (call->ev && event_add(call->ev, NULL) == 0)
				return;
			r = -ENOMEM;
		}
		if (r <= 0) {
			sv_answer(sv, call->id, 0, r == 0 ? -EINVAL : (int)r);
			break;
		}
		a = (Ff__Accepted *)ff_msg_unpack(&ff__accepted__descriptor, buf, (size_t)r);
		if (!a || nfds != 1) {
			if (a)
				ff__accepted__free_unpacked(a, NULL);
			ff_close_fds(fds, nfds);
			continue;
		}
		done = accept_deliver(call, a, fds[0]);
		ff__accepted__free_unpacked(a, NULL);
		if (done || !sv_valid(sv, call->id))
			break;
	}
	sv_call_free(call);
}

static void do_accept(struct sv *sv, const struct seccomp_notif *n, int afd)
{
	int flags = n->data.nr == SYS_accept4 ? (int)n->data.args[3] : 0;
	struct ffr_sock_info si;
	struct sv_sock *s;
	struct sv_call *call;

	if (lookup(sv, afd, &si, &s) < 0 || si.kind != FF_KIND_LISTENER) {
		close(afd);
		sv_continue(sv, n->id);
		return;
	}
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
		close(afd);
		sv_answer(sv, n->id, 0, -EINVAL);
		return;
	}
	call = sv_call_new(sv, SV_ACCEPT, n, afd);
	if (!call) {
		sv_answer(sv, n->id, 0, -ENOMEM);
		return;
	}
	call->aflags = flags;
	call->addr = n->data.args[1];
	call->lenp = n->data.args[2];
	call->family = s->family;
	call->nonblock = fcntl(afd, F_GETFL) & O_NONBLOCK;
	sv_accept_retry(call);
}

/* ------------------------------------------------------------- sendto */

#define SEND_MAX (256 * 1024) /* bytes one trapped sendto moves; a stream may send less */

static void send_cb(evutil_socket_t fd, short what, void *arg)
{
	sv_send_retry(arg);
}

/* One try: the bytes from the task's memory (read again on each try: the
 * task waits in the call, its buffer is its own), sent without blocking
 * the loop; a blocking app's call waits for room. */
void sv_send_retry(struct sv_call *call)
{
	struct sv *sv = call->sv;
	uint8_t *buf = NULL;
	ssize_t r;
	int err;

	if (call->ev) {
		event_free(call->ev);
		call->ev = NULL;
	}
	if (!sv_valid(sv, call->id))
		goto out;
	if (call->len && !(buf = malloc(call->len))) {
		sv_answer(sv, call->id, 0, -ENOMEM);
		goto out;
	}
	err = sv_mem_read(call->tid, call->buf, buf, call->len);
	if (err) {
		sv_answer(sv, call->id, 0, err == -ESRCH ? -EINTR : err);
		goto out;
	}
	r = send(call->afd, buf, call->len, call->sflags | MSG_DONTWAIT | MSG_NOSIGNAL);
	err = r < 0 ? -errno : 0;
	free(buf);
	buf = NULL;
	if (err == -EAGAIN && !call->nonblock && !(call->sflags & MSG_DONTWAIT)) {
		call->ev = event_new(sv->x->r->base, call->afd, EV_WRITE, send_cb, call);
		if (call->ev && event_add(call->ev, NULL) == 0)
			return;
		err = -ENOMEM;
	}
	/* as TCP: a write to a closed connection raises SIGPIPE unless asked not to */
	if (err == -EPIPE && !(call->sflags & MSG_NOSIGNAL))
		syscall(SYS_tgkill, sv_tgid(call->tid), call->tid, SIGPIPE);
	sv_answer(sv, call->id, err ? 0 : r, err);
out:
	free(buf);
	sv_call_free(call);
}

static void do_sendto(struct sv *sv, const struct seccomp_notif *n, int afd)
{
	struct ffr_sock_info si;
	struct sv_sock *s;
	struct sv_call *call;
	int flags = (int)n->data.args[3];

	/* only the same-host path's AF_UNIX ends refuse the address; a TCP
	 * socket (the other paths) ignores it */
	if (lookup(sv, afd, &si, &s) < 0 || si.kind != FF_KIND_CONN ||
	    si.path != FF__PATH__PATH_SAME_HOST || (flags & (MSG_OOB | MSG_FASTOPEN))) {
		close(afd);
		sv_continue(sv, n->id);
		return;
	}
	call = sv_call_new(sv, SV_SEND, n, afd);
	if (!call) {
		sv_answer(sv, n->id, 0, -ENOMEM);
		return;
	}
	call->buf = n->data.args[1];
	call->len = n->data.args[2] < SEND_MAX ? (size_t)n->data.args[2] : SEND_MAX;
	call->sflags = flags & (MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE | MSG_EOR | MSG_CONFIRM);
	call->nonblock = fcntl(afd, F_GETFL) & O_NONBLOCK;
	sv_send_retry(call);
}

/* -------------------------------------------------- names and options */

static void do_name(struct sv *sv, const struct seccomp_notif *n, int afd)
{
	bool peer = n->data.nr == SYS_getpeername;
	struct ffr_sock_info si;
	struct ff_sa sa;
	struct sv_sock *s;
	int err = 0;

	if (lookup(sv, afd, &si, &s) < 0) {
		close(afd);
		sv_continue(sv, n->id);
		return;
	}
	if (si.kind == FF_KIND_LISTENER)
		err = peer ? -ENOTCONN : sock_name(si.kfd, &sa, false);
	else
		sa = peer ? si.peer : si.local;
	if (!err)
		err = sv_put_addr((pid_t)n->pid, n->data.args[1], n->data.args[2], &sa, s->family);
	sv_answer(sv, n->id, 0, err);
	close(afd);
}

/* The option's length the app offers, bounded. */
static int opt_len(const struct seccomp_notif *n, uint64_t lenp, socklen_t *len)
{
	int err = sv_mem_read((pid_t)n->pid, lenp, len, sizeof(*len));

	if (err)
		return err;
	if ((int)*len < 0)
		return -EINVAL;
	if (*len > OPTLEN_MAX)
		*len = OPTLEN_MAX;
	return 0;
}

/* getsockopt on an accelerated same-host socket: what TCP would say. */
static int conn_getopt(struct sv *sv, const struct sv_sock *s, int level, int name, void *val,
		       socklen_t *len)
{
	const void *rec;
	socklen_t rlen;
	int v;

	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_DOMAIN:
			v = s->family;
			break;
		case SO_PROTOCOL:
			v = IPPROTO_TCP;
			break;
		default:
			return 1; /* the AF_UNIX socket answers as TCP would */
		}
		if (*len > sizeof(v))
			*len = sizeof(v);
		memcpy(val, &v, *len);
		return 0;
	}
	rec = sv_sock_opt(s, level, name, &rlen);
	if (rec) {
		if (*len > rlen)
			*len = rlen;
		memcpy(val, rec, *len);
		return 0;
	}
	if (getsockopt(sv->x->scratch[s->family == AF_INET6], level, name, val, len) < 0)
		return -errno;
	/* an unconnected socket's, but the connection is established */
	if (level == IPPROTO_TCP && name == TCP_INFO && *len >= 1)
		((struct tcp_info *)val)->tcpi_state = TCP_ESTABLISHED;
	return 0;
}

static void do_getsockopt(struct sv *sv, const struct seccomp_notif *n, int afd)
{
	int level = (int)n->data.args[1], name = (int)n->data.args[2], err;
	struct ffr_sock_info si;
	struct sv_sock *s;
	uint8_t val[OPTLEN_MAX];
	socklen_t len;

	if (lookup(sv, afd, &si, &s) < 0 ||
	    (si.kind == FF_KIND_CONN && si.path != FF__PATH__PATH_SAME_HOST)) {
		close(afd);
		sv_continue(sv, n->id);
		return;
	}
	err = opt_len(n, n->data.args[4], &len);
	if (!err && si.kind == FF_KIND_LISTENER)
		err = getsockopt(si.kfd, level, name, val, &len) < 0 ? -errno : 0;
	else if (!err)
		err = conn_getopt(sv, s, level, name, val, &len);
	if (err == 1) {
		close(afd);
		sv_continue(sv, n->id);
		return;
	}
	if (!err)
		err = sv_mem_write((pid_t)n->pid, n->data.args[3], val, len);
	if (!err)
		err = sv_mem_write((pid_t)n->pid, n->data.args[4], &len, sizeof(len));
	sv_answer(sv, n->id, 0, err);
	close(afd);
}

/* setsockopt on an accelerated same-host socket: checked by a fresh TCP
 * socket of the app's family (the kernel's bounds), then kept. */
static int conn_setopt(struct sv_sock *s, int level, int name, const void *val, socklen_t len)
{
	int t = socket(s->family, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (t < 0)
		return -errno;
	err = setsockopt(t, level, name, val, len) < 0 ? -errno : 0;
	close(t);
	return err ? err : sv_sock_opt_set(s, level, name, val, len);
}

static void do_setsockopt(struct sv *sv, const struct seccomp_notif *n, int afd)
{
	int level = (int)n->data.args[1], name = (int)n->data.args[2], err;
	socklen_t len = (socklen_t)n->data.args[4];
	struct ffr_sock_info si;
	struct sv_sock *s;
	uint8_t val[OPTLEN_MAX];

	if (lookup(sv, afd, &si, &s) < 0 ||
	    (si.kind == FF_KIND_CONN && si.path != FF__PATH__PATH_SAME_HOST)) {
		/* (a socket of the kernel's now: from here on, a connect copies
		 * the IP and TCP levels too) */
		sv->ip_opts_set = true;
		close(afd);
		sv_continue(sv, n->id);
		return;
	}
	if ((int)len < 0 || len > OPTLEN_MAX)
		err = -EINVAL;
	else
		err = sv_mem_read((pid_t)n->pid, n->data.args[3], val, len);
	if (!err && si.kind == FF_KIND_LISTENER)
		err = setsockopt(si.kfd, level, name, val, len) < 0 ? -errno : 0;
	else if (!err)
		err = conn_setopt(s, level, name, val, len);
	sv_answer(sv, n->id, 0, err);
	close(afd);
}

/* ---------------------------------------------------------- dispatch */

void sv_dispatch(struct sv *sv, const struct seccomp_notif *n)
{
	int afd;

	switch (n->data.nr) {
	case SYS_bind: /* on a port a listener the program just closed holds */
		ffr_listeners_reap(sv->c);
		sv_continue(sv, n->id);
		return;
	case SYS_connect:
	case SYS_listen:
	case SYS_accept:
	case SYS_accept4:
	case SYS_getsockname:
	case SYS_getpeername:
	case SYS_getsockopt:
	case SYS_setsockopt:
	case SYS_sendto:
		break;
	default:
		sv_continue(sv, n->id);
		return;
	}
	afd = sv_getfd(sv, n, (int)n->data.args[0]);
	if (afd < 0) { /* a bad fd: the kernel says so */
		sv_continue(sv, n->id);
		return;
	}
	switch (n->data.nr) {
	case SYS_connect:
		do_connect(sv, n, afd);
		break;
	case SYS_listen:
		do_listen(sv, n, afd);
		break;
	case SYS_accept:
	case SYS_accept4:
		do_accept(sv, n, afd);
		break;
	case SYS_getsockname:
	case SYS_getpeername:
		do_name(sv, n, afd);
		break;
	case SYS_getsockopt:
		do_getsockopt(sv, n, afd);
		break;
	case SYS_sendto:
		do_sendto(sv, n, afd);
		break;
	default:
		do_setsockopt(sv, n, afd);
		break;
	}
}

void sv_call_reply(struct sv_call *call, const Ff__Reply *rep, int *fds, int nfds)
{
	if (call->kind == SV_CONNECT)
		connect_reply(call, rep, fds, nfds);
	else if (call->kind == SV_LISTEN)
		listen_reply(call, rep, fds, nfds);
	else
		ff_close_fds(fds, nfds);
	sv_call_free(call);
}
