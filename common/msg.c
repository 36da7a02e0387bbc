/* Message framing. Sizes are bounded on both sides: a sender refuses to
 * build a datagram over FF_MSG_MAX, a receiver rejects a truncated one. */
#include "msg.h"
#include "fdpass.h"

#include <ff/wire.h>

#include <errno.h>
#include <stdlib.h>

int ff_msg_send(int sock, const ProtobufCMessage *m, const int *fds, int nfds)
{
	uint8_t small[1024];
	uint8_t *buf = small;
	size_t len = protobuf_c_message_get_packed_size(m);
	int r;

	if (len > FF_MSG_MAX)
		return -EMSGSIZE;
	if (len > sizeof(small)) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
	}
	protobuf_c_message_pack(m, buf);
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
	m = protobuf_c_message_unpack(d, NULL, (size_t)n, buf);
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
