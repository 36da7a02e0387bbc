/* Protobuf messages over SOCK_SEQPACKET, one message per datagram. */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "ff.pb-c.h"

/* The framed encoding of m: FF_FRAME_V1 then the protobuf bytes. */
size_t ff_msg_size(const ProtobufCMessage *m);
size_t ff_msg_pack(const ProtobufCMessage *m, uint8_t *buf);
/* Unpacks a framed datagram; NULL if the frame or the message is bad. */
ProtobufCMessage *ff_msg_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
				size_t len);

/* Packs m and sends it with nfds fds (not consumed). 0 or -errno. */
int ff_msg_send(int sock, const ProtobufCMessage *m, const int *fds, int nfds);

/* Receives one datagram into buf[cap] and unpacks it as d. On success (1)
 * *out must be freed with protobuf_c_message_free_unpacked(*out, NULL) and
 * fds[0..*nfds) belong to the caller. Returns 0 when the peer closed, or
 * -errno: -EMSGSIZE (too long), -ETOOMANYREFS (more than maxfds fds),
 * -EBADMSG (does not parse); no fd is left open on error. */
int ff_msg_recv(int sock, const ProtobufCMessageDescriptor *d, void *buf, size_t cap,
		ProtobufCMessage **out, int *fds, int maxfds, int *nfds, int flags);

/* Maps a Status to the errno an application would have seen. */
int ff_status_errno(Ff__Status st);
const char *ff_status_name(Ff__Status st);
