/* What the supervisor remembers of the app's accelerated sockets, by inode:
 * the family the app created them with, options it set at the IP and TCP
 * levels (an AF_UNIX socket has none, so they are kept and read back here),
 * and a non-blocking connect in progress. A record lives while the core
 * knows the socket; sweeps drop the others. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NBITS	 10 /* a second of connects between sweeps: short chains */
#define NBUCKETS (1 << NBITS)
#define MAX_OPTS 16
#define OPT_MAX	 40

struct sv_opt {
	int level, name;
	socklen_t len;
	uint8_t val[OPT_MAX];
};

struct rec {
	struct rec *next;
	struct sv_sock s;
};

struct sv_socks {
	struct rec *b[NBUCKETS];
};

struct sv_socks *sv_socks_new(void)
{
	return calloc(1, sizeof(struct sv_socks));
}

static void rec_free(struct rec *e)
{
	free(e->s.opts);
	free(e);
}

void sv_socks_free(struct sv_socks *t)
{
	if (!t)
		return;
	for (int i = 0; i < NBUCKETS; i++)
		while (t->b[i]) {
			struct rec *e = t->b[i];

			t->b[i] = e->next;
			rec_free(e);
		}
	free(t);
}

static struct rec **slot(struct sv_socks *t, ino_t ino)
{
	struct rec **p = &t->b[(ino * 0x9e3779b97f4a7c15ull) >> (64 - NBITS)];

	while (*p && (*p)->s.ino != ino)
		p = &(*p)->next;
	return p;
}

struct sv_sock *sv_sock_get(struct sv_socks *t, ino_t ino, bool create)
{
	struct rec **p = slot(t, ino);

	if (*p)
		return &(*p)->s;
	if (!create || !(*p = calloc(1, sizeof(**p))))
		return NULL;
	(*p)->s.ino = ino;
	return &(*p)->s;
}

void sv_sock_del(struct sv_socks *t, ino_t ino)
{
	struct rec **p = slot(t, ino), *e = *p;

	if (!e)
		return;
	*p = e->next;
	rec_free(e);
}

void sv_socks_sweep(struct sv_socks *t, struct ffr_container *c)
{
	struct ffr_sock_info si;

	for (int i = 0; i < NBUCKETS; i++) {
		struct rec **p = &t->b[i];

		while (*p) {
			struct rec *e = *p;

			if (c && ffr_sock_lookup(c, e->s.ino, &si) == 0) {
				p = &e->next;
				continue;
			}
			*p = e->next;
			rec_free(e);
		}
	}
}

const void *sv_sock_opt(const struct sv_sock *s, int level, int name, socklen_t *len)
{
	for (int i = 0; i < s->nopts; i++)
		if (s->opts[i].level == level && s->opts[i].name == name) {
			*len = s->opts[i].len;
			return s->opts[i].val;
		}
	return NULL;
}

int sv_sock_opt_set(struct sv_sock *s, int level, int name, const void *val, socklen_t len)
{
	int i;

	if (len > OPT_MAX)
		return -EINVAL;
	for (i = 0; i < s->nopts; i++)
		if (s->opts[i].level == level && s->opts[i].name == name)
			break;
	if (i == s->nopts) {
		if (i == MAX_OPTS)
			return -ENOBUFS;
		if (!s->opts && !(s->opts = calloc(MAX_OPTS, sizeof(*s->opts))))
			return -ENOMEM;
		s->nopts++;
	}
	s->opts[i].level = level;
	s->opts[i].name = name;
	s->opts[i].len = len;
	memcpy(s->opts[i].val, val, len);
	return 0;
}
