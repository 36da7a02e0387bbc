/* common/sring.c, the shared-memory rings of a same-host connection, in a
 * memfd mapped twice as two shims map it:
 * - format and attach: sizes out of range or not a power of two, a memfd
 *   too short, a bad magic or version are refused;
 * - a stream one way, writes and reads of random sizes (iovecs too) across
 *   the ring's wrap-around, byte for byte; MSG_PEEK-like reads leave the
 *   bytes; full and empty say 0;
 * - EOF after the last byte once the writer shuts, EPIPE for a writer
 *   whose reader shut;
 * - a hostile peer: whatever it writes into the shared page (a head behind
 *   tail or too far ahead, a tail past head, a changed size) is a corrupt
 *   ring, ECONNRESET from then on, and no copy leaves the mapping (under
 *   the sanitizers and valgrind: checked);
 * - a copy longer than FF_SRING_STEP is published in pieces: a writer (or
 *   reader) whose buffer faults in its second piece has published the
 *   first, byte for byte.
 * The doorbell and readiness of the rings: test_sdoor.c. */
#include "cu.h"
#include "sring.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A memfd of rings of size bytes, mapped twice (a and b: sides 0 and 1). */
struct pair {
	int fd;
	size_t len;
	void *ma, *mb;
	struct ff_sring a, b;
};

static void pair_open(struct pair *p, uint32_t size)
{
	p->len = ff_sring_len(size);
	CU_ASSERT_FATAL(p->len > 0);
	p->fd = memfd_create("sring-test", MFD_CLOEXEC);
	CU_ASSERT_FATAL(p->fd >= 0 && ftruncate(p->fd, (off_t)p->len) == 0);
	p->ma = mmap(NULL, p->len, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
	p->mb = mmap(NULL, p->len, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
	CU_ASSERT_FATAL(p->ma != MAP_FAILED && p->mb != MAP_FAILED);
	CU_ASSERT_EQUAL_FATAL(ff_sring_format(p->ma, p->len, size), 0);
	CU_ASSERT_EQUAL_FATAL(ff_sring_attach(&p->a, p->ma, p->len, 0), 0);
	CU_ASSERT_EQUAL_FATAL(ff_sring_attach(&p->b, p->mb, p->len, 1), 0);
}

static void pair_close(struct pair *p)
{
	munmap(p->ma, p->len);
	munmap(p->mb, p->len);
	close(p->fd);
}

static void test_geometry(void)
{
	struct pair p;
	struct ff_sring r;
	struct ff_sring_hdr *h;

	CU_ASSERT_EQUAL(ff_sring_len(FF_SRING_MIN - 1), 0);
	CU_ASSERT_EQUAL(ff_sring_len(FF_SRING_MAX * 2u), 0);
	CU_ASSERT_EQUAL(ff_sring_len(3u << 12), 0);
	CU_ASSERT_EQUAL(ff_sring_len(FF_SRING_DEFAULT), FF_SRING_HDR + 2 * FF_SRING_DEFAULT);
	pair_open(&p, FF_SRING_MIN);
	h = p.ma;
	CU_ASSERT_EQUAL(ff_sring_format(p.ma, p.len - 1, FF_SRING_MIN), -EINVAL);
	CU_ASSERT_EQUAL(ff_sring_attach(&r, p.ma, p.len - 1, 0), -EINVAL); /* too short */
	CU_ASSERT_EQUAL(ff_sring_attach(&r, p.ma, p.len, 2), -EINVAL);
	h->size = FF_SRING_MIN * 2; /* bigger than the memfd */
	CU_ASSERT_EQUAL(ff_sring_attach(&r, p.ma, p.len, 0), -EINVAL);
	h->size = FF_SRING_MIN + 1;
	CU_ASSERT_EQUAL(ff_sring_attach(&r, p.ma, p.len, 0), -EINVAL);
	h->size = FF_SRING_MIN;
	h->version = 99;
	CU_ASSERT_EQUAL(ff_sring_attach(&r, p.ma, p.len, 0), -EINVAL);
	h->version = FF_SRING_VERSION;
	h->magic = 0;
	CU_ASSERT_EQUAL(ff_sring_attach(&r, p.ma, p.len, 0), -EINVAL);
	pair_close(&p);
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 9));
}

