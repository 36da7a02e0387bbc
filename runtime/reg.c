/* The router requests the CNI plugin and the runtime wrapper make (reg.h). */
#include "reg.h"

#include <stdio.h>
#include <string.h>

int ffn_name_of(const char *cid, char *name, size_t cap)
{
	size_t n = strlen(cid);

	if (n == 0 || cap < 2)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char ch = cid[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');

		if (!alnum && (i == 0 || (ch != '-' && ch != '_' && ch != '.')))
			return -1;
	}
	snprintf(name, cap, "%.*s", (int)(n < FFN_NAME_MAX ? n : FFN_NAME_MAX), cid);
	return 0;
}

int ffn_call(struct ff_admin *a, Ff__Request *req, Ff__Reply ***reps, size_t *n)
{
	Ff__Reply **v;
	size_t k;
	int st;

	if (ff_admin_call(a, req, &v, &k) < 0)
		return -1;
	st = v[0]->status;
	if (st)
		snprintf(a->err, sizeof(a->err), "%s", ff_admin_reply_error(v[0]));
	if (reps && !st) {
		*reps = v;
		*n = k;
	} else {
		ff_admin_replies_free(v, k);
	}
	return st;
}

static int register_once(struct ff_admin *a, const char *name, const struct ffn_ips *ips,
			 const char *netns)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Register m = FF__REGISTER__INIT;
	char *v[FFN_MAX_IPS];

	for (size_t i = 0; i < ips->n; i++)
		v[i] = (char *)ips->v[i];
	m.name = (char *)name;
	m.ips = v;
	m.n_ips = ips->n;
	m.netns = (char *)netns;
	req.body_case = FF__REQUEST__BODY_REGISTER;
	req.register_ = &m;
	return ffn_call(a, &req, NULL, NULL);
}

int ffn_unregister(struct ff_admin *a, const char *name)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__Unregister m = FF__UNREGISTER__INIT;

	m.name = (char *)name;
	req.body_case = FF__REQUEST__BODY_UNREGISTER;
	req.unregister = &m;
	return ffn_call(a, &req, NULL, NULL);
}

int ffn_list(struct ff_admin *a, Ff__Reply ***reps, size_t *n)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__ListContainers m = FF__LIST_CONTAINERS__INIT;
	int st;

	req.body_case = FF__REQUEST__BODY_LIST;
	req.list = &m;
	st = ffn_call(a, &req, reps, n);
	for (size_t i = 0; st == 0 && i < *n; i++)
		if ((*reps)[i]->body_case != FF__REPLY__BODY_LIST) {
			ff_admin_replies_free(*reps, *n);
			snprintf(a->err, sizeof(a->err), "unexpected reply to a listing");
			st = -1;
		}
	return st;
}

const Ff__Container *ffn_find(Ff__Reply **reps, size_t n, const char *name)
{
	for (size_t p = 0; p < n; p++)
		for (size_t i = 0; i < reps[p]->list->n_containers; i++)
			if (!strcmp(reps[p]->list->containers[i]->name, name))
				return reps[p]->list->containers[i];
	return NULL;
}

static bool holds_any(const Ff__Container *k, const struct ffn_ips *ips)
{
	for (size_t i = 0; i < k->n_ips; i++)
		for (size_t j = 0; j < ips->n; j++)
			if (!strcmp(k->ips[i], ips->v[j]))
				return true;
	return false;
}

bool ffn_same_ips(const Ff__Container *k, const struct ffn_ips *ips)
{
	size_t hit = 0;

	for (size_t j = 0; j < ips->n; j++)
		for (size_t i = 0; i < k->n_ips; i++)
			hit += !strcmp(k->ips[i], ips->v[j]);
	return k->n_ips == ips->n && hit == ips->n;
}

int ffn_register(struct ff_admin *a, const char *marks, const char *name,
		 const struct ffn_ips *ips, const char *netns, const char *who)
{
	int st = register_once(a, name, ips, netns);

	if ((st == FF__STATUS__ST_EXISTS || st == FF__STATUS__ST_ADDR_IN_USE) &&
	    ffn_clear_stale(a, marks, name, ips, who) > 0)
		st = register_once(a, name, ips, netns);
	return st;
}

int ffn_clear_stale(struct ff_admin *a, const char *marks, const char *name,
		    const struct ffn_ips *ips, const char *who)
{
	Ff__Reply **reps;
	size_t n;
	int cleared = 0;

	if (ffn_list(a, &reps, &n))
		return -1;
	for (size_t p = 0; p < n; p++)
		for (size_t i = 0; i < reps[p]->list->n_containers; i++) {
			const Ff__Container *k = reps[p]->list->containers[i];
			struct ffn_mark m;
			int st;

			if ((name && strcmp(k->name, name) && !holds_any(k, ips)) ||
			    ffn_mark_read(marks, k->name, &m) || !ffn_mark_stale(&m))
				continue;
			fprintf(stderr, "%s: %s: removing the stale registration of %s (its "
					"namespace %s is gone)\n", who, name ? name : "sweep", k->name,
				m.netns);
			st = ffn_unregister(a, k->name);
			if (st == 0 || st == FF__STATUS__ST_NOT_FOUND) {
				ffn_mark_remove(marks, k->name);
				cleared++;
			}
		}
	ff_admin_replies_free(reps, n);
	return cleared;
}
