/* Protection domains and memory regions of the virtual device.
 *
 * Registering memory moves it onto a memfd: the pages of [addr, addr+len)
 * not yet backed by one of the shim's memfds are copied into a new memfd
 * that is then mapped over them at the same address (mremap, contents and
 * protections kept), and the memfd goes to the router, which maps and
 * registers the same pages: zero copy. Such a "region" is shared by every
 * MR that covers part of it and sent once to each context that uses it.
 * Invariants: regions are page aligned, sorted and disjoint; a region lives
 * while an MR uses it; when the last one goes, the router forgets the
 * memfd and the pages simply stay shared-memory-backed in the app.
 * Known deviation: registered pages are MAP_SHARED, so after fork() a child
 * shares them with its parent instead of copying them on write. */
#include "real.h"
#include "verbs-internal.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_SEGS 32
#define MAPS_BUF 8192

#undef ibv_reg_mr
#undef ibv_reg_mr_iova

struct ffs_region {
	struct ffs_region *next; /* by address */
	uint64_t addr, len;
	int fd; /* hidden: sent again to each new context */
	uint32_t refs;
	int nsent;
	struct ffs_vctx *sent[8];
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ffs_region *regions;

/* ---- PD ---- */

FFS_EXPORT struct ibv_pd *ibv_alloc_pd(struct ibv_context *ctx)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsAllocPd m = FF__VERBS_ALLOC_PD__INIT;
	Ff__Reply *rep;
	struct ffs_vpd *p;
	int err;

	if (!ffs_is_vctx(ctx))
		return VREAL(ibv_alloc_pd)(ctx);
	p = calloc(1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	req.body_case = FF__REQUEST__BODY_VERBS_ALLOC_PD;
	req.verbs_alloc_pd = &m;
	err = ffs_vcall(to_vctx(ctx), &req, NULL, 0, &rep, NULL);
	if (err) {
		free(p);
		errno = -err;
		return NULL;
	}
	p->h = rep->verbs_obj->handle;
	ff__reply__free_unpacked(rep, NULL);
	p->pd.context = ctx;
	p->pd.handle = p->h;
	return &p->pd;
}

FFS_EXPORT int ibv_dealloc_pd(struct ibv_pd *pd)
{
	int err;

	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_dealloc_pd)(pd);
	err = ffs_vdestroy(to_vctx(pd->context), FF_VOBJ_PD, to_vpd(pd)->h);
	if (err && err != -EIO)
		return -err;
	free(to_vpd(pd));
	return 0;
}

/* ---- the app's mappings ---- */

struct seg {
	uint64_t lo, hi;
	int prot;
};

/* Parses "lo-hi perms off dev inode path"; 0 if it overlaps [a, b). */
static int maps_line(const char *l, uint64_t a, uint64_t b, struct seg *s, bool *shared, bool *ours)
{
	char *end;

	s->lo = strtoull(l, &end, 16);
	if (*end != '-')
		return -1;
	s->hi = strtoull(end + 1, &end, 16);
	if (*end != ' ' || s->hi <= a || s->lo >= b)
		return -1;
	s->prot = (end[1] == 'r' ? PROT_READ : 0) | (end[2] == 'w' ? PROT_WRITE : 0) |
		  (end[3] == 'x' ? PROT_EXEC : 0);
	*shared = end[4] == 's';
	*ours = strstr(end, "/memfd:ffnet-mr") != NULL;
	if (s->lo < a)
		s->lo = a;
	if (s->hi > b)
		s->hi = b;
	return 0;
}

/* The mappings behind [a, b): all readable, private (or a memfd of ours
 * that no MR uses any more). Returns how many segments, or -errno. */
static int maps_check(uint64_t a, uint64_t b, struct seg *segs)
{
	char buf[MAPS_BUF + 1], *line;
	size_t have = 0;
	int fd, n = 0, err = 0;
	uint64_t next = a;

	fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		long r = syscall(SYS_read, fd, buf + have, MAPS_BUF - have);
		char *nl;

		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		for (line = buf; (nl = strchr(line, '\n')); line = nl + 1) {
			struct seg s;
			bool shared, ours;

			*nl = '\0';
			if (maps_line(line, a, b, &s, &shared, &ours) < 0)
				continue;
			if (s.lo != next || !(s.prot & PROT_READ))
				err = err ? err : -EFAULT;
			else if (shared && !ours)
				err = err ? err : -EOPNOTSUPP;
			else if (n == MAX_SEGS)
				err = err ? err : -E2BIG;
			else
				segs[n++] = s;
			next = s.hi;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
	}
	syscall(SYS_close, fd);
	if (!err && next != b)
		err = -EFAULT;
	return err ? err : n;
}

