/* Wire-level constants shared by the shim, the router and ffctl.
 * Changing any of these is a protocol change: bump FF_PROTO_VERSION. */
#pragma once

#define FF_PROTO_VERSION 1

/* Largest control message the router accepts from a shim or ffctl. */
#define FF_MSG_MAX (64 * 1024)
/* Largest single reply; longer listings are split with Reply.more. */
#define FF_REPLY_MAX (48 * 1024)
/* First byte of every datagram: an all-default protobuf message packs to
 * zero bytes, and a zero-length SOCK_SEQPACKET datagram reads as EOF. */
#define FF_FRAME_V1 0xf1

/* Most fds any message carries. */
#define FF_MAX_FDS 3

#define FF_ENV_SOCK "FFNET_SOCK"
#define FF_ENV_LOG "FF_LOG_LEVEL"
#define FF_ENV_DISABLE "FFNET_DISABLE"
#define FF_ENV_SPIN "FFNET_SPIN_US" /* libffshim.7 */
#define FF_DEFAULT_SOCK "/run/ffnet/ffrouter.sock"
#define FF_SOCK_NAME "ffrouter.sock"
#define FF_DEFAULT_RUNDIR "/run/ffnet"

/* Hello.caps bits. */
#define FF_CAP_LISTEN (1u << 0)
#define FF_CAP_CONNECT (1u << 1)
#define FF_CAP_LOOKUP (1u << 2)
/* the shim reads and writes a same-host connection's rings (ff/sring.h)
 * of this FF_SRING_VERSION. A router gives rings only between two shims
 * that say so, and a shim that cannot attach them fails the connect
 * (ENOBUFS): so a new ring layout takes a new bit, and a shim of the old
 * one (an app started before an upgrade) gets the plain socketpair. */
#define FF_CAP_RINGS (1u << 3)

/* LookupReply.kind */
#define FF_KIND_LISTENER 1
#define FF_KIND_CONN 2
