/* sc-meta.c - what a connected socket says about itself: local and peer
 * addresses (compared across the two ends, printed without ephemeral ports)
 * and socket options as a TCP socket reports them.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ffconform.h"

static const char *fam_name(int f)
{
	static char buf[16];

	switch (f) {
	case AF_INET:
		return "AF_INET";
	case AF_INET6:
		return "AF_INET6";
	case AF_UNIX:
		return "AF_UNIX";
	}
	snprintf(buf, sizeof(buf), "family%d", f);
	return buf;
}

static const char *type_name(int t)
{
	static char buf[16];

	switch (t) {
	case SOCK_STREAM:
		return "SOCK_STREAM";
	case SOCK_DGRAM:
		return "SOCK_DGRAM";
	case SOCK_SEQPACKET:
		return "SOCK_SEQPACKET";
	}
	snprintf(buf, sizeof(buf), "type%d", t);
	return buf;
}

static const char *proto_name(int p)
{
	static char buf[16];

	if (p == IPPROTO_TCP)
		return "IPPROTO_TCP";
	snprintf(buf, sizeof(buf), "proto%d", p);
	return buf;
}

/* "ip:port" of a name call (port included: only sent over the wire). */
static int name_str(int fd, bool peer, char *out, size_t len)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char ip[INET_ADDRSTRLEN];
	int r = peer ? getpeername(fd, (struct sockaddr *)&sa, &sl)
		     : getsockname(fd, (struct sockaddr *)&sa, &sl);

	if (r < 0)
		return -errno;
	addr_ip(&sa, ip, sizeof(ip));
	snprintf(out, len, "%s:%u", ip, ntohs(sa.sin_port));
	return 0;
}

/* Checks one name call on fd; the port is compared with want_port unless it
 * is negative (ephemeral: only "nonzero" is checked). want_ip may be NULL
 * (just printed). */
static void check_name(int fd, bool peer, const char *what, const char *want_ip, int want_port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char n[96], ip[INET_ADDRSTRLEN];
	int r = peer ? getpeername(fd, (struct sockaddr *)&sa, &len)
		     : getsockname(fd, (struct sockaddr *)&sa, &len);

	snprintf(n, sizeof(n), "%s.%s", ffc_scen, what);
	if (!ck_zero(n, r))
		return;
	snprintf(n, sizeof(n), "%s.%s.len", ffc_scen, what);
	ck_eq(n, (long)sizeof(sa), len);
	snprintf(n, sizeof(n), "%s.%s.family", ffc_scen, what);
	ck_str(n, "AF_INET", fam_name(sa.sin_family));
	addr_ip(&sa, ip, sizeof(ip));
	snprintf(n, sizeof(n), "%s.%s.ip", ffc_scen, what);
	if (want_ip)
		ck_str(n, want_ip, ip);
	else
		ck_ok(n, "%s", ip);
	if (want_port < 0) {
		snprintf(n, sizeof(n), "%s.%s.port-nonzero", ffc_scen, what);
		ck_yes(n, sa.sin_port != 0);
	} else {
		snprintf(n, sizeof(n), "%s.%s.port-is-base-port", ffc_scen, what);
		ck_yes(n, ntohs(sa.sin_port) == want_port);
	}
}

/* Compares our two names with the peer's line "SOCKNAME PEERNAME". */
static void cross_check(int fd, const char *line)
{
	char mine[64], mypeer[64], theirs[64], theirpeer[64];

	if (sscanf(line, "%63s %63s", theirs, theirpeer) != 2 ||
	    !step("sockname", name_str(fd, false, mine, sizeof(mine))) ||
	    !step("peername", name_str(fd, true, mypeer, sizeof(mypeer))))
		return;
	ck_yes(nm("sockname-is-peers-peername"), strcmp(mine, theirpeer) == 0);
	ck_yes(nm("peername-is-peers-sockname"), strcmp(mypeer, theirs) == 0);
}

static int send_names(int fd)
{
	char me[64], peer[64];
	int r = name_str(fd, false, me, sizeof(me));

	if (r == 0)
		r = name_str(fd, true, peer, sizeof(peer));
	if (r == 0)
		r = io_send_line(fd, "%s %s", me, peer);
	return r;
}

void cl_names(void)
{
	struct sockaddr_in sa, any;
	socklen_t len = 4;
	char line[160];
	int r, u, s = cl_open("names", NULL, false);

	if (s < 0)
		return;
	check_name(s, false, "sockname", NULL, -1);
	check_name(s, true, "peername", ffc_opt.ip, ffc_opt.port);
	r = send_names(s);
	if (r == 0)
		r = io_read_line(s, line, sizeof(line));
	if (step("exchange", r))
		cross_check(s, line);
	r = getpeername(s, (struct sockaddr *)&sa, &len);
	ck_eq("names.truncated-peername.len", (long)sizeof(sa), r == 0 ? (long)len : -1);
	u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	len = sizeof(sa);
	ck_err("names.unconnected-peername", getpeername(u, (struct sockaddr *)&sa, &len),
	       ENOTCONN);
	len = sizeof(sa);
	memset(&any, 0, sizeof(any));
	r = getsockname(u, (struct sockaddr *)&sa, &len);
	ck_yes("names.unbound-sockname-is-any",
	       r == 0 && sa.sin_family == AF_INET && sa.sin_port == 0 && sa.sin_addr.s_addr == 0);
	close(u);
	close(s);
}