static void test_stream(void)
{
	static uint8_t out[3 * FF_SRING_MIN], in[3 * FF_SRING_MIN];
	uint64_t sent = 0, got = 0, total = 1u << 21;
	unsigned seed = 42;
	struct pair p;
	ssize_t n;

	pair_open(&p, FF_SRING_MIN);
	CU_ASSERT_EQUAL(ff_sring_read(&p.b, in, 10, false), 0); /* empty */
	CU_ASSERT(!ff_sring_eof(&p.b));
	CU_ASSERT_EQUAL(ff_sring_writable(&p.a), FF_SRING_MIN);
	while (got < total) {
		size_t w = (size_t)(rand_r(&seed) % sizeof(out)), r = (size_t)(rand_r(&seed) % sizeof(in));
		struct iovec v[2];

		for (size_t i = 0; i < w; i++)
			out[i] = pattern(sent + i);
		v[0] = (struct iovec){out, w / 3};
		v[1] = (struct iovec){out + w / 3, w - w / 3};
		n = sent < total ? ff_sring_writev(&p.a, v, 2) : 0;
		CU_ASSERT_FATAL(n >= 0 && (size_t)n <= w);
		sent += (uint64_t)n;
		if (rand_r(&seed) % 4 == 0) { /* a peek leaves the bytes */
			ssize_t k = ff_sring_read(&p.b, in, r, true);

			CU_ASSERT_FATAL(k >= 0);
			for (ssize_t i = 0; i < k; i++)
				CU_ASSERT_FATAL(in[i] == pattern(got + (uint64_t)i));
			CU_ASSERT_EQUAL(ff_sring_readable(&p.b), sent - got);
		}
		n = ff_sring_read(&p.b, in, r, false);
		CU_ASSERT_FATAL(n >= 0 && (size_t)n <= r);
		for (ssize_t i = 0; i < n; i++)
			CU_ASSERT_FATAL(in[i] == pattern(got + (uint64_t)i));
		got += (uint64_t)n;
		CU_ASSERT_FATAL(sent - got <= FF_SRING_MIN);
	}
	/* full: 0; then EOF after the last byte */
	while (ff_sring_write(&p.a, out, sizeof(out)) > 0)
		;
	CU_ASSERT_EQUAL(ff_sring_writable(&p.a), 0);
	CU_ASSERT_EQUAL(ff_sring_write(&p.a, out, 1), 0);
	ff_sring_shut_tx(&p.a);
	CU_ASSERT(!ff_sring_eof(&p.b));
	CU_ASSERT_EQUAL(ff_sring_read(&p.b, in, sizeof(in), false), FF_SRING_MIN);
	CU_ASSERT(ff_sring_eof(&p.b));
	/* the reader shuts: the writer (the other way) gets EPIPE */
	ff_sring_shut_rx(&p.a);
	CU_ASSERT(ff_sring_peer_gone(&p.b));
	CU_ASSERT_EQUAL(ff_sring_write(&p.b, out, 1), -EPIPE);
	pair_close(&p);
}

/* ---- a hostile peer ---- */

static void test_hostile(void)
{
	struct ff_sring_hdr *h;
	uint8_t buf[64];
	struct pair p;

	/* head behind our tail: the reader sees a corrupt ring */
	pair_open(&p, FF_SRING_MIN);
	h = p.ma;
	CU_ASSERT_EQUAL(ff_sring_write(&p.a, "abc", 3), 3);
	h->dir[0].head = 1; /* side 0 writes dir[0]; b reads it */
	h->dir[0].tail = 2;
	CU_ASSERT_EQUAL(ff_sring_read(&p.b, buf, sizeof(buf), false), -ECONNRESET);
	CU_ASSERT_EQUAL(ff_sring_readable(&p.b), 0);
	h->dir[0].head = h->dir[0].tail = 0; /* and it stays corrupt */
	CU_ASSERT_EQUAL(ff_sring_read(&p.b, buf, sizeof(buf), false), -ECONNRESET);
	pair_close(&p);
	/* head too far ahead */
	pair_open(&p, FF_SRING_MIN);
	h = p.ma;
	h->dir[0].head = (uint64_t)FF_SRING_MIN + 1;
	CU_ASSERT_EQUAL(ff_sring_read(&p.b, buf, sizeof(buf), true), -ECONNRESET);
	pair_close(&p);
	/* a tail past our head: the writer sees it */
	pair_open(&p, FF_SRING_MIN);
	h = p.ma;
	h->dir[0].tail = 5;
	CU_ASSERT_EQUAL(ff_sring_write(&p.a, "x", 1), -ECONNRESET);
	CU_ASSERT_EQUAL(ff_sring_writable(&p.a), 0);
	pair_close(&p);
	/* huge counters that are consistent: masked, inside the ring */
	pair_open(&p, FF_SRING_MIN);
	h = p.ma;
	h->dir[0].head = h->dir[0].tail = UINT64_MAX - 2;
	CU_ASSERT_EQUAL(ff_sring_write(&p.a, "0123456789", 10), 10);
	CU_ASSERT_EQUAL(ff_sring_read(&p.b, buf, sizeof(buf), false), 10);
	CU_ASSERT(!memcmp(buf, "0123456789", 10));
	/* a size changed after attach changes nothing */
	h->size = 1u << 30;
	CU_ASSERT_EQUAL(ff_sring_writable(&p.a), FF_SRING_MIN);
	h->size = FF_SRING_MIN;
	for (int i = 0; i < 1000; i++) { /* random counters: errors, never a wild copy */
		static uint8_t big[2 * FF_SRING_MIN];

		/* fresh ends, so that consistent counters are used, not refused */
		CU_ASSERT_EQUAL_FATAL(ff_sring_attach(&p.a, p.ma, p.len, 0), 0);
		CU_ASSERT_EQUAL_FATAL(ff_sring_attach(&p.b, p.mb, p.len, 1), 0);

		h->dir[i & 1].head = ((uint64_t)rand() << 32) ^ (uint64_t)rand();
		h->dir[i & 1].tail = i % 3 ? h->dir[i & 1].head - (uint64_t)(rand() % (3 * FF_SRING_MIN))
					   : ((uint64_t)rand() << 32) ^ (uint64_t)rand();
		(void)ff_sring_read(i & 1 ? &p.a : &p.b, big, sizeof(big), i % 2);
		(void)ff_sring_write(i & 1 ? &p.b : &p.a, big, sizeof(big));
	}
	pair_close(&p);
}

