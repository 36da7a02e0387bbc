/* The call table. Every wrapper calls ffs_init() first, so the table is
 * ready whichever entry point a program (or a library constructor) hits
 * first. A name libc lacks stays NULL and its wrapper reports ENOSYS. */
#include "real.h"
#include "shim.h"

#include <dlfcn.h>
#include <pthread.h>

struct ffs_real ffs_real;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void)
{
#define FFS_REAL_LOAD(name, ret, args) ffs_real.name = (ret(*) args)dlsym(RTLD_NEXT, #name);
	FFS_REAL_LIST(FFS_REAL_LOAD)
#undef FFS_REAL_LOAD
	ffs_setup();
}

void ffs_init(void)
{
	pthread_once(&once, init_once);
}