void sv_names(int fd, const char *arg FFC_UNUSED)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char line[160];
	bool any = strcmp(ffc_opt.ip, "0.0.0.0") == 0;
	int r;

	check_name(fd, false, "sockname", any ? NULL : ffc_opt.ip, ffc_opt.port);
	check_name(fd, true, "peername", NULL, -1);
	r = io_read_line(fd, line, sizeof(line));
	if (r >= 0)
		r = send_names(fd);
	if (step("exchange", r))
		cross_check(fd, line);
	check_name(ffc_listener, false, "listener-sockname", ffc_opt.ip, ffc_opt.port);
	ck_err("names.listener-peername", getpeername(ffc_listener, (struct sockaddr *)&sa, &len),
	       ENOTCONN);
	sv_finish(fd);
}

static int getint(int fd, int level, int opt, int *v)
{
	socklen_t len = sizeof(*v);

	*v = -1;
	if (getsockopt(fd, level, opt, v, &len) < 0)
		return -errno;
	return (int)len;
}

static int setint(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v));
}

#define OPT(l, n) {l, n, #n}

/* IP- and TCP-level options as TCP answers them: value, length and errno
 * go to the transcript. Left out: what describes the route (TCP_MAXSEG,
 * TCP_INFO, IP_MTU, TCP_WINDOW_CLAMP, TCP_CC_INFO), TCP_QUICKACK (the
 * kernel's pingpong mode follows the traffic) and TCP_TIMESTAMP. */
static void sockopt_answers(int fd, const char *when)
{
	static const struct {
		int level, name;
		const char *what;
	} opts[] = {
	    OPT(IPPROTO_IP, IP_OPTIONS),	OPT(IPPROTO_IP, IP_TOS),
	    OPT(IPPROTO_IP, IP_TTL),		OPT(IPPROTO_IP, IP_PKTINFO),
	    OPT(IPPROTO_IP, IP_MTU_DISCOVER),	OPT(IPPROTO_IP, IP_RECVERR),
	    OPT(IPPROTO_IP, IP_RECVTOS),	OPT(IPPROTO_IP, IP_FREEBIND),
	    OPT(IPPROTO_IP, IP_MINTTL),		OPT(IPPROTO_TCP, TCP_NODELAY),
	    OPT(IPPROTO_TCP, TCP_CORK),		OPT(IPPROTO_TCP, TCP_KEEPIDLE),
	    OPT(IPPROTO_TCP, TCP_KEEPINTVL),	OPT(IPPROTO_TCP, TCP_KEEPCNT),
	    OPT(IPPROTO_TCP, TCP_SYNCNT),	OPT(IPPROTO_TCP, TCP_LINGER2),
	    OPT(IPPROTO_TCP, TCP_CONGESTION),
	    OPT(IPPROTO_TCP, TCP_USER_TIMEOUT), OPT(IPPROTO_TCP, TCP_NOTSENT_LOWAT),
	    OPT(IPPROTO_TCP, TCP_FASTOPEN),	OPT(IPPROTO_TCP, TCP_INQ),
	    OPT(IPPROTO_TCP, TCP_ULP),		OPT(IPPROTO_TCP, TCP_MD5SIG),
	};
	static const uint8_t nops[4] = {IPOPT_NOP, IPOPT_NOP, IPOPT_NOP, IPOPT_END};

	if (!strcmp(when, "set")) {
		ck_zero("sockopt.ip_options-set", setsockopt(fd, IPPROTO_IP, IP_OPTIONS, nops, 4));
		ck_zero("sockopt.recverr-set", setint(fd, IPPROTO_IP, IP_RECVERR, 1));
		ck_zero("sockopt.linger2-set", setint(fd, IPPROTO_TCP, TCP_LINGER2, 5));
		ck_err("sockopt.ttl-300", setint(fd, IPPROTO_IP, IP_TTL, 300), EINVAL);
		ck_err("sockopt.congestion-unknown",
		       setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "nosuchcc", 8), ENOENT);
	}
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		uint8_t v[64];
		char hex[2 * sizeof(v) + 1] = "";
		socklen_t len = sizeof(v);
		char name[80];
		int r;

		memset(v, 0, sizeof(v));
		r = getsockopt(fd, opts[i].level, opts[i].name, v, &len);
		snprintf(name, sizeof(name), "sockopt.%s.%s", when, opts[i].what);
		if (r < 0) {
			ck_ok(name, "errno %s", strerror(errno));
			continue;
		}
		for (socklen_t k = 0; k < len && k < sizeof(v); k++)
			snprintf(hex + 2 * k, 3, "%02x", v[k]);
		ck_ok(name, "len %u %s", (unsigned)len, hex);
	}
}

