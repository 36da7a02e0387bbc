/* ffrouter/xhost/auth.c: what one router accepts from another. A preamble
 * sealed with the cluster secret opens; one sealed with another secret, a
 * flipped byte, a truncated frame, a replay or a stale clock does not. */
#include "cu.h"

#include "mac.h"
#include "msg.h"
#include "inproc.h"
#include "mac.h"
#include "xhost/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SECRET "0123456789abcdef-the-cluster"

static struct event_base *base;
static struct ffr_router *r, *other, *none; /* none: no cluster secret */
static Ff__Addr src, dst;
static uint8_t sb[4] = {10, 200, 1, 2}, db[4] = {10, 200, 2, 2};

static void setup_routers(void)
{
	if (r)
		return;
	base = event_base_new();
	r = ip_router_new(base, "B", SECRET, false, NULL);
	other = ip_router_new(base, "C", "0123456789abcdef-another-one", false, NULL);
	none = ip_router_new(base, "D", NULL, false, NULL);
	CU_ASSERT_FATAL(r && other && none);
}

static int sealed(struct ffr_router *by, uint8_t *buf, size_t cap)
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT;

	ff__addr__init(&src);
	ff__addr__init(&dst);
	src.family = dst.family = AF_INET;
	src.ip.data = sb;
	dst.ip.data = db;
	src.ip.len = dst.ip.len = 4;
	src.port = 40000;
	dst.port = 80;
	p.src_host = (char *)"A";
	p.src_container = (char *)"a1";
	p.src = &src;
	p.dst = &dst;
	return ffr_preamble_seal(by, &p, buf, cap);
}

