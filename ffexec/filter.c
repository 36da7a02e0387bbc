/* The seccomp filter of include/ff/exec.h and its installation.
 *
 * The program, in order: another ABI than x86_64 (i386 through int 0x80)
 * or an x32 call passes; a first argument tagged FF_EXEC_TAG in its upper
 * half passes; then the number picks the trapped calls, connect, bind and
 * the option calls also by an argument, read in its low 32 bits only (the
 * kernel reads those arguments as ints). Everything else passes. Jumps are
 * written between named positions (enum pos), so the offsets cannot drift
 * when a line is added. */
#include "ffexec.h"

#include <ff/exec.h>

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef __x86_64__

#define X32_BIT 0x40000000u
/* little-endian: the low half of a 64-bit argument first */
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (ARG_LO(i) + 4)

enum pos {
	P_ARCH,
	P_ARCH_IS,
	P_NR,
	P_X32,
	P_TAG,
	P_TAG_IS,
	P_NR2,
	P_CONNECT,
	P_BIND,
	P_LISTEN,
	P_ACCEPT,
	P_ACCEPT4,
	P_GETSOCKNAME,
	P_GETPEERNAME,
	P_GETSOCKOPT,
	P_SETSOCKOPT,
	P_SENDTO,
	/* connect: an IPv4 or IPv6 address length */
	P_C_LEN,
	P_C_16,
	P_C_28,
	/* getsockopt: SOL_SOCKET (but SO_ERROR), IP, TCP, IPv6 */
	P_G_LEVEL,
	P_G_SOCKET,
	P_G_NAME,
	P_G_ERROR,
	P_G_IP,
	P_G_TCP,
	P_G_IPV6,
	/* setsockopt: IP, TCP, IPv6 */
	P_S_LEVEL,
	P_S_IP,
	P_S_TCP,
	P_S_IPV6,
	/* sendto: with an address (dest_addr not NULL, both halves) */
	P_T_LO,
	P_T_LO0,
	P_T_HI,
	P_T_HI0,
	P_NOTIF,
	P_ALLOW,
	P_LEN
};

#define LD(at, off) [at] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
/* at: if (A op k) goto t; else goto f; */
#define JMP(at, op, k, t, f)                                                                       \
	[at] = BPF_JUMP(BPF_JMP | (op) | BPF_K, (k), (t) - (at)-1, (f) - (at)-1)
#define JEQ(at, k, t, f) JMP(at, BPF_JEQ, k, t, f)

static struct sock_filter prog[P_LEN] = {
    LD(P_ARCH, offsetof(struct seccomp_data, arch)),
    JEQ(P_ARCH_IS, AUDIT_ARCH_X86_64, P_NR, P_ALLOW),
    LD(P_NR, offsetof(struct seccomp_data, nr)),
    JMP(P_X32, BPF_JGE, X32_BIT, P_ALLOW, P_TAG),
    LD(P_TAG, ARG_HI(0)),
    JEQ(P_TAG_IS, FF_EXEC_TAG, P_ALLOW, P_NR2),
    LD(P_NR2, offsetof(struct seccomp_data, nr)),
    JEQ(P_CONNECT, __NR_connect, P_C_LEN, P_BIND),
    JEQ(P_BIND, __NR_bind, P_C_LEN, P_LISTEN),
    JEQ(P_LISTEN, __NR_listen, P_NOTIF, P_ACCEPT),
    JEQ(P_ACCEPT, __NR_accept, P_NOTIF, P_ACCEPT4),
    JEQ(P_ACCEPT4, __NR_accept4, P_NOTIF, P_GETSOCKNAME),
    JEQ(P_GETSOCKNAME, __NR_getsockname, P_NOTIF, P_GETPEERNAME),
    JEQ(P_GETPEERNAME, __NR_getpeername, P_NOTIF, P_GETSOCKOPT),
    JEQ(P_GETSOCKOPT, __NR_getsockopt, P_G_LEVEL, P_SETSOCKOPT),
    JEQ(P_SETSOCKOPT, __NR_setsockopt, P_S_LEVEL, P_SENDTO),
    /* off unless asked for (ffe_filter_trap_sendto) */
    JEQ(P_SENDTO, __NR_sendto, P_ALLOW, P_ALLOW),
    LD(P_C_LEN, ARG_LO(2)),
    JEQ(P_C_16, sizeof(struct sockaddr_in), P_NOTIF, P_C_28),
    JEQ(P_C_28, sizeof(struct sockaddr_in6), P_NOTIF, P_ALLOW),
    LD(P_G_LEVEL, ARG_LO(1)),
    JEQ(P_G_SOCKET, SOL_SOCKET, P_G_NAME, P_G_IP),
    /* SO_ERROR: the app's socket answers right (0 on an accelerated one;
     * a refusal is made on its own socket), and Go asks after every
     * non-blocking connect */
    LD(P_G_NAME, ARG_LO(2)),
    JEQ(P_G_ERROR, SO_ERROR, P_ALLOW, P_NOTIF),
    JEQ(P_G_IP, IPPROTO_IP, P_NOTIF, P_G_TCP),
    JEQ(P_G_TCP, IPPROTO_TCP, P_NOTIF, P_G_IPV6),
    JEQ(P_G_IPV6, IPPROTO_IPV6, P_NOTIF, P_ALLOW),
    LD(P_S_LEVEL, ARG_LO(1)),
    JEQ(P_S_IP, IPPROTO_IP, P_NOTIF, P_S_TCP),
    JEQ(P_S_TCP, IPPROTO_TCP, P_NOTIF, P_S_IPV6),
    JEQ(P_S_IPV6, IPPROTO_IPV6, P_NOTIF, P_ALLOW),
    LD(P_T_LO, ARG_LO(4)),
    JEQ(P_T_LO0, 0, P_T_HI, P_NOTIF),
    LD(P_T_HI, ARG_HI(4)),
    JEQ(P_T_HI0, 0, P_ALLOW, P_NOTIF),
    [P_NOTIF] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    [P_ALLOW] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

_Static_assert(sizeof(struct sockaddr_in) == 16 && sizeof(struct sockaddr_in6) == 28,
	       "exec.h traps connect by these lengths");

static const struct sock_fprog fprog = {.len = P_LEN, .filter = prog};

const struct sock_fprog *ffe_filter(void)
{
	return &fprog;
}

void ffe_filter_trap_sendto(bool on)
{
	prog[P_SENDTO] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendto,
						      (on ? P_T_LO : P_ALLOW) - P_SENDTO - 1,
						      P_ALLOW - P_SENDTO - 1);
}

#else /* exec.h: x86_64 only */

const struct sock_fprog *ffe_filter(void)
{
	return NULL;
}

void ffe_filter_trap_sendto(bool on)
{
	(void)on;
}

#endif

static int install(unsigned int flags)
{
	long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, ffe_filter());

	return r < 0 ? -errno : (int)r;
}

/* Without WAIT_KILLABLE_RECV (kernels before 5.19) a signal to a task
 * whose call the supervisor has taken restarts that call as a new
 * notification: acceptable, and better than no filter. */
static int install_any(void)
{
	int fd = install(SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);

	if (fd == -EINVAL)
		fd = install(SECCOMP_FILTER_FLAG_NEW_LISTENER);
	return fd;
}

int ffe_filter_install(void)
{
	int fd;

	if (!ffe_filter())
		return -EOPNOTSUPP;
	fd = install_any();
	if (fd == -EACCES) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			return -errno;
		fd = install_any();
	}
	return fd;
}