/* ---- pieces ---- */

static sigjmp_buf fault_jb;

static void on_fault(int sig)
{
	(void)sig;
	siglongjmp(fault_jb, 1);
}

/* STEP bytes of a buffer followed by a page that faults: a copy to or
 * from it stops in its second piece. */
static uint8_t *faulting_buf(size_t *len)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *m = mmap(NULL, FF_SRING_STEP + (size_t)pg, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CU_ASSERT_FATAL(m != MAP_FAILED);
	CU_ASSERT_FATAL(mprotect(m + FF_SRING_STEP, (size_t)pg, PROT_NONE) == 0);
	*len = FF_SRING_STEP + (size_t)pg;
	return m;
}

static void test_pieces(void)
{
	struct sigaction sa = {.sa_handler = on_fault}, old_segv, old_bus;
	static uint8_t in[4 * FF_SRING_STEP];
	volatile ssize_t n = -2;
	size_t len;
	uint8_t *src = faulting_buf(&len);
	struct pair p;

	pair_open(&p, 8 * FF_SRING_STEP);
	for (size_t i = 0; i < FF_SRING_STEP; i++)
		src[i] = pattern(i);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	/* the writer faults in its second piece: the first is there */
	if (!sigsetjmp(fault_jb, 1))
		n = ff_sring_write(&p.a, src, len);
	CU_ASSERT_EQUAL(n, -2); /* it faulted */
	CU_ASSERT_EQUAL(ff_sring_readable(&p.b), FF_SRING_STEP);
	CU_ASSERT_EQUAL(ff_sring_read(&p.b, in, sizeof(in), false), FF_SRING_STEP);
	for (size_t i = 0; i < FF_SRING_STEP; i++)
		CU_ASSERT_FATAL(in[i] == pattern(i));
	/* the reader faults in its second piece: the first is taken */
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = pattern(i + 1);
	CU_ASSERT_EQUAL(ff_sring_write(&p.a, in, sizeof(in)), (ssize_t)sizeof(in));
	n = -2;
	if (!sigsetjmp(fault_jb, 1))
		n = ff_sring_read(&p.b, src, len, false);
	CU_ASSERT_EQUAL(n, -2);
	CU_ASSERT_EQUAL(ff_sring_readable(&p.b), sizeof(in) - FF_SRING_STEP);
	CU_ASSERT_EQUAL(memcmp(src, in, FF_SRING_STEP), 0);
	CU_ASSERT_EQUAL(ff_sring_read(&p.b, in, sizeof(in), false),
			(ssize_t)(sizeof(in) - FF_SRING_STEP));
	CU_ASSERT_EQUAL(in[0], pattern(FF_SRING_STEP + 1));
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	munmap(src, len);
	pair_close(&p);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"geometry", test_geometry},
		{"stream", test_stream},
		{"hostile", test_hostile},
		{"pieces", test_pieces},
		{0},
	};

	return cu_run("sring", tests);
}
