/* ffctl's side of the admin channel: connect, Hello, request/replies. */
#include "ffctl.h"

#include "fdpass.h"
#include "msg.h"

#include <ff/wire.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PIECES 100000

static int transport_err(struct ffc_ctx *ctx, const char *what, int err)
{
	fprintf(stderr, "ffctl: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return 1;
}

static int hello(struct ffc_ctx *ctx)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Hello h = FF__HELLO__INIT;
	Ff__Reply **reps;
	size_t n;
	int rc;

	h.version = FF_PROTO_VERSION;
	h.role = (char *)"ctl";
	req.body_case = FF__REQUEST__BODY_HELLO;
	req.hello = &h;
	if (ffc_call(ctx, &req, &reps, &n))
		return 1;
	rc = reps[0]->status ? ffc_fail(reps[0], "hello") : 0;
	ffc_replies_free(reps, n);
	return rc;
}

int ffc_connect(struct ffc_ctx *ctx)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", ctx->rundir,
			     FF_SOCK_NAME) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "ffctl: run directory path too long: %s\n", ctx->rundir);
		return 1;
	}
	ctx->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (ctx->fd < 0)
		return transport_err(ctx, "socket", errno);
	if (connect(ctx->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "ffctl: cannot reach ffrouter at %s: %s (is the router running?)\n",
			sun.sun_path, strerror(errno));
		return 1;
	}
	return hello(ctx);
}

void ffc_replies_free(Ff__Reply **reps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ff__reply__free_unpacked(reps[i], NULL);
	free(reps);
}

static int recv_one(struct ffc_ctx *ctx, uint8_t *buf, Ff__Reply **out)
{
	ProtobufCMessage *m;
	int fds[FF_MAX_FDS], nfds, r;

	r = ff_msg_recv(ctx->fd, &ff__reply__descriptor, buf, FF_MSG_MAX, &m, fds, FF_MAX_FDS,
			&nfds, 0);
	if (r == 0) {
		fprintf(stderr, "ffctl: the router closed the connection\n");
		return 1;
	}
	if (r < 0)
		return transport_err(ctx, "reading the router's reply", r);
	ff_close_fds(fds, nfds);
	*out = (Ff__Reply *)m;
	return 0;
}

int ffc_call(struct ffc_ctx *ctx, Ff__Request *req, Ff__Reply ***reps, size_t *n)
{
	uint8_t *buf = malloc(FF_MSG_MAX);
	Ff__Reply **v = NULL;
	size_t cnt = 0;
	int err;

	if (!buf)
		return transport_err(ctx, "reply buffer", ENOMEM);
	req->id = ++ctx->next_id;
	err = ff_msg_send(ctx->fd, &req->base, NULL, 0);
	if (err) {
		free(buf);
		return transport_err(ctx, "sending the request", err);
	}
	for (;;) {
		Ff__Reply *rep, **nv;

		if (recv_one(ctx, buf, &rep))
			goto out_fail;
		if (rep->id != req->id && rep->id != 0) {
			ff__reply__free_unpacked(rep, NULL);
			continue;
		}
		nv = cnt < MAX_PIECES ? realloc(v, (cnt + 1) * sizeof(*v)) : NULL;
		if (!nv) {
			/* v still holds the pieces so far: freed below */
			ff__reply__free_unpacked(rep, NULL);
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
	ffc_replies_free(v, cnt);
	return 1;
}

int ffc_fail(const Ff__Reply *rep, const char *what)
{
	fprintf(stderr, "ffctl: %s: %s\n", what,
		rep->error && *rep->error ? rep->error : strerror(ff_status_errno(rep->status)));
	return 1;
}

int ffc_query(struct ffc_ctx *ctx, int argc, char **argv, const char *name, Ff__Request *req,
	      Ff__Reply__BodyCase want, void (*print)(struct ffc_ctx *, Ff__Reply **, size_t))
{
	Ff__Reply **reps;
	size_t n;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json")) {
			fprintf(stderr, "usage: ffctl %s [--json]\n", name);
			return 2;
		}
		ctx->json = true;
	}
	if (ffc_connect(ctx) || ffc_call(ctx, req, &reps, &n))
		return 1;
	if (reps[0]->status)
		rc = ffc_fail(reps[0], name);
	for (size_t k = 0; !rc && k < n; k++)
		if (reps[k]->body_case != want) {
			fprintf(stderr, "ffctl: %s: unexpected reply from the router\n", name);
			rc = 1;
		}
	if (!rc)
		print(ctx, reps, n);
	ffc_replies_free(reps, n);
	return rc;
}

int ffc_change(struct ffc_ctx *ctx, Ff__Request *req, const char *what, const char *fmt, ...)
{
	Ff__Reply **reps;
	va_list ap;
	size_t n;
	int rc = 0;

	if (ffc_connect(ctx) || ffc_call(ctx, req, &reps, &n))
		return 1;
	if (reps[0]->status) {
		rc = ffc_fail(reps[0], what);
	} else if (!ctx->json) {
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
	}
	ffc_replies_free(reps, n);
	return rc;
}
