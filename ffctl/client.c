/* ffctl's side of the admin channel (hostlib/admin.c), with its errors
 * printed to stderr, and the query/change patterns of the subcommands. */
#include "ffctl.h"

#include <stdarg.h>
#include <string.h>

int ffc_connect(struct ffc_ctx *ctx)
{
	if (ff_admin_open(&ctx->adm, ctx->rundir) < 0) {
		fprintf(stderr, "ffctl: %s\n", ctx->adm.err);
		return 1;
	}
	return 0;
}

void ffc_replies_free(Ff__Reply **reps, size_t n)
{
	ff_admin_replies_free(reps, n);
}

int ffc_call(struct ffc_ctx *ctx, Ff__Request *req, Ff__Reply ***reps, size_t *n)
{
	if (ff_admin_call(&ctx->adm, req, reps, n) < 0) {
		fprintf(stderr, "ffctl: %s\n", ctx->adm.err);
		return 1;
	}
	return 0;
}

int ffc_fail(const Ff__Reply *rep, const char *what)
{
	fprintf(stderr, "ffctl: %s: %s\n", what, ff_admin_reply_error(rep));
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
