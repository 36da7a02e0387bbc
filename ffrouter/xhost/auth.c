/* Router-to-router authentication. A preamble is a protobuf followed by
 * HMAC-SHA256(preamble key, protobuf bytes), checked before the bytes are
 * parsed; the keys are derived from the cluster secret (ff_kdf, one per
 * purpose: enum ffr_key), which is never used raw.
 * Against replays, IPsec-style: each sending router stamps its preambles
 * with a random boot id and a counter; the receiver keeps, per (sender,
 * boot), the highest counter seen and a window of the WINDOW before it, so
 * memory stays constant whatever the connection rate. A clock window
 * (routers are assumed NTP-synchronised) bounds how long a boot's state
 * must be kept: a preamble older than WINDOW_MS is refused anyway.
 * Within that window, a captured preamble could still be raced onto
 * another connection before the genuine one arrives: each preamble is
 * therefore bound to its TCP connection (both ends' addresses and ports)
 * and to the receiving router's host id.
 * The ingress's answer carries a MAC bound to the preamble's, so that no
 * one in the middle can turn a refusal into an OK or the reverse. */
#include "internal.h"

#include "log.h"
#include "mac.h"
#include "msg.h"

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define XVERSION 2 /* 2: bound to its connection (dst_host, via_*) */
#define WINDOW_MS (60 * 1000)
#define WINDOW 4096 /* counters accepted out of order behind the highest */
#define SENDERS 1024

struct sender {
	char host[FFR_HOST_MAX + 1];
	uint64_t boot, max;
	uint64_t seen[WINDOW / 64]; /* bit (c % WINDOW) for counters in (max - WINDOW, max] */
	int64_t last_ms;
};

struct replay {
	uint64_t boot, seq; /* ours, as a sender */
	struct sender s[SENDERS];
};

static struct replay *rp; /* one router per process */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int replay_init(void)
{
	if (rp)
		return 0;
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	if (getrandom(&rp->boot, sizeof(rp->boot), 0) != sizeof(rp->boot)) {
		free(rp);
		rp = NULL;
		return -EIO;
	}
	return 0;
}

void ffr_nonces_free(void)
{
	free(rp);
	rp = NULL;
}

/* The state of (host, boot), made if needed (reusing the least recent). */
static struct sender *sender(const char *host, uint64_t boot, int64_t now)
{
	struct sender *old = &rp->s[0];

	for (int i = 0; i < SENDERS; i++) {
		struct sender *s = &rp->s[i];

		if (s->last_ms && s->boot == boot && !strcmp(s->host, host))
			return s;
		if (s->last_ms < old->last_ms)
			old = s;
	}
	if (old->last_ms && now - old->last_ms < 2 * WINDOW_MS)
		return NULL; /* all slots recently used: refuse rather than forget */
	memset(old, 0, sizeof(*old));
	snprintf(old->host, sizeof(old->host), "%s", host);
	old->boot = boot;
	return old;
}

/* Claims counter c of s; -EALREADY if seen, or too old for the window. */
static int claim(struct sender *s, uint64_t c, int64_t now)
{
	uint64_t *w = &s->seen[(c % WINDOW) / 64], bit = 1ull << (c % 64);

	if (s->last_ms && c + WINDOW <= s->max)
		return -EALREADY;
	if (!s->last_ms || c > s->max) {
		/* slide: forget the counters the window leaves behind */
		uint64_t from = s->last_ms ? s->max + 1 : c, n = c - from + 1;

		for (uint64_t k = 0; k < n && k < WINDOW; k++)
			s->seen[((from + k) % WINDOW) / 64] &= ~(1ull << ((from + k) % 64));
		s->max = c;
	} else if (*w & bit) {
		return -EALREADY;
	}
	*w |= bit;
	s->last_ms = now;
	return 0;
}

int ffr_xmac(const struct ffr_router *r, enum ffr_key k, const void *msg, size_t len,
	     uint8_t out[FFR_MAC_LEN])
{
	const struct ffr_xhost *xh = ffr_xh(r);

	if (!xh || !xh->keys || k >= FFR_KEYS)
		return -EACCES;
	ff_mac(xh->keys[k], FF_KEY_LEN, msg, len, out);
	return 0;
}

bool ffr_xmac_equal(const uint8_t a[FFR_MAC_LEN], const uint8_t b[FFR_MAC_LEN])
{
	return sodium_memcmp(a, b, FFR_MAC_LEN) == 0;
}

