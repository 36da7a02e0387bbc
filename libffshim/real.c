/* The call table. Every wrapper calls ffs_init() first, so the table is
 * ready whichever entry point a program (or a library constructor) hits
 * first. A name libc lacks stays NULL and its wrapper reports ENOSYS. */
#include "real.h"
#include "sock/sock-internal.h"

#include <dlfcn.h>
#include <pthread.h>

struct ffs_real ffs_real;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* dlsym may allocate, and an allocator may initialise itself with read()
 * or close(): those calls come back into our wrappers on this thread while
 * the table is half filled. ffs_busy tells them to go to the kernel. */
static void init_once(void)
{
	ffs_busy++;
#define FFS_REAL_LOAD(name, ret, args) ffs_real.name = (ret(*) args)dlsym(RTLD_NEXT, #name);
	FFS_REAL_LIST(FFS_REAL_LOAD)
#undef FFS_REAL_LOAD
	ffs_setup();
	ffs_busy--;
}

void ffs_init(void)
{
	pthread_once(&once, init_once);
}
