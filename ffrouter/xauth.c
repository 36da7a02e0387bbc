/* Router-to-router authentication. A preamble is a protobuf followed by
 * HMAC-SHA256(cluster secret, protobuf bytes), checked before the bytes are
 * even parsed. Freshness (a clock window) and a cache of recent nonces make
 * a recorded preamble useless to replay. Routers are assumed to have
 * roughly synchronised clocks (NTP); the window is WINDOW_MS either way. */
#include "router.h"

#include "log.h"
#include "msg.h"
#include "sha256.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define XVERSION 1
#define NONCE_LEN 16
#define WINDOW_MS (60 * 1000)
#define NONCE_SLOTS 8192 /* power of two */

struct nonce_ent {
	uint8_t n[NONCE_LEN];
	int64_t expires;
};

static struct nonce_ent *nonces; /* one router per process */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ffr_nonces_free(struct ffr_router *r)
{
	free(nonces);
	nonces = NULL;
}

/* Records a nonce; -EALREADY if seen within the window, -ENOSPC if full. */
static int nonce_claim(const uint8_t *n, int64_t now)
{
	uint32_t h = 0;

	if (!nonces && !(nonces = calloc(NONCE_SLOTS, sizeof(*nonces))))
		return -ENOMEM;
	memcpy(&h, n, sizeof(h));
	for (uint32_t k = 0; k < NONCE_SLOTS; k++) {
		struct nonce_ent *e = &nonces[(h + k) & (NONCE_SLOTS - 1)];

		if (e->expires > now && !memcmp(e->n, n, NONCE_LEN))
			return -EALREADY;
		if (e->expires <= now) {
			memcpy(e->n, n, NONCE_LEN);
			e->expires = now + 2 * WINDOW_MS;
			return 0;
		}
	}
	return -ENOSPC;
}

int ffr_preamble_seal(struct ffr_router *r, Ff__XPreamble *p, uint8_t *buf, size_t cap)
{
	uint8_t nonce[NONCE_LEN];
	size_t len;

	if (!r->secret)
		return -EACCES;
	if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
		return -EIO;
	p->version = XVERSION;
	p->time_ms = (uint64_t)now_ms();
	p->nonce.data = nonce;
	p->nonce.len = sizeof(nonce);
	len = ff_msg_size(&p->base);
	if (len + FF_SHA256_LEN > FFR_XFRAME_MAX || 2 + len + FF_SHA256_LEN > cap)
		return -EMSGSIZE;
	ff_msg_pack(&p->base, buf + 2);
	ff_hmac_sha256(r->secret, r->secret_len, buf + 2, len, buf + 2 + len);
	len += FF_SHA256_LEN;
	buf[0] = (uint8_t)(len >> 8);
	buf[1] = (uint8_t)len;
	p->nonce.data = NULL;
	p->nonce.len = 0;
	return (int)(2 + len);
}

int ffr_preamble_open(struct ffr_router *r, const uint8_t *msg, size_t len, Ff__XPreamble **out)
{
	uint8_t mac[FF_SHA256_LEN];
	Ff__XPreamble *p;
	int64_t now = now_ms(), skew;
	int err;

	if (!r->secret || len <= FF_SHA256_LEN)
		return -EACCES;
	len -= FF_SHA256_LEN;
	ff_hmac_sha256(r->secret, r->secret_len, msg, len, mac);
	if (!ff_memeq_ct(mac, msg + len, FF_SHA256_LEN))
		return -EACCES;
	p = (Ff__XPreamble *)ff_msg_unpack(&ff__xpreamble__descriptor, msg, len);
	if (!p)
		return -EBADMSG;
	skew = now - (int64_t)p->time_ms;
	if (p->version != XVERSION)
		err = -EPROTO;
	else if (p->nonce.len != NONCE_LEN)
		err = -EBADMSG;
	else if (skew > WINDOW_MS || skew < -WINDOW_MS)
		err = -ETIME;
	else
		err = nonce_claim(p->nonce.data, now);
	if (err) {
		ff__xpreamble__free_unpacked(p, NULL);
		return err;
	}
	*out = p;
	return 0;
}

size_t ffr_xreply_frame(Ff__Status st, const char *err, uint8_t *buf, size_t cap)
{
	Ff__XReply rep = FF__XREPLY__INIT;
	size_t len;

	rep.status = st;
	rep.error = (char *)(err ? err : "");
	len = ff_msg_size(&rep.base);
	if (2 + len > cap) {
		rep.error = (char *)"";
		len = ff_msg_size(&rep.base);
	}
	ff_msg_pack(&rep.base, buf + 2);
	buf[0] = (uint8_t)(len >> 8);
	buf[1] = (uint8_t)len;
	return 2 + len;
}