static void test_roundtrip(void)
{
	uint8_t buf[FFR_XFRAME_MAX + 2];
	Ff__XPreamble *p = NULL;
	int n;

	setup_routers();
	n = sealed(r, buf, sizeof(buf));
	CU_ASSERT_FATAL(n > 2);
	CU_ASSERT_EQUAL((size_t)n, 2 + ((size_t)buf[0] << 8 | buf[1]));
	CU_ASSERT_EQUAL(ffr_preamble_open(r, buf + 2, (size_t)n - 2, &p), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_STRING_EQUAL(p->src_container, "a1");
	CU_ASSERT_EQUAL(p->dst->port, 80);
	ff__xpreamble__free_unpacked(p, NULL);
	/* the same bytes again: a replay */
	CU_ASSERT_EQUAL(ffr_preamble_open(r, buf + 2, (size_t)n - 2, &p), -EALREADY);
}

static void test_forgeries(void)
{
	uint8_t buf[FFR_XFRAME_MAX + 2];
	Ff__XPreamble *p = NULL;
	int n;

	setup_routers();
	n = sealed(other, buf, sizeof(buf));
	CU_ASSERT_EQUAL(ffr_preamble_open(r, buf + 2, (size_t)n - 2, &p), -EACCES);
	n = sealed(r, buf, sizeof(buf));
	buf[10] ^= 1;
	CU_ASSERT_EQUAL(ffr_preamble_open(r, buf + 2, (size_t)n - 2, &p), -EACCES);
	buf[10] ^= 1;
	CU_ASSERT_EQUAL(ffr_preamble_open(r, buf + 2, (size_t)n - 3, &p), -EACCES);
	CU_ASSERT_EQUAL(ffr_preamble_open(r, buf + 2, 10, &p), -EACCES);
	/* no secret here: nothing opens, nothing is sealed */
	CU_ASSERT_EQUAL(ffr_preamble_open(none, buf + 2, (size_t)n - 2, &p), -EACCES);
	CU_ASSERT_EQUAL(sealed(none, buf, sizeof(buf)), -EACCES);
	/* the genuine one still opens after all that */
	CU_ASSERT_EQUAL(ffr_preamble_open(r, buf + 2, (size_t)n - 2, &p), 0);
	ff__xpreamble__free_unpacked(p, NULL);
}

/* Opens a preamble with the given fields, MAC'd with key (klen bytes);
 * its status. */
static int forged_with(const void *key, size_t klen, const char *host, uint64_t boot,
		       uint64_t seq, int64_t age_ms)
{
	Ff__XPreamble p = FF__XPREAMBLE__INIT, *out = NULL;
	uint8_t buf[512];
	struct timespec ts;
	size_t len;
	int err;

	clock_gettime(CLOCK_REALTIME, &ts);
	p.version = 2;
	p.src_host = (char *)host;
	p.time_ms = (uint64_t)((int64_t)ts.tv_sec * 1000 - age_ms);
	p.boot = boot;
	p.seq = seq;
	len = ff_msg_pack(&p.base, buf);
	ff_mac(key, klen, buf, len, buf + len);
	err = ffr_preamble_open(r, buf, len + FF_MAC_LEN, &out);
	if (out)
		ff__xpreamble__free_unpacked(out, NULL);
	return err;
}

/* The same, well MAC'd: with the preamble key derived from the secret. */
static int forged(const char *host, uint64_t boot, uint64_t seq, int64_t age_ms)
{
	uint8_t key[FF_KEY_LEN];

	ff_kdf(SECRET, strlen(SECRET), FFR_KEY_PREAMBLE + 1, key);
	return forged_with(key, sizeof(key), host, boot, seq, age_ms);
}

/* The secret is never a key: a preamble MAC'd with the raw secret, or with
 * the key of another purpose (rdma_cm frames, replies), does not open. */
static void test_keys(void)
{
	uint8_t key[FF_KEY_LEN];

	setup_routers();
	CU_ASSERT_EQUAL(forged_with(SECRET, strlen(SECRET), "K", 5, 1, 0), -EACCES);
	ff_kdf(SECRET, strlen(SECRET), FFR_KEY_CM + 1, key);
	CU_ASSERT_EQUAL(forged_with(key, sizeof(key), "K", 5, 2, 0), -EACCES);
	ff_kdf(SECRET, strlen(SECRET), FFR_KEY_REPLY + 1, key);
	CU_ASSERT_EQUAL(forged_with(key, sizeof(key), "K", 5, 3, 0), -EACCES);
	CU_ASSERT_EQUAL(forged("K", 5, 4, 0), 0);
	/* and the keys are the secret's: another secret gives others */
	ff_kdf("0123456789abcdef-another-one", 28, FFR_KEY_PREAMBLE + 1, key);
	CU_ASSERT_EQUAL(forged_with(key, sizeof(key), "K", 5, 5, 0), -EACCES);
}

/* A clock two minutes off, no sender or no counter: refused. */
static void test_stale(void)
{
	setup_routers();
	CU_ASSERT_EQUAL(forged("B", 7, 1, 120000), -ETIME);
	CU_ASSERT_EQUAL(forged("B", 7, 1, -120000), -ETIME);
	CU_ASSERT_EQUAL(forged("", 7, 1, 0), -EBADMSG);
	CU_ASSERT_EQUAL(forged("B", 7, 0, 0), -EBADMSG);
}

/* Counters arrive out of order (connections race); each opens once, and
 * one that fell behind the window is refused. Any number of preambles fit:
 * a cache of everything seen ran out after 8192. */
static void test_window(void)
{
	setup_routers();
	CU_ASSERT_EQUAL(forged("W", 42, 10, 0), 0);
	CU_ASSERT_EQUAL(forged("W", 42, 12, 0), 0);
	CU_ASSERT_EQUAL(forged("W", 42, 11, 0), 0);
	CU_ASSERT_EQUAL(forged("W", 42, 11, 0), -EALREADY);
	CU_ASSERT_EQUAL(forged("W", 42, 10, 0), -EALREADY);
	for (uint64_t c = 13; c < 100000; c++)
		if (forged("W", 42, c, 0) != 0) {
			CU_FAIL("a fresh counter was refused");
			break;
		}
	CU_ASSERT_EQUAL(forged("W", 42, 99999, 0), -EALREADY);
	CU_ASSERT_EQUAL(forged("W", 42, 90000, 0), -EALREADY); /* behind the window */
	CU_ASSERT_EQUAL(forged("W", 42, 200000, 0), 0);	   /* a jump ahead */
	/* the same counters under another boot, or from another host, are new */
	CU_ASSERT_EQUAL(forged("W", 43, 11, 0), 0);
	CU_ASSERT_EQUAL(forged("V", 42, 11, 0), 0);
	/* and the old boot is still remembered */
	CU_ASSERT_EQUAL(forged("W", 42, 200000, 0), -EALREADY);
}

/* An answer opens only for the preamble it was made for, under the
 * cluster's reply key; its text is there in every case, for the log. */
static void test_reply_frame(void)
{
	uint8_t buf[256], tag[FFR_MAC_LEN], tag2[FFR_MAC_LEN];
	Ff__Status st = FF__STATUS__ST_OK;
	char why[128];
	size_t n;

	setup_routers();
	memset(tag, 7, sizeof(tag));
	memset(tag2, 8, sizeof(tag2));
	n = ffr_xreply_seal(r, tag, FF__STATUS__ST_REFUSED, "no", buf, sizeof(buf));
	CU_ASSERT_EQUAL(n, 2 + ((size_t)buf[0] << 8 | buf[1]));
	CU_ASSERT_EQUAL(ffr_xreply_open(r, tag, buf + 2, n - 2, &st, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_REFUSED);
	CU_ASSERT_STRING_EQUAL(why, "no");
	/* for another preamble, or from a router with another secret */
	st = FF__STATUS__ST_OK;
	CU_ASSERT_EQUAL(ffr_xreply_open(r, tag2, buf + 2, n - 2, &st, why, sizeof(why)), -EACCES);
	CU_ASSERT_EQUAL(st, FF__STATUS__ST_OK); /* not written */
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "unverified"));
	CU_ASSERT_EQUAL(ffr_xreply_open(other, tag, buf + 2, n - 2, &st, why, sizeof(why)),
			-EACCES);
	/* a refusal of a preamble that did not authenticate: zeros, no MAC */
	n = ffr_xreply_seal(r, NULL, FF__STATUS__ST_PERM, "not authenticated", buf, sizeof(buf));
	CU_ASSERT_EQUAL(ffr_xreply_open(r, tag, buf + 2, n - 2, &st, why, sizeof(why)), -EACCES);
	for (size_t i = n - FFR_MAC_LEN; i < n; i++)
		CU_ASSERT_EQUAL(buf[i], 0);
	/* malformed, or too short to hold a MAC */
	CU_ASSERT_EQUAL(ffr_xreply_open(r, tag, buf + 2, 10, &st, why, sizeof(why)), -EBADMSG);
}

