/* Hosts of the cluster: the other hosts' ingress addresses, and the keys
 * routers share (from the cluster secret). Invariant: a host named by a
 * registered container exists (or is this one) for as long as it does. */
#include "internal.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MIN 16
#define SECRET_MAX 4096

struct ffr_host *ffr_host_find(struct ffr_router *r, const char *name)
{
	struct ffr_xhost *xh = ffr_xh(r);
	struct ffr_host *h;

	if (!xh)
		return NULL;
	TAILQ_FOREACH (h, &xh->hosts, link)
		if (!strcmp(h->name, name))
			return h;
	return NULL;
}

int ffr_host_add(struct ffr_router *r, const char *name, const struct ff_sa *addr, bool rdma,
		 struct ffr_host **out)
{
	struct ffr_host *h;

	if (!ffr_name_valid(name) || strlen(name) > FFR_HOST_MAX || ffr_is_self(r, name))
		return -EINVAL;
	if (ffr_host_find(r, name))
		return -EEXIST;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->addr = *addr;
	h->rdma = rdma;
	TAILQ_INSERT_TAIL(&ffr_xh(r)->hosts, h, link);
	if (out)
		*out = h;
	return 0;
}

void ffr_host_free(struct ffr_router *r, struct ffr_host *h)
{
	if (!h)
		return;
	ffr_warm_free(r, h);
	TAILQ_REMOVE(&ffr_xh(r)->hosts, h, link);
	free(h);
}

/* The keys of each purpose, derived from secret; 0 or -ENOMEM. */
static int derive_keys(struct ffr_xhost *xh, const uint8_t *secret, size_t len)
{
	if (sodium_init() < 0)
		return -ENOMEM;
	xh->keys = sodium_malloc(FFR_KEYS * FF_KEY_LEN); /* guarded, locked, not dumped */
	if (!xh->keys)
		return -ENOMEM;
	for (int k = 0; k < FFR_KEYS; k++)
		ff_kdf(secret, len, (uint64_t)k + 1, xh->keys[k]);
	sodium_mprotect_readonly(xh->keys);
	return 0;
}

/* The secret file must be private to the router's user. The secret only
 * lives in buf, wiped once the keys are derived from it. */
int ffr_read_secret(struct ffr_xhost *xh, const char *path)
{
	uint8_t buf[SECRET_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
		ff_err("secret file %s must not be readable by group or others (chmod 600)", path);
		err = -EPERM;
		goto out_close;
	}
	/* another owner could read it, or change it under the cluster */
	if (st.st_uid != geteuid()) {
		ff_err("secret file %s must be owned by the router's user (uid %u, not %u)", path,
		       (unsigned)geteuid(), (unsigned)st.st_uid);
		err = -EPERM;
		goto out_close;
	}
	n = read(fd, buf, sizeof(buf));
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n < SECRET_MIN || n > SECRET_MAX) {
		ff_err("secret file %s: want %d to %d bytes", path, SECRET_MIN, SECRET_MAX);
		err = -EINVAL;
		goto out_close;
	}
	err = derive_keys(xh, buf, (size_t)n);
out_close:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return err;
}