/* Options every connected end must report as TCP does. */
static void sockopt_common(int fd)
{
	struct tcp_info ti;
	struct ucred cred;
	socklen_t len;
	int v, r;

	r = getint(fd, SOL_SOCKET, SO_TYPE, &v);
	ck_str("sockopt.so_type", "SOCK_STREAM", type_name(v));
	ck_eq("sockopt.so_type.optlen", (long)sizeof(int), r);
	getint(fd, SOL_SOCKET, SO_DOMAIN, &v);
	ck_str("sockopt.so_domain", "AF_INET", fam_name(v));
	getint(fd, SOL_SOCKET, SO_PROTOCOL, &v);
	ck_str("sockopt.so_protocol", "IPPROTO_TCP", proto_name(v));
	getint(fd, SOL_SOCKET, SO_ERROR, &v);
	ck_errval("sockopt.so_error", 0, v);
	getint(fd, SOL_SOCKET, SO_ACCEPTCONN, &v);
	ck_eq("sockopt.so_acceptconn", 0, v);
	ck_zero("sockopt.nodelay-set", setint(fd, IPPROTO_TCP, TCP_NODELAY, 1));
	getint(fd, IPPROTO_TCP, TCP_NODELAY, &v);
	ck_yes("sockopt.nodelay-get-nonzero", v > 0);
	ck_zero("sockopt.nodelay-clear", setint(fd, IPPROTO_TCP, TCP_NODELAY, 0));
	getint(fd, IPPROTO_TCP, TCP_NODELAY, &v);
	ck_eq("sockopt.nodelay-get-cleared", 0, v);
	ck_zero("sockopt.keepalive-set", setint(fd, SOL_SOCKET, SO_KEEPALIVE, 1));
	getint(fd, SOL_SOCKET, SO_KEEPALIVE, &v);
	ck_eq("sockopt.keepalive-get", 1, v);
	ck_zero("sockopt.keepidle-set", setint(fd, IPPROTO_TCP, TCP_KEEPIDLE, 30));
	getint(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v);
	ck_eq("sockopt.keepidle-get", 30, v);
	ck_zero("sockopt.ip_tos-set", setint(fd, IPPROTO_IP, IP_TOS, 0x10));
	getint(fd, IPPROTO_IP, IP_TOS, &v);
	ck_eq("sockopt.ip_tos-get", 0x10, v);
	len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	r = getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
	ck_yes("sockopt.tcp_info.established", r == 0 && ti.tcpi_state == TCP_ESTABLISHED);
	len = sizeof(cred);
	memset(&cred, 0xff, sizeof(cred));
	r = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
	ck_yes("sockopt.peercred-pid-zero", r == 0 && cred.pid == 0);
	ck_err("sockopt.unknown-option", getint(fd, SOL_SOCKET, 0x7fff, &v) < 0 ? -1 : 0,
	       ENOPROTOOPT);
	sockopt_answers(fd, "fresh");
	sockopt_answers(fd, "set");
}

void cl_sockopt(void)
{
	struct timeval tv = {0, 200000};
	socklen_t len = sizeof(tv);
	uint64_t t0;
	char buf[8];
	int r, err, s = cl_open("sockopt", NULL, false);

	if (s < 0)
		return;
	sockopt_common(s);
	ck_zero("sockopt.rcvtimeo-set", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	memset(&tv, 0, sizeof(tv));
	r = getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &len);
	ck_eq("sockopt.rcvtimeo-get-usec", 200000, r == 0 ? tv.tv_sec * 1000000L + tv.tv_usec : -1);
	t0 = now_ms();
	wd_arm();
	r = (int)recv(s, buf, sizeof(buf), 0);
	err = errno;
	wd_disarm();
	errno = err;
	ck_err("sockopt.rcvtimeo-recv", r, EAGAIN);
	ck_yes("sockopt.rcvtimeo-waited", now_ms() - t0 >= 150);
	step("done", io_send_line(s, "done"));
	close(s);
}

void sv_sockopt(int fd, const char *arg FFC_UNUSED)
{
	char line[32];
	int v;

	sockopt_common(fd);
	getint(ffc_listener, SOL_SOCKET, SO_ACCEPTCONN, &v);
	ck_eq("sockopt.listener.so_acceptconn", 1, v);
	getint(ffc_listener, SOL_SOCKET, SO_REUSEADDR, &v);
	ck_eq("sockopt.listener.so_reuseaddr", 1, v);
	getint(ffc_listener, SOL_SOCKET, SO_DOMAIN, &v);
	ck_str("sockopt.listener.so_domain", "AF_INET", fam_name(v));
	if (step("done", io_read_line(fd, line, sizeof(line))))
		ck_str("sockopt.peer-done", "done", line);
	sv_finish(fd);
}
