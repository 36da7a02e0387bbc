/* Overlay addresses: one representation for IPv4 and IPv6, converted to and
 * from sockaddr and the protocol's Addr. IPv4-mapped IPv6 addresses are
 * normalised to IPv4 so a dual-stack listener and a v4 peer agree. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ff.pb-c.h"

struct ff_ip {
	uint8_t family; /* AF_INET, AF_INET6, or 0 = unset */
	uint8_t ip[16]; /* IPv4 in ip[0..3], rest zero */
};

struct ff_sa {
	struct ff_ip ip;
	uint16_t port; /* host order */
};

#define FF_ADDRSTRLEN (INET6_ADDRSTRLEN + 8)

/* Parses a bare IPv4 or IPv6 address. Returns 0 or -EINVAL. */
int ff_ip_parse(const char *s, struct ff_ip *out);
/* Parses "IP:PORT" or "[IPv6]:PORT" (the inverse of ff_sa_fmt). Port 0 is
 * refused unless FF_SA_PORT0; with FF_SA_STRICT an IPv6 address must be in
 * brackets and the port must be digits only. Returns 0 or -EINVAL. */
#define FF_SA_PORT0  1u
#define FF_SA_STRICT 2u
int ff_sa_parse(const char *s, struct ff_sa *out, unsigned flags);
/* Writes the bare address; returns buf. */
const char *ff_ip_fmt(const struct ff_ip *ip, char *buf, size_t len);
/* "1.2.3.4:80" / "[fd00::1]:80"; returns buf. */
const char *ff_sa_fmt(const struct ff_sa *sa, char *buf, size_t len);

bool ff_ip_equal(const struct ff_ip *a, const struct ff_ip *b);
/* 0.0.0.0 or :: */
bool ff_ip_is_any(const struct ff_ip *ip);
/* 127/8 or ::1 */
bool ff_ip_is_loopback(const struct ff_ip *ip);
/* A usable unicast container address (not any, loopback, multicast, broadcast). */
bool ff_ip_is_unicast(const struct ff_ip *ip);

/* From a sockaddr of len bytes; -EINVAL for other families or short len. */
int ff_sa_from_sockaddr(struct ff_sa *out, const struct sockaddr *sa, socklen_t len);
/* To a sockaddr of the given family (AF_INET6 maps an IPv4 address).
 * Returns the length written, or -EAFNOSUPPORT (IPv6 into AF_INET). */
int ff_sa_to_sockaddr(const struct ff_sa *in, int family, struct sockaddr_storage *out);

/* The protocol's Addr: ip must point to storage that outlives msg. */
void ff_sa_to_proto(const struct ff_sa *in, Ff__Addr *msg, uint8_t ipbuf[16]);
/* -EINVAL for a missing or malformed Addr (wrong family or ip length, port > 65535). */
int ff_sa_from_proto(struct ff_sa *out, const Ff__Addr *msg);

/* A listener's fields as a Listen message (Listen, Relisten, a keeper's
 * keep), with the storage of its address: valid while lm lives. */
struct ff_listen_msg {
	Ff__Listen m;
	Ff__Addr am;
	uint8_t ip[16];
};
void ff_listen_to_proto(struct ff_listen_msg *lm, const struct ff_sa *addr, int32_t backlog,
			bool v6only, uint64_t queue_inode);
