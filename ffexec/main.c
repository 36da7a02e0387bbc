/* ffexec [--] PROGRAM [ARGS...]: runs PROGRAM under the seccomp filter of
 * include/ff/exec.h, supervised by the router (launch.c). */
#include "ffexec.h"

int main(int argc, char **argv)
{
	return ffe_main(argc, argv);
}
