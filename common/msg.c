/* Message framing. Sizes are bounded on both sides: a sender refuses to
 * build a datagram over FF_MSG_MAX, a receiver rejects a truncated one. */
#include "msg.h"
#include "fdpass.h"

#include <ff/wire.h>

#include <errno.h>
#include <stdlib.h>

size_t ff_msg_size(const ProtobufCMessage *m)
{
	return 1 + protobuf_c_message_get_packed_size(m);
}

size_t ff_msg_pack(const ProtobufCMessage *m, uint8_t *buf)
{
	buf[0] = FF_FRAME_V1;
	return 1 + protobuf_c_message_pack(m, buf + 1);
}

ProtobufCMessage *ff_msg_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
				size_t len)
{
	if (len < 1 || buf[0] != FF_FRAME_V1)
		return NULL;
	return protobuf_c_message_unpack(d, NULL, len - 1, buf + 1);
}

int ff_msg_send(int sock, const ProtobufCMessage *m, const int *fds, int nfds)
{
	uint8_t small[1024];
	uint8_t *buf = small;
	size_t len = ff_msg_size(m);
	int r;

	if (len > FF_MSG_MAX)
		return -EMSGSIZE;
	if (len > sizeof(small)) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
	}
	ff_msg_pack(m, buf);
	r = ff_send_fds(sock, buf, len, fds, nfds);
	if (buf != small)
		free(buf);
	return r;
}

int ff_msg_recv(int sock, const ProtobufCMessageDescriptor *d, void *buf, size_t cap,
		ProtobufCMessage **out, int *fds, int maxfds, int *nfds, int flags)
{
	ProtobufCMessage *m;
	ssize_t n;

	n = ff_recv_fds(sock, buf, cap, fds, maxfds, nfds, flags);
	if (n <= 0)
		return (int)n;
	m = ff_msg_unpack(d, buf, (size_t)n);
	if (!m) {
		ff_close_fds(fds, *nfds);
		*nfds = 0;
		return -EBADMSG;
	}
	*out = m;
	return 1;
}

int ff_status_errno(Ff__Status st)
{
	switch (st) {
	case FF__STATUS__ST_OK:
		return 0;
	case FF__STATUS__ST_INVALID:
		return EINVAL;
	case FF__STATUS__ST_NOT_FOUND:
		return ENOENT;
	case FF__STATUS__ST_EXISTS:
		return EEXIST;
	case FF__STATUS__ST_ADDR_IN_USE:
		return EADDRINUSE;
	case FF__STATUS__ST_NO_LISTENER:
		return ECONNREFUSED;
	case FF__STATUS__ST_BUSY:
		return EAGAIN;
	case FF__STATUS__ST_PERM:
		return EPERM;
	case FF__STATUS__ST_QUOTA:
		return ENOBUFS;
	case FF__STATUS__ST_UNSUPPORTED:
		return EOPNOTSUPP;
	case FF__STATUS__ST_VERSION:
	case FF__STATUS__ST_NOT_HELLO:
		return EPROTO;
	default:
		return EIO;
	}
}

const char *ff_status_name(Ff__Status st)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&ff__status__descriptor, st);

	return v ? v->name : "unknown";
}
