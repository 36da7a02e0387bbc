/* ffctl list [--json]: registered containers. */
#include "ffctl.h"

#include <string.h>

static void ips_joined(const Ff__Container *c, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->n_ips && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", c->ips[i]);
}

/* The containers of reply piece k. */
static Ff__Container **containers(Ff__Reply **reps, size_t k, bool status, size_t *cnt)
{
	*cnt = status ? reps[k]->status_reply->n_containers : reps[k]->list->n_containers;
	return status ? reps[k]->status_reply->containers : reps[k]->list->containers;
}

void ffc_print_containers(Ff__Reply **reps, size_t n, bool status)
{
	char ips[512];
	size_t cnt;

	printf("%-20s %-32s %-10s %8s %9s %6s\n", "NAME", "IPS", "HOST", "CHANNELS", "LISTENERS",
	       "CONNS");
	for (size_t k = 0; k < n; k++) {
		Ff__Container **v = containers(reps, k, status, &cnt);

		for (size_t i = 0; i < cnt; i++) {
			ips_joined(v[i], ips, sizeof(ips));
			printf("%-20s %-32s %-10s %8u %9u %6u\n", v[i]->name, ips, v[i]->host,
			       v[i]->channels, v[i]->listeners, v[i]->conns);
		}
	}
}

static struct json_object *container_json(const Ff__Container *c)
{
	struct json_object *o = json_object_new_object(), *ips = json_object_new_array();

	for (size_t j = 0; j < c->n_ips; j++)
		json_object_array_add(ips, ffc_json_string(c->ips[j]));
	json_object_object_add(o, "name", ffc_json_string(c->name));
	json_object_object_add(o, "ips", ips);
	json_object_object_add(o, "host", ffc_json_string(c->host));
	json_object_object_add(o, "channels", json_object_new_uint64(c->channels));
	json_object_object_add(o, "listeners", json_object_new_uint64(c->listeners));
	json_object_object_add(o, "conns", json_object_new_uint64(c->conns));
	json_object_object_add(o, "policy", ffc_json_string(c->policy));
	json_object_object_add(o, "transport", ffc_json_string(c->transport));
	return o;
}

struct json_object *ffc_containers_json(Ff__Reply **reps, size_t n, bool status)
{
	struct json_object *v = json_object_new_array();
	size_t cnt;

	for (size_t k = 0; k < n; k++) {
		Ff__Container **c = containers(reps, k, status, &cnt);

		for (size_t i = 0; i < cnt; i++)
			json_object_array_add(v, container_json(c[i]));
	}
	return v;
}

static void print_list(struct ffc_ctx *ctx, Ff__Reply **reps, size_t n)
{
	if (ctx->json)
		ffc_json_print(ffc_containers_json(reps, n, false));
	else
		ffc_print_containers(reps, n, false);
}

int ffc_cmd_list(struct ffc_ctx *ctx, int argc, char **argv)
{
	Ff__Request req = FF__REQUEST__INIT;
	Ff__ListContainers m = FF__LIST_CONTAINERS__INIT;

	req.body_case = FF__REQUEST__BODY_LIST;
	req.list = &m;
	return ffc_query(ctx, argc, argv, "list", &req, FF__REPLY__BODY_LIST, print_list);
}
