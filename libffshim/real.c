/* The tables of real functions, and the process set-up that comes with
 * the first one.
 *
 * libc (ffs_real): every wrapper calls ffs_init() first, so the table is
 * filled, under pthread_once, by whichever entry point a program (or a
 * library constructor) hits first; the environment is read and the fork
 * handlers installed in the same once. A name libc lacks stays NULL and
 * its wrapper reports ENOSYS.
 *
 * libibverbs and librdmacm (ffs_ibv_real(), ffs_rdmacm_real()): a program
 * may load either after its first socket call (dlopen, as UCX or MPI do
 * with their transports, one library at a time), so neither can be filled
 * with libc's. Each has its own once, run by the first verbs entry point
 * that finds its library in the process: its anchor (the first name of its
 * list) resolves. Until then the caller gets an all-NULL table and answers
 * as for a library the process lacks. A name the library lacks stays NULL.
 * Checking for the library costs a dlsym per call only while it is absent,
 * which only a program that reaches the shim's verbs names without
 * rdma-core does; before these tables, every absent name cost that.
 *
 * Why there is no data race: each table is written only by its fill
 * function, inside its pthread_once, and never again afterwards. A thread
 * reads a table only
 * - after pthread_once returned for it (pthread_once orders the fill
 *   before every return), or
 * - after an acquire load saw its ready flag set; the flag is set with a
 *   release store after the last write of the fill.
 * A verbs caller that found the library absent reads the separate all-NULL
 * table, which nothing writes, so it cannot overlap a fill that another
 * thread started meanwhile. The one re-entry on the filling thread (an
 * allocator initialising itself from inside dlsym, calling read() or
 * close()) sees ffs_busy and goes to the kernel without reading the table.
 * Like the lazy lookups this replaces, a pointer is never dropped: a
 * library dlclose'd after use is not supported.
 *
 * Under ffexec (FFNET_EXEC set when the table is filled), the entries of
 * the calls its seccomp filter traps are raw syscalls whose fd argument
 * carries FF_EXEC_TAG (include/ff/exec.h): what the shim passes on to the
 * kernel is served once, by the shim, never again by the supervisor.
 * They are not cancellation points, unlike libc's. */
#include "real.h"
#include "sock/sock.h"

#include "log.h"

#include <ff/exec.h>
#include <ff/wire.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ffs_real ffs_real;
bool ffs_ready_flag;
bool ffs_enabled = true;
int64_t ffs_spin_ns;
__thread int ffs_busy __attribute__((tls_model("initial-exec")));
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* ---- the tagged calls (under ffexec) ---- */

#define TAG(fd) ((long)((unsigned long)FF_EXEC_TAG << 32 | (unsigned int)(fd)))

static int tag_connect(int fd, const struct sockaddr *a, socklen_t l)
{
	return (int)syscall(SYS_connect, TAG(fd), a, (long)l);
}

static int tag_bind(int fd, const struct sockaddr *a, socklen_t l)
{
	return (int)syscall(SYS_bind, TAG(fd), a, (long)l);
}

static int tag_listen(int fd, int backlog)
{
	return (int)syscall(SYS_listen, TAG(fd), (long)backlog);
}

static int tag_accept(int fd, struct sockaddr *a, socklen_t *l)
{
	return (int)syscall(SYS_accept, TAG(fd), a, l);
}

static int tag_accept4(int fd, struct sockaddr *a, socklen_t *l, int flags)
{
	return (int)syscall(SYS_accept4, TAG(fd), a, l, (long)flags);
}

static int tag_getsockname(int fd, struct sockaddr *a, socklen_t *l)
{
	return (int)syscall(SYS_getsockname, TAG(fd), a, l);
}

static int tag_getpeername(int fd, struct sockaddr *a, socklen_t *l)
{
	return (int)syscall(SYS_getpeername, TAG(fd), a, l);
}

static int tag_getsockopt(int fd, int level, int name, void *v, socklen_t *l)
{
	return (int)syscall(SYS_getsockopt, TAG(fd), (long)level, (long)name, v, l);
}

static int tag_setsockopt(int fd, int level, int name, const void *v, socklen_t l)
{
	return (int)syscall(SYS_setsockopt, TAG(fd), (long)level, (long)name, v, (long)l);
}

