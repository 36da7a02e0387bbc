/* ffexec, the seccomp launcher: what its parts and its tests share.
 * The launcher (launch.c) forks the keeper (keeper.c), installs the filter
 * (filter.c), hands the filter's listener to the keeper and execs the
 * program; main.c only calls ffe_main(). */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>

/* The filter include/ff/exec.h describes, for SECCOMP_SET_MODE_FILTER.
 * Static storage, never freed. */
const struct sock_fprog *ffe_filter(void);

/* Whether the filter also traps sendto with a destination address (off by
 * default; ffexec --sendto). Set before ffe_filter_install. */
void ffe_filter_trap_sendto(bool on);

/* Installs ffe_filter() on the calling thread, which keeps it across fork
 * and exec, with a user-notification listener. Sets no_new_privs only when
 * the kernel demands it (EACCES: no CAP_SYS_ADMIN). Returns the listener
 * (O_CLOEXEC, the caller's) or -errno. */
int ffe_filter_install(void);

/* The keeper, in its own process: takes the listener from the launcher
 * over sp, hands it to the router over chan (connected, or -1), answers
 * the launcher, then watches or serves the listener until no task uses the
 * filter. pid is the launcher's (the program's). Consumes sp and chan.
 * Returns the exit status. */
int ffe_keeper(int sp, int chan, uint32_t pid);

/* ffexec [--sendto] [--] PROGRAM [ARGS...]: returns only on failure, with the exit
 * status (125 usage, 126 exec failed, 127 not found). */
int ffe_main(int argc, char **argv);

/* A SOCK_SEQPACKET socket (O_CLOEXEC) connected to the router's socket
 * (FFNET_SOCK or the default). timeout_ms bounds a connect that waits for
 * room in the router's backlog; 0 makes the socket O_NONBLOCK and the
 * connect fail at once instead. Returns the socket or -errno. */
int ffe_router_connect(int timeout_ms);
