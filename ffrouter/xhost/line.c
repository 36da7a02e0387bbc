/* Lifelines: MAC'd frames both ways on a TCP connection that a sealed
 * preamble opened between two routers (xhost.h, struct ffr_xline). Used by
 * rdma_cm's connections and by sockets over RDMA's QP pairs. Every length
 * read from the other router is checked (ffr_xframe_read) before use, and
 * a frame counts only if its MAC, bound to this connection, its direction
 * and its index, holds. */
#include "internal.h"

#include "msg.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#define MAC_HEAD (FFR_MAC_LEN + 1 + 8)

void ffr_xline_init(struct ffr_xline *l, struct ffr_router *r, int fd, enum ffr_key key,
		    bool active)
{
	int on = 1, idle = 10, intvl = 5, cnt = 3;

	memset(l, 0, sizeof(*l));
	l->r = r;
	l->fd = fd;
	l->key = key;
	l->active = active;
	l->inwant = 2;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void frame_mac(const struct ffr_xline *l, char dir, uint64_t n, const uint8_t *msg,
		      size_t len, uint8_t out[FFR_MAC_LEN])
{
	uint8_t buf[MAC_HEAD + FFR_XFRAME_MAX];

	memcpy(buf, l->tag, FFR_MAC_LEN);
	buf[FFR_MAC_LEN] = (uint8_t)dir;
	for (int i = 0; i < 8; i++)
		buf[FFR_MAC_LEN + 1 + i] = (uint8_t)(n >> (56 - 8 * i));
	memcpy(buf + MAC_HEAD, msg, len);
	ffr_xmac(l->r, l->key, buf, MAC_HEAD + len, out);
}

int ffr_xline_flush(struct ffr_xline *l)
{
	while (l->outlen) {
		ssize_t n = send(l->fd, l->out, l->outlen, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 1;
		if (n < 0)
			return -errno;
		memmove(l->out, l->out + n, l->outlen - (size_t)n);
		l->outlen -= (size_t)n;
	}
	return 0;
}

int ffr_xline_send(struct ffr_xline *l, const ProtobufCMessage *m)
{
	size_t len = ff_msg_size(m), flen = len + FFR_MAC_LEN;
	uint8_t *f;

	if (flen > FFR_XFRAME_MAX || l->outlen + 2 + flen > sizeof(l->out))
		return -EMSGSIZE;
	f = l->out + l->outlen;
	f[0] = (uint8_t)(flen >> 8);
	f[1] = (uint8_t)flen;
	ff_msg_pack(m, f + 2);
	frame_mac(l, l->active ? 'A' : 'P', l->tx_n++, f + 2, len, f + 2 + len);
	l->outlen += 2 + flen;
	return ffr_xline_flush(l);
}

int ffr_xline_read(struct ffr_xline *l)
{
	return ffr_xframe_read(l->fd, l->in, sizeof(l->in), &l->inlen, &l->inwant);
}

ProtobufCMessage *ffr_xline_open(struct ffr_xline *l, const ProtobufCMessageDescriptor *d)
{
	size_t len = l->inlen - 2;
	uint8_t mac[FFR_MAC_LEN];
	ProtobufCMessage *m;

	if (l->inlen < 2 || len <= FFR_MAC_LEN)
		return NULL;
	len -= FFR_MAC_LEN;
	frame_mac(l, l->active ? 'P' : 'A', l->rx_n, l->in + 2, len, mac);
	if (!ffr_xmac_equal(mac, l->in + 2 + len))
		return NULL;
	l->rx_n++;
	m = ff_msg_unpack(d, l->in + 2, len);
	l->inlen = 0;
	l->inwant = 2;
	return m;
}