static ssize_t tag_sendto(int fd, const void *b, size_t n, int flags, const struct sockaddr *a,
			  socklen_t l)
{
	return syscall(SYS_sendto, TAG(fd), b, n, (long)flags, a, (long)l);
}

static void use_tagged_calls(void)
{
	ffs_real.connect = tag_connect;
	ffs_real.bind = tag_bind;
	ffs_real.listen = tag_listen;
	ffs_real.accept = tag_accept;
	ffs_real.accept4 = tag_accept4;
	ffs_real.getsockname = tag_getsockname;
	ffs_real.getpeername = tag_getpeername;
	ffs_real.getsockopt = tag_getsockopt;
	ffs_real.setsockopt = tag_setsockopt;
	ffs_real.sendto = tag_sendto;
}

static void setup(void)
{
	const char *lvl = getenv(FF_ENV_LOG), *off = getenv(FF_ENV_DISABLE);
	const char *exec = getenv(FF_ENV_EXEC), *spin = getenv(FF_ENV_SPIN);

	ff_log_init("libffshim", ff_log_parse_level(lvl));
	if (off && *off && *off != '0')
		ffs_enabled = false;
	if (exec && *exec)
		use_tagged_calls();
	if (spin && *spin) {
		long long us = strtoll(spin, NULL, 10);

		/* at most a second: a spin is for microseconds */
		ffs_spin_ns = us <= 0 ? 0 : (us > 1000000 ? 1000000 : us) * 1000;
	}
	ffs_sock_atfork();
}

static void init_once(void)
{
	ffs_busy++;
#define FFS_REAL_LOAD(name, ret, args) ffs_real.name = (ret(*) args)dlsym(RTLD_NEXT, #name);
	FFS_REAL_LIST(FFS_REAL_LOAD)
#undef FFS_REAL_LOAD
	setup();
	__atomic_store_n(&ffs_ready_flag, true, __ATOMIC_RELEASE);
	ffs_busy--;
}

void ffs_init(void)
{
	pthread_once(&once, init_once);
}

/* ---- libibverbs and librdmacm ---- */

/* One library's table: filled once (fill), then ready. */
struct vlib {
	const char *anchor;
	pthread_once_t once;
	bool ready;
};

/* tab once lib is loaded and its table filled, else none. */
static const void *vlib_table(struct vlib *l, void (*fill)(void), const void *tab, const void *none)
{
	if (__atomic_load_n(&l->ready, __ATOMIC_ACQUIRE))
		return tab;
	ffs_init();
	if (!dlsym(RTLD_NEXT, l->anchor))
		return none;
	pthread_once(&l->once, fill);
	return tab;
}

static struct ffs_ibv_real ibv_tab;
static struct vlib ibv_lib = {.anchor = "ibv_get_device_list", .once = PTHREAD_ONCE_INIT};

static void ibv_fill(void)
{
#define IBV_LOAD(name) ibv_tab.name = dlsym(RTLD_NEXT, #name);
	FFS_IBV_LIST(IBV_LOAD)
#undef IBV_LOAD
	__atomic_store_n(&ibv_lib.ready, true, __ATOMIC_RELEASE);
}

const struct ffs_ibv_real *ffs_ibv_real(void)
{
	static const struct ffs_ibv_real none;

	return vlib_table(&ibv_lib, ibv_fill, &ibv_tab, &none);
}

static struct ffs_rdmacm_real rdmacm_tab;
static struct vlib rdmacm_lib = {.anchor = "rdma_create_event_channel", .once = PTHREAD_ONCE_INIT};

static void rdmacm_fill(void)
{
#define RDMACM_LOAD(name) rdmacm_tab.name = dlsym(RTLD_NEXT, #name);
	FFS_RDMACM_LIST(RDMACM_LOAD)
#undef RDMACM_LOAD
	__atomic_store_n(&rdmacm_lib.ready, true, __ATOMIC_RELEASE);
}

const struct ffs_rdmacm_real *ffs_rdmacm_real(void)
{
	static const struct ffs_rdmacm_real none;

	return vlib_table(&rdmacm_lib, rdmacm_fill, &rdmacm_tab, &none);
}
