/* The call table and the process set-up that comes with it. Every wrapper
 * calls ffs_init() first, so the table is ready whichever entry point a
 * program (or a library constructor) hits first. A name libc lacks stays
 * NULL and its wrapper reports ENOSYS. */
#include "real.h"
#include "sock/sock.h"

#include "log.h"

#include <ff/wire.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

struct ffs_real ffs_real;
bool ffs_ready_flag;
bool ffs_enabled = true;
__thread int ffs_busy __attribute__((tls_model("initial-exec")));
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void setup(void)
{
	const char *lvl = getenv(FF_ENV_LOG), *off = getenv(FF_ENV_DISABLE);

	ff_log_init("libffshim", ff_log_parse_level(lvl));
	if (off && *off && *off != '0')
		ffs_enabled = false;
	ffs_sock_atfork();
}

/* dlsym may allocate, and an allocator may initialise itself with read()
 * or close(): those calls come back into our wrappers on this thread while
 * the table is half filled. ffs_busy tells them to go to the kernel. */
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
