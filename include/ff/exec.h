/* What ffexec, the router's seccomp supervisor and the shim agree on.
 * ffexec installs a filter that sends these calls to the supervisor
 * (SECCOMP_RET_USER_NOTIF) and lets every other call through:
 *   connect, bind, listen, accept, accept4, getsockname, getpeername,
 *   getsockopt (levels SOL_SOCKET but SO_ERROR, IPPROTO_IP, IPPROTO_TCP,
 *   IPPROTO_IPV6),
 *   setsockopt (levels IPPROTO_IP, IPPROTO_TCP, IPPROTO_IPV6),
 *   and with ffexec --sendto only, sendto with a destination address (a
 *   NULL one passes: send/write never pay a trip; without the option no
 *   send* or recv* call is ever trapped).
 * connect and bind are trapped only for address lengths of an IPv4 or IPv6
 * socket address (16 and 28 bytes): AF_UNIX ones never pay a trip. (bind
 * only lets the supervisor end, first, the listeners the program closed on
 * the port it may bind again.)
 * A call whose first argument carries FF_EXEC_TAG in its upper 32 bits
 * passes untouched: the kernel reads that argument as an int and ignores
 * those bits. The shim tags the calls it makes on its own behalf when
 * FF_ENV_EXEC is set, so a dynamic program under ffexec is served by the
 * shim alone and never twice. (Tagging only opts a process out of
 * acceleration: it is not a security boundary and needs not be one.)
 * x86_64 only: other ABIs (i386, x32) pass untouched. */
#pragma once

#include <stdint.h>

#define FF_EXEC_TAG 0xff7a5e11u
/* set by ffexec for the program and its children: "1" */
#define FF_ENV_EXEC "FFNET_EXEC"

/* The calls a router holds for a keeper's filter (parked: waiting for the
 * core, or a blocking accept waiting for a connection), in a page the
 * router writes and hands the keeper with its answer to Supervise (sealed:
 * the keeper can only read it). A router that dies leaves them unanswered;
 * the keeper reads the page then and, for each call still pending
 * (NOTIF_ID_VALID), lets it through or, for a blocking accept on an
 * accelerated listener, holds it and hands it to the next router (Adopt),
 * so that the program's accept waits as it would with the shim. A slot is
 * in use when id != 0: the router writes the other fields first, then id
 * (release), and clears id when the call is answered. */
#define FF_PARKED_MAGIC 0x66667061u /* "ffpa" */
#define FF_PARKED_SLOTS 255
struct ff_parked {
	uint64_t id;	  /* the notification's; 0: a free slot */
	uint64_t args[4]; /* the call's first four arguments */
	uint32_t tid;	  /* the task, in the router's pid namespace */
	uint32_t nr;	  /* the system call */
};
struct ff_parked_page {
	uint32_t magic, nslots;
	uint64_t pad;
	struct ff_parked slot[FF_PARKED_SLOTS];
};