/* A secret file SECRET with mode and owner uid in r's run directory;
 * what reading it gives. */
static int read_secret_as(mode_t mode, uid_t uid)
{
	char path[PATH_MAX];
	int fd, err;

	snprintf(path, sizeof(path), "%s/secret-test", r->rundir);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, SECRET "\n", strlen(SECRET) + 1), (ssize_t)strlen(SECRET) + 1);
	CU_ASSERT_EQUAL(fchmod(fd, mode), 0);
	if (uid != geteuid())
		CU_ASSERT_EQUAL(fchown(fd, uid, (gid_t)-1), 0);
	close(fd);
	err = ffr_read_secret(ffr_xh(r), path);
	unlink(path);
	return err;
}

/* The secret file must be the router's own and no one else's to read:
 * group or others' bits, or another owner (who could read or change
 * it), are refused. */
static void test_secret_file(void)
{
	setup_routers();
	CU_ASSERT_EQUAL(read_secret_as(0600, geteuid()), 0);
	CU_ASSERT_EQUAL(read_secret_as(0400, geteuid()), 0);
	CU_ASSERT_EQUAL(read_secret_as(0640, geteuid()), -EPERM);
	CU_ASSERT_EQUAL(read_secret_as(0604, geteuid()), -EPERM);
	if (geteuid() == 0) /* (only root can give a file away) */
		CU_ASSERT_EQUAL(read_secret_as(0600, 65534), -EPERM);
	/* and the keys are still the cluster's: a preamble still opens */
	test_roundtrip();
}

static void test_teardown(void)
{
	ip_router_free(r);
	ip_router_free(other);
	ip_router_free(none);
	event_base_free(base);
	r = other = none = NULL;
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"roundtrip_and_replay", test_roundtrip},
		{"forgeries", test_forgeries},
		{"stale", test_stale},
		{"keys", test_keys},
		{"window", test_window},
		{"reply_frame", test_reply_frame},
		{"secret_file", test_secret_file},
		{"teardown", test_teardown},
		{0},
	};

	return cu_run("auth", tests);
}
