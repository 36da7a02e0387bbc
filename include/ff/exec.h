/* What ffexec, the router's seccomp supervisor and the shim agree on.
 * ffexec installs a filter that sends these calls to the supervisor
 * (SECCOMP_RET_USER_NOTIF) and lets every other call through:
 *   connect, listen, accept, accept4, getsockname, getpeername,
 *   getsockopt (levels SOL_SOCKET but SO_ERROR, IPPROTO_IP, IPPROTO_TCP,
 *   IPPROTO_IPV6),
 *   setsockopt (levels IPPROTO_IP, IPPROTO_TCP, IPPROTO_IPV6),
 *   and with ffexec --sendto only, sendto with a destination address (a
 *   NULL one passes: send/write never pay a trip; without the option no
 *   send* or recv* call is ever trapped).
 * connect is trapped only for address lengths of an IPv4 or IPv6 socket
 * address (16 and 28 bytes): AF_UNIX connects never pay a trip.
 * A call whose first argument carries FF_EXEC_TAG in its upper 32 bits
 * passes untouched: the kernel reads that argument as an int and ignores
 * those bits. The shim tags the calls it makes on its own behalf when
 * FF_ENV_EXEC is set, so a dynamic program under ffexec is served by the
 * shim alone and never twice. (Tagging only opts a process out of
 * acceleration: it is not a security boundary and needs not be one.)
 * x86_64 only: other ABIs (i386, x32) pass untouched. */
#pragma once

#define FF_EXEC_TAG 0xff7a5e11u
/* set by ffexec for the program and its children: "1" */
#define FF_ENV_EXEC "FFNET_EXEC"