/* ---- regions ---- */

/* Moves the pages of [a, b) onto a new memfd. Lock held. */
static int region_new(uint64_t a, uint64_t b, struct ffs_region **out)
{
	struct seg segs[MAX_SEGS];
	struct ffs_region *r;
	size_t len = b - a;
	void *tmp;
	int n = maps_check(a, b, segs), fd;

	if (n < 0)
		return n;
	r = calloc(1, sizeof(*r));
	fd = memfd_create("ffnet-mr", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (!r || fd < 0 || ftruncate(fd, (off_t)len) < 0)
		goto out_fail;
	tmp = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (tmp == MAP_FAILED)
		goto out_fail;
	memcpy(tmp, (void *)(uintptr_t)a, len);
	if (mremap(tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(uintptr_t)a) ==
	    MAP_FAILED) {
		munmap(tmp, len);
		goto out_fail;
	}
	for (int i = 0; i < n; i++)
		if (segs[i].prot != (PROT_READ | PROT_WRITE))
			mprotect((void *)(uintptr_t)segs[i].lo, segs[i].hi - segs[i].lo,
				 segs[i].prot);
	r->addr = a;
	r->len = len;
	r->fd = ffs_hide_fd(fd);
	ffs_fd_internal(r->fd, &r->fd);
	*out = r;
	return 0;
out_fail:
	n = errno ? -errno : -ENOMEM;
	if (fd >= 0)
		REAL(close)(fd);
	free(r);
	return n;
}

/* Hands r's memfd to x's router side, or tells it to forget r (remove). */
static int region_send(struct ffs_region *r, struct ffs_vctx *x, bool remove)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsMemAdd m = FF__VERBS_MEM_ADD__INIT;

	if (!remove && r->fd < 0)
		return -EBADF; /* the app closed it */
	m.addr = r->addr;
	m.length = r->len;
	m.remove = remove;
	req.body_case = FF__REQUEST__BODY_VERBS_MEM_ADD;
	req.verbs_mem_add = &m;
	return ffs_vcall0(x, &req, &r->fd, remove ? 0 : 1);
}

/* Makes sure x's router side has r. 0 or -errno. */
static int region_use(struct ffs_region *r, struct ffs_vctx *x)
{
	int err;

	for (int i = 0; i < r->nsent; i++)
		if (r->sent[i] == x)
			return 0;
	if (r->nsent == (int)(sizeof(r->sent) / sizeof(r->sent[0])))
		return -ENOMEM;
	err = region_send(r, x, false);
	if (!err)
		r->sent[r->nsent++] = x;
	return err;
}

/* Unlinks and frees r once no MR uses it. Lock held. */
static void region_put(struct ffs_region *r)
{
	struct ffs_region **pp;

	if (r->refs > 0 && --r->refs > 0)
		return;
	for (int i = 0; i < r->nsent; i++)
		region_send(r, r->sent[i], true);
	for (pp = &regions; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	ffs_internal_close(&r->fd);
	free(r);
}

/* Fills mr->regs with the regions covering [lo, hi), creating the
 * missing ones, each known to x. Lock held; refs not taken. */
static int cover(struct ffs_vctx *x, uint64_t lo, uint64_t hi, struct ffs_vmr *mr)
{
	struct ffs_region **pp = &regions, *r;
	uint64_t a = lo;
	int err;

	while (*pp && (*pp)->addr + (*pp)->len <= a)
		pp = &(*pp)->next;
	while (a < hi) {
		if (mr->nregs == FFS_MR_MAX_REGIONS)
			return -E2BIG;
		r = *pp;
		if (!r || r->addr > a) {
			uint64_t b = r && r->addr < hi ? r->addr : hi;

			err = region_new(a, b, &r);
			if (err)
				return err;
			r->next = *pp;
			*pp = r;
		}
		mr->regs[mr->nregs++] = r;
		err = region_use(r, x);
		if (err)
			return err;
		a = r->addr + r->len;
		pp = &r->next;
	}
	return 0;
}

void ffs_regions_forget_ctx(struct ffs_vctx *x)
{
	pthread_mutex_lock(&reg_lock);
	for (struct ffs_region *r = regions; r; r = r->next)
		for (int i = 0; i < r->nsent; i++)
			if (r->sent[i] == x)
				r->sent[i--] = r->sent[--r->nsent];
	pthread_mutex_unlock(&reg_lock);
}

/* ---- MR ---- */

/* Registers mr's range at the router; fills its handle and keys. */
static int mr_call(struct ffs_vctx *x, struct ffs_vpd *pd, struct ffs_vmr *mr, unsigned access,
		   uint64_t iova)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__VerbsRegMr m = FF__VERBS_REG_MR__INIT;
	Ff__Reply *rep;
	int err;

	m.pd = pd->h;
	m.addr = (uintptr_t)mr->mr.addr;
	m.length = mr->mr.length;
	m.iova = iova;
	m.access = access;
	req.body_case = FF__REQUEST__BODY_VERBS_REG_MR;
	req.verbs_reg_mr = &m;
	err = ffs_vcall(x, &req, NULL, 0, &rep, NULL);
	if (err)
		return err;
	mr->h = rep->verbs_obj->handle;
	mr->mr.lkey = rep->verbs_obj->lkey;
	mr->mr.rkey = rep->verbs_obj->rkey;
	ff__reply__free_unpacked(rep, NULL);
	return 0;
}

