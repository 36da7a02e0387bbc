/* The admin channel's client: connect, Hello, request and reply pieces
 * (admin.h). A reply may come in pieces (rep->more); the last piece, or
 * the first failed one, ends it. Replies with another id (none are sent
 * today) are skipped. */
#include "admin.h"

#include "fdpass.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PIECES 100000

static int fail(struct ff_admin *a, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct ff_admin *a, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
	return err < 0 ? err : -err;
}

void ff_admin_replies_free(Ff__Reply **reps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ff__reply__free_unpacked(reps[i], NULL);
	free(reps);
}

const char *ff_admin_reply_error(const Ff__Reply *rep)
{
	return rep->error && *rep->error ? rep->error : strerror(ff_status_errno(rep->status));
}

static int recv_one(struct ff_admin *a, uint8_t *buf, Ff__Reply **out)
{
	ProtobufCMessage *m;
	int fds[FF_MAX_FDS], nfds, r;

	r = ff_msg_recv(a->fd, &ff__reply__descriptor, buf, FF_MSG_MAX, &m, fds, FF_MAX_FDS,
			&nfds, 0);
	if (r == 0)
		return fail(a, ECONNRESET, "the router closed the connection");
	if (r < 0)
		return fail(a, r, "reading the router's reply: %s", strerror(-r));
	ff_close_fds(fds, nfds);
	*out = (Ff__Reply *)m;
	return 0;
}

int ff_admin_call(struct ff_admin *a, Ff__Request *req, Ff__Reply ***reps, size_t *n)
{
	uint8_t *buf = malloc(FF_MSG_MAX);
	Ff__Reply **v = NULL;
	size_t cnt = 0;
	int err;

	if (!buf)
		return fail(a, ENOMEM, "reply buffer: %s", strerror(ENOMEM));
	req->id = ++a->next_id;
	err = ff_msg_send(a->fd, &req->base, NULL, 0);
	if (err) {
		err = fail(a, err, "sending the request: %s", strerror(-err));
		goto out_fail;
	}
	for (;;) {
		Ff__Reply *rep = NULL, **nv;

		err = recv_one(a, buf, &rep);
		if (err)
			goto out_fail;
		if (rep->id != req->id && rep->id != 0) {
			ff__reply__free_unpacked(rep, NULL);
			continue;
		}
		nv = cnt < MAX_PIECES ? realloc(v, (cnt + 1) * sizeof(*v)) : NULL;
		if (!nv) {
			/* v still holds the pieces so far: freed below */
			ff__reply__free_unpacked(rep, NULL);
			err = fail(a, ENOMEM, "too many reply pieces");
			goto out_fail;
		}
		v = nv;
		v[cnt++] = rep;
		if (!rep->more || rep->status)
			break;
	}
	free(buf);
	*reps = v;
	*n = cnt;
	return 0;
out_fail:
	free(buf);
	ff_admin_replies_free(v, cnt);
	return err;
}

static int hello(struct ff_admin *a)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	Ff__Reply **reps;
	size_t n;
	int err;

	h.version = FF_PROTO_VERSION;
	h.role = (char *)"ctl";
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	err = ff_admin_call(a, &req, &reps, &n);
	if (err)
		return err;
	if (reps[0]->status)
		err = fail(a, ff_status_errno(reps[0]->status), "hello: %s",
			   ff_admin_reply_error(reps[0]));
	ff_admin_replies_free(reps, n);
	return err;
}

int ff_admin_open(struct ff_admin *a, const char *rundir)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int err;

	a->fd = -1;
	a->next_id = 0;
	a->err[0] = 0;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", rundir, FF_SOCK_NAME) >=
	    sizeof(sun.sun_path))
		return fail(a, ENAMETOOLONG, "run directory path too long: %s", rundir);
	a->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (a->fd < 0)
		return fail(a, errno, "socket: %s", strerror(errno));
	if (connect(a->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = fail(a, errno, "cannot reach ffrouter at %s: %s (is the router running?)",
			   sun.sun_path, strerror(errno));
		goto out_close;
	}
	err = hello(a);
	if (!err)
		return 0;
out_close:
	ff_admin_close(a);
	return err;
}

void ff_admin_close(struct ff_admin *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}
