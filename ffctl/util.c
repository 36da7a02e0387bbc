/* Output helpers shared by the subcommands. */
#include "ffctl.h"

#include <arpa/inet.h>
#include <stdio.h>

/* Spaced ({ "a": 1, "b": [ 2 ] }), so "key": value reads as it did when
 * this was written by hand, and '/' left alone: paths print as paths. */
void ffc_json_print(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

struct json_object *ffc_json_string(const char *s)
{
	return json_object_new_string(s ? s : "");
}

const char *ffc_addr_str(const Ff__Addr *a, char *buf, size_t len)
{
	struct ff_sa sa;

	if (ff_sa_from_proto(&sa, a) < 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	return ff_sa_fmt(&sa, buf, len);
}

const char *ffc_path_name(Ff__Path p)
{
	switch (p) {
	case FF__PATH__PATH_SAME_HOST:
		return "same-host";
	case FF__PATH__PATH_TCP:
		return "tcp";
	case FF__PATH__PATH_RDMA:
		return "rdma";
	default:
		return "kernel";
	}
}