/* ibv_reg_mr* on the virtual device: covers the range with regions,
 * then registers it. NULL + errno. */
static struct ibv_mr *vreg_mr(struct ibv_pd *pd, void *addr, size_t len, uint64_t iova,
			      unsigned access)
{
	struct ffs_vctx *x = to_vctx(pd->context);
	uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE), lo, hi;
	struct ffs_vmr *mr;
	int err = -EINVAL;

	if (!len || (uintptr_t)addr + len < (uintptr_t)addr)
		goto out_err;
	err = -ENOMEM;
	mr = calloc(1, sizeof(*mr));
	if (!mr)
		goto out_err;
	mr->mr.context = pd->context;
	mr->mr.pd = pd;
	mr->mr.addr = addr;
	mr->mr.length = len;
	lo = (uintptr_t)addr & ~(ps - 1);
	hi = ((uintptr_t)addr + len + ps - 1) & ~(ps - 1);
	pthread_mutex_lock(&reg_lock);
	err = cover(x, lo, hi, mr);
	if (!err)
		err = mr_call(x, to_vpd(pd), mr, access & ~IBV_ACCESS_OPTIONAL_RANGE, iova);
	for (int i = 0; i < mr->nregs; i++)
		mr->regs[i]->refs++;
	if (err)
		for (int i = 0; i < mr->nregs; i++)
			region_put(mr->regs[i]);
	pthread_mutex_unlock(&reg_lock);
	if (!err) {
		mr->mr.handle = mr->h;
		return &mr->mr;
	}
	free(mr);
out_err:
	if (err == -EOPNOTSUPP)
		ffs_vunsupported("registering shared memory that is not anonymous");
	errno = -err;
	return NULL;
}

FFS_EXPORT struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access)
{
	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_reg_mr)(pd, addr, len, access);
	return vreg_mr(pd, addr, len, (uintptr_t)addr, (unsigned)access);
}

FFS_EXPORT struct ibv_mr *ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t len, uint64_t iova,
					  int access)
{
	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_reg_mr_iova)(pd, addr, len, iova, access);
	return vreg_mr(pd, addr, len, iova, (unsigned)access);
}

FFS_EXPORT struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t len, uint64_t iova,
					   unsigned int access)
{
	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_reg_mr_iova2)(pd, addr, len, iova, access);
	return vreg_mr(pd, addr, len, iova, access);
}

FFS_EXPORT struct ibv_mr *ibv_reg_dmabuf_mr(struct ibv_pd *pd, uint64_t off, size_t len,
					    uint64_t iova, int fd, int access)
{
	if (!ffs_is_vctx(pd->context))
		return VREAL(ibv_reg_dmabuf_mr)(pd, off, len, iova, fd, access);
	ffs_vunsupported("ibv_reg_dmabuf_mr");
	errno = EOPNOTSUPP;
	return NULL;
}

FFS_EXPORT int ibv_rereg_mr(struct ibv_mr *mr, int flags, struct ibv_pd *pd, void *addr, size_t len,
			    int access)
{
	if (!ffs_is_vctx(mr->context))
		return VREAL(ibv_rereg_mr)(mr, flags, pd, addr, len, access);
	ffs_vunsupported("ibv_rereg_mr");
	errno = EOPNOTSUPP;
	return IBV_REREG_MR_ERR_INPUT;
}

FFS_EXPORT int ibv_dereg_mr(struct ibv_mr *ibmr)
{
	struct ffs_vmr *mr = to_vmr(ibmr);
	int err;

	if (!ffs_is_vctx(ibmr->context))
		return VREAL(ibv_dereg_mr)(ibmr);
	err = ffs_vdestroy(to_vctx(ibmr->context), FF_VOBJ_MR, mr->h);
	if (err && err != -EIO)
		return -err;
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < mr->nregs; i++)
		region_put(mr->regs[i]);
	pthread_mutex_unlock(&reg_lock);
	free(mr);
	return 0;
}
