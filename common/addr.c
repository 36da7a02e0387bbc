/* Address conversions; every length that comes from a peer is checked here. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void ip_set(struct ff_ip *out, int family, const void *raw)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET6 && !memcmp(raw, v4mapped_prefix, 12)) {
		out->family = AF_INET;
		memcpy(out->ip, (const uint8_t *)raw + 12, 4);
		return;
	}
	out->family = (uint8_t)family;
	memcpy(out->ip, raw, family == AF_INET ? 4 : 16);
}

int ff_ip_parse(const char *s, struct ff_ip *out)
{
	uint8_t raw[16];

	if (!s)
		return -EINVAL;
	if (inet_pton(AF_INET, s, raw) == 1) {
		ip_set(out, AF_INET, raw);
		return 0;
	}
	if (inet_pton(AF_INET6, s, raw) == 1) {
		ip_set(out, AF_INET6, raw);
		return 0;
	}
	return -EINVAL;
}

int ff_sa_parse(const char *s, struct ff_sa *out, unsigned flags)
{
	char buf[FF_ADDRSTRLEN], *colon, *end, *ip = buf;
	unsigned long port;
	size_t n;

	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	colon = strrchr(buf, ':');
	if (!colon || !colon[1])
		return -EINVAL;
	*colon = '\0';
	n = strlen(buf);
	if (buf[0] == '[') {
		if (n < 3 || buf[n - 1] != ']')
			return -EINVAL;
		buf[n - 1] = '\0';
		ip = buf + 1;
	} else if ((flags & FF_SA_STRICT) && strchr(buf, ':')) {
		return -EINVAL; /* IPv6 needs its brackets */
	}
	if ((flags & FF_SA_STRICT) && (colon[1] < '0' || colon[1] > '9'))
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535 || (port == 0 && !(flags & FF_SA_PORT0)) ||
	    ff_ip_parse(ip, &out->ip) < 0)
		return -EINVAL;
	out->port = (uint16_t)port;
	return 0;
}

const char *ff_ip_fmt(const struct ff_ip *ip, char *buf, size_t len)
{
	if (!ip->family || !inet_ntop(ip->family, ip->ip, buf, (socklen_t)len))
		snprintf(buf, len, "-");
	return buf;
}

const char *ff_sa_fmt(const struct ff_sa *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	ff_ip_fmt(&sa->ip, ip, sizeof(ip));
	snprintf(buf, len, sa->ip.family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, sa->port);
	return buf;
}

bool ff_ip_equal(const struct ff_ip *a, const struct ff_ip *b)
{
	return a->family == b->family && !memcmp(a->ip, b->ip, 16);
}

bool ff_ip_is_any(const struct ff_ip *ip)
{
	static const uint8_t zero[16];

	return (ip->family == AF_INET || ip->family == AF_INET6) && !memcmp(ip->ip, zero, 16);
}

bool ff_ip_is_loopback(const struct ff_ip *ip)
{
	static const uint8_t one[16] = {[15] = 1};

	if (ip->family == AF_INET)
		return ip->ip[0] == 127;
	return ip->family == AF_INET6 && !memcmp(ip->ip, one, 16);
}

bool ff_ip_is_unicast(const struct ff_ip *ip)
{
	if (ff_ip_is_any(ip) || ff_ip_is_loopback(ip))
		return false;
	if (ip->family == AF_INET)
		return ip->ip[0] < 224 && ip->ip[0] != 0;
	return ip->family == AF_INET6 && ip->ip[0] != 0xff;
}

int ff_sa_from_sockaddr(struct ff_sa *out, const struct sockaddr *sa, socklen_t len)
{
	if (!sa || len < (socklen_t)sizeof(sa_family_t))
		return -EINVAL;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		ip_set(&out->ip, AF_INET, &in->sin_addr);
		out->port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		ip_set(&out->ip, AF_INET6, &in6->sin6_addr);
		out->port = ntohs(in6->sin6_port);
		return 0;
	}
	return -EINVAL;
}

int ff_sa_to_sockaddr(const struct ff_sa *in, int family, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)out;

		if (in->ip.family != AF_INET)
			return -EAFNOSUPPORT;
		s->sin_family = AF_INET;
		s->sin_port = htons(in->port);
		memcpy(&s->sin_addr, in->ip.ip, 4);
		return sizeof(*s);
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)out;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons(in->port);
		if (in->ip.family == AF_INET) {
			memcpy(s->sin6_addr.s6_addr, v4mapped_prefix, 12);
			memcpy(s->sin6_addr.s6_addr + 12, in->ip.ip, 4);
		} else {
			memcpy(s->sin6_addr.s6_addr, in->ip.ip, 16);
		}
		return sizeof(*s);
	}
	return -EAFNOSUPPORT;
}

void ff_sa_to_proto(const struct ff_sa *in, Ff__Addr *msg, uint8_t ipbuf[16])
{
	ff__addr__init(msg);
	msg->family = in->ip.family;
	msg->port = in->port;
	memcpy(ipbuf, in->ip.ip, 16);
	msg->ip.data = ipbuf;
	msg->ip.len = in->ip.family == AF_INET ? 4 : in->ip.family == AF_INET6 ? 16 : 0;
}

void ff_listen_to_proto(struct ff_listen_msg *lm, const struct ff_sa *addr, int32_t backlog,
			bool v6only, uint64_t queue_inode)
{
	ff__listen__init(&lm->m);
	ff_sa_to_proto(addr, &lm->am, lm->ip);
	lm->m.addr = &lm->am;
	lm->m.backlog = backlog;
	lm->m.v6only = v6only;
	lm->m.queue_inode = queue_inode;
}

int ff_sa_from_proto(struct ff_sa *out, const Ff__Addr *msg)
{
	if (!msg || msg->port > 65535)
		return -EINVAL;
	if (msg->family == AF_INET && msg->ip.len == 4)
		ip_set(&out->ip, AF_INET, msg->ip.data);
	else if (msg->family == AF_INET6 && msg->ip.len == 16)
		ip_set(&out->ip, AF_INET6, msg->ip.data);
	else
		return -EINVAL;
	out->port = (uint16_t)msg->port;
	return 0;
}
