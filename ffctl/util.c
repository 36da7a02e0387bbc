/* Output helpers shared by the subcommands. */
#include "ffctl.h"

#include <arpa/inet.h>
#include <stdio.h>

void ffc_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
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