int ffr_xsocket(struct ffr_router *r, const struct ff_sa *to)
{
	const struct ff_sa *from = &ffr_xh(r)->src;
	struct sockaddr_storage ss;
	int one = 1, len, fd = socket(to->ip.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int err;

	if (fd < 0)
		return -errno;
	if (from->ip.family == to->ip.family) {
		/* the port at connect, not now: a bound port is the socket's alone */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		len = ff_sa_to_sockaddr(from, from->ip.family, &ss);
		if (bind(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0)
			ff_dbg("connects to other routers: cannot leave from our address: %s",
			       strerror(errno));
	}
	len = ff_sa_to_sockaddr(to, to->ip.family, &ss);
	if (connect(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int ffr_preamble_bind(Ff__XPreamble *p, struct ffr_xbind *b, const char *dst_host, int fd,
		      const struct ff_sa *to)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ff_sa mine;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ff_sa_from_sockaddr(&mine, (struct sockaddr *)&ss, len) < 0)
		return -EAFNOSUPPORT;
	ff_sa_to_proto(&mine, &b->src, b->sb);
	ff_sa_to_proto(to, &b->dst, b->db);
	p->dst_host = (char *)dst_host;
	p->via_src = &b->src;
	p->via_dst = &b->dst;
	return 0;
}

int ffr_preamble_seal(struct ffr_router *r, Ff__XPreamble *p, uint8_t *buf, size_t cap)
{
	size_t len;

	if (!ffr_xh(r)->keys)
		return -EACCES;
	if (replay_init() < 0)
		return -ENOMEM;
	p->version = XVERSION;
	p->time_ms = (uint64_t)now_ms();
	p->boot = rp->boot;
	p->seq = ++rp->seq;
	len = ff_msg_size(&p->base);
	if (len + FFR_MAC_LEN > FFR_XFRAME_MAX || 2 + len + FFR_MAC_LEN > cap)
		return -EMSGSIZE;
	ff_msg_pack(&p->base, buf + 2);
	ffr_xmac(r, FFR_KEY_PREAMBLE, buf + 2, len, buf + 2 + len);
	len += FFR_MAC_LEN;
	buf[0] = (uint8_t)(len >> 8);
	buf[1] = (uint8_t)len;
	return (int)(2 + len);
}

static bool sa_equal(const struct ff_sa *a, const struct ff_sa *b)
{
	return a->port == b->port && ff_ip_equal(&a->ip, &b->ip);
}

/* Whether p was sealed for this router and the connection via. */
static int bound(struct ffr_router *r, const Ff__XPreamble *p, const struct ffr_xvia *via)
{
	const struct ffr_host *h;
	struct ff_sa vs, vd;

	if (strcmp(p->dst_host, r->host_id) != 0)
		return -EXDEV;
	if (!ffr_xh(r)->addr_check)
		return 0;
	h = ffr_host_find(r, p->src_host);
	if (!h || !ff_ip_equal(&h->addr.ip, &via->peer.ip))
		return -EADDRNOTAVAIL;
	if (ff_sa_from_proto(&vs, p->via_src) < 0 || ff_sa_from_proto(&vd, p->via_dst) < 0 ||
	    !sa_equal(&vs, &via->peer) || !sa_equal(&vd, &via->local))
		return -ENOTCONN;
	return 0;
}

int ffr_preamble_open(struct ffr_router *r, const uint8_t *msg, size_t len, Ff__XPreamble **out)
{
	return ffr_preamble_accept(r, msg, len, NULL, out);
}

int ffr_preamble_accept(struct ffr_router *r, const uint8_t *msg, size_t len,
			const struct ffr_xvia *via, Ff__XPreamble **out)
{
	uint8_t mac[FFR_MAC_LEN];
	Ff__XPreamble *p;
	struct sender *s;
	int64_t now = now_ms(), skew;
	int err;

	if (len <= FFR_MAC_LEN)
		return -EACCES;
	len -= FFR_MAC_LEN;
	if (ffr_xmac(r, FFR_KEY_PREAMBLE, msg, len, mac) < 0 || !ffr_xmac_equal(mac, msg + len))
		return -EACCES;
	p = (Ff__XPreamble *)ff_msg_unpack(&ff__xpreamble__descriptor, msg, len);
	if (!p)
		return -EBADMSG;
	skew = now - (int64_t)p->time_ms;
	if (p->version != XVERSION)
		err = -EPROTO;
	else if (!*p->src_host || strlen(p->src_host) > FFR_HOST_MAX || !p->seq)
		err = -EBADMSG;
	else if (skew > WINDOW_MS || skew < -WINDOW_MS)
		err = -ETIME;
	else
		err = via ? bound(r, p, via) : 0;
	if (!err && replay_init() < 0)
		err = -ENOMEM;
	else if (!err)
		err = (s = sender(p->src_host, p->boot, now)) ? claim(s, p->seq, now) : -ENOSPC;
	if (err) {
		ff__xpreamble__free_unpacked(p, NULL);
		return err;
	}
	*out = p;
	return 0;
}

/* HMAC(reply key, tag || the reply's bytes) */
static int reply_mac(struct ffr_router *r, const uint8_t *tag, const uint8_t *msg, size_t len,
		     uint8_t out[FFR_MAC_LEN])
{
	uint8_t buf[FFR_MAC_LEN + FFR_XFRAME_MAX];

	if (len > FFR_XFRAME_MAX)
		return -EMSGSIZE;
	memcpy(buf, tag, FFR_MAC_LEN);
	memcpy(buf + FFR_MAC_LEN, msg, len);
	return ffr_xmac(r, FFR_KEY_REPLY, buf, FFR_MAC_LEN + len, out);
}

size_t ffr_xreply_seal(struct ffr_router *r, const uint8_t *tag, Ff__Status st, const char *err,
		       uint8_t *buf, size_t cap)
{
	Ff__XReply rep = FF__XREPLY__INIT;
	size_t len;

	rep.status = st;
	rep.error = (char *)(err ? err : "");
	len = ff_msg_size(&rep.base);
	if (2 + len + FFR_MAC_LEN > cap) {
		rep.error = (char *)"";
		len = ff_msg_size(&rep.base);
	}
	ff_msg_pack(&rep.base, buf + 2);
	if (!tag || reply_mac(r, tag, buf + 2, len, buf + 2 + len) < 0)
		memset(buf + 2 + len, 0, FFR_MAC_LEN);
	len += FFR_MAC_LEN;
	buf[0] = (uint8_t)(len >> 8);
	buf[1] = (uint8_t)len;
	return 2 + len;
}

void ffr_xreply_send(struct ffr_router *r, int fd, const uint8_t *tag, Ff__Status st,
		     const char *err)
{
	uint8_t buf[256];
	size_t len = ffr_xreply_seal(r, tag, st, err, buf, sizeof(buf));

	if (send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
		ff_dbg("ingress: reply not sent: %s", strerror(errno));
}

int ffr_xreply_open(struct ffr_router *r, const uint8_t *tag, const uint8_t *msg, size_t len,
		    Ff__Status *st, char *why, size_t whylen)
{
	uint8_t mac[FFR_MAC_LEN];
	Ff__XReply *rep = NULL;
	bool ok;

	if (len > FFR_MAC_LEN)
		rep = (Ff__XReply *)ff_msg_unpack(&ff__xreply__descriptor, msg, len - FFR_MAC_LEN);
	if (!rep) {
		snprintf(why, whylen, "a malformed answer");
		return -EBADMSG;
	}
	len -= FFR_MAC_LEN;
	ok = reply_mac(r, tag, msg, len, mac) == 0 && ffr_xmac_equal(mac, msg + len);
	snprintf(why, whylen, "%s%s", *rep->error ? rep->error : ff_status_name(rep->status),
		 ok ? "" : " (unverified: the answer failed its MAC)");
	if (ok)
		*st = rep->status;
	ff__xreply__free_unpacked(rep, NULL);
	return ok ? 0 : -EACCES;
}

int ffr_xframe_read(int fd, uint8_t *in, size_t cap, size_t *inlen, size_t *inwant)
{
	while (*inlen < *inwant) {
		ssize_t n = recv(fd, in + *inlen, *inwant - *inlen, MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0)
			return -ECONNRESET;
		*inlen += (size_t)n;
		if (*inwant == 2 && *inlen == 2) {
			*inwant = 2 + ((size_t)in[0] << 8 | in[1]);
			if (*inwant > cap || *inwant < 3)
				return -EPROTO;
		}
	}
	return 1;
}
