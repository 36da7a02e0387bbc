/* JSON reader and base64, written for the etcd v3 JSON gateway. */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16

struct parser {
	const char *p, *end;
	int depth;
};

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static struct ff_json *node(enum ff_json_type t)
{
	struct ff_json *j = calloc(1, sizeof(*j));

	if (j)
		j->type = t;
	return j;
}

void ff_json_free(struct ff_json *j)
{
	while (j) {
		struct ff_json *next = j->next;

		ff_json_free(j->kids);
		free(j->key);
		free(j->str);
		free(j);
		j = next;
	}
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
				      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string at ps->p (the opening quote); returns it, NULL if malformed. */
static char *parse_string(struct parser *ps)
{
	char *out, *o;

	if (ps->p >= ps->end || *ps->p != '"')
		return NULL;
	ps->p++;
	out = o = malloc((size_t)(ps->end - ps->p) + 1);
	if (!out)
		return NULL;
	while (ps->p < ps->end && *ps->p != '"') {
		char c = *ps->p++;

		if ((unsigned char)c < 0x20)
			goto out_bad;
		if (c != '\\') {
			*o++ = c;
			continue;
		}
		if (ps->p >= ps->end)
			goto out_bad;
		c = *ps->p++;
		switch (c) {
		case '"': case '\\': case '/': *o++ = c; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			int v = 0;

			for (int i = 0; i < 4; i++) {
				int h = ps->p < ps->end ? hexval(*ps->p++) : -1;

				if (h < 0)
					goto out_bad;
				v = v * 16 + h;
			}
			*o++ = v < 0x100 ? (char)v : '?';
			break;
		}
		default:
			goto out_bad;
		}
	}
	if (ps->p >= ps->end)
		goto out_bad;
	ps->p++;
	*o = '\0';
	return out;
out_bad:
	free(out);
	return NULL;
}

static struct ff_json *parse_value(struct parser *ps);

/* Object or array members until the closing bracket. */
static struct ff_json *parse_members(struct parser *ps, struct ff_json *j, char close, bool keys)
{
	struct ff_json **tail = &j->kids;

	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return j;
	}
	for (;;) {
		char *key = NULL;
		struct ff_json *v;

		skip_ws(ps);
		if (keys) {
			key = parse_string(ps);
			skip_ws(ps);
			if (!key || ps->p >= ps->end || *ps->p++ != ':') {
				free(key);
				goto out_bad;
			}
		}
		v = parse_value(ps);
		if (!v) {
			free(key);
			goto out_bad;
		}
		v->key = key;
		*tail = v;
		tail = &v->next;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			return j;
		}
		goto out_bad;
	}
out_bad:
	ff_json_free(j);
	return NULL;
}

static struct ff_json *parse_literal(struct parser *ps)
{
	static const struct {
		const char *s;
		enum ff_json_type t;
		bool b;
	} lits[] = {{"true", FF_JSON_BOOL, true}, {"false", FF_JSON_BOOL, false}, {"null", FF_JSON_NULL, false}};

	for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
		size_t n = strlen(lits[i].s);

		if ((size_t)(ps->end - ps->p) >= n && !memcmp(ps->p, lits[i].s, n)) {
			struct ff_json *j = node(lits[i].t);

			ps->p += n;
			if (j)
				j->b = lits[i].b;
			return j;
		}
	}
	return NULL;
}

static struct ff_json *parse_number(struct parser *ps)
{
	const char *start = ps->p;
	struct ff_json *j;

	while (ps->p < ps->end && strchr("+-0123456789.eE", *ps->p))
		ps->p++;
	if (ps->p == start || !(j = node(FF_JSON_NUM)))
		return NULL;
	j->str = strndup(start, (size_t)(ps->p - start));
	if (!j->str) {
		free(j);
		return NULL;
	}
	return j;
}

static struct ff_json *parse_value(struct parser *ps)
{
	struct ff_json *j = NULL;

	skip_ws(ps);
	if (ps->p >= ps->end || ps->depth >= MAX_DEPTH)
		return NULL;
	switch (*ps->p) {
	case '{':
	case '[': {
		bool obj = *ps->p == '{';

		ps->p++;
		ps->depth++;
		j = node(obj ? FF_JSON_OBJ : FF_JSON_ARR);
		j = j ? parse_members(ps, j, obj ? '}' : ']', obj) : NULL;
		ps->depth--;
		return j;
	}
	case '"':
		j = node(FF_JSON_STR);
		if (j && !(j->str = parse_string(ps))) {
			free(j);
			j = NULL;
		}
		return j;
	case 't':
	case 'f':
	case 'n':
		return parse_literal(ps);
	default:
		return parse_number(ps);
	}
}

struct ff_json *ff_json_parse(const char *s, size_t len)
{
	struct parser ps = {.p = s, .end = s + len};
	struct ff_json *j = parse_value(&ps);

	skip_ws(&ps);
	if (j && ps.p != ps.end) {
		ff_json_free(j);
		return NULL;
	}
	return j;
}

const struct ff_json *ff_json_get(const struct ff_json *obj, const char *key)
{
	if (!obj || obj->type != FF_JSON_OBJ)
		return NULL;
	for (const struct ff_json *k = obj->kids; k; k = k->next)
		if (k->key && !strcmp(k->key, key))
			return k;
	return NULL;
}

const char *ff_json_str(const struct ff_json *obj, const char *key)
{
	const struct ff_json *v = ff_json_get(obj, key);

	return v && (v->type == FF_JSON_STR || v->type == FF_JSON_NUM) ? v->str : NULL;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t ff_b64_encode(const void *in, size_t len, char *out, size_t cap)
{
	const uint8_t *p = in;
	size_t o = 0;

	if (cap < 4 * ((len + 2) / 3) + 1)
		return 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < len ? p[i + 2] : 0);

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? b64[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

long ff_b64_decode(const char *in, void *out, size_t cap)
{
	uint8_t *o = out;
	size_t n = 0, len = strlen(in);
	uint32_t v = 0;
	int bits = 0;

	if (len % 4)
		return -1;
	for (size_t i = 0; i < len; i++) {
		const char *c = strchr(b64, in[i]);

		if (in[i] == '=') {
			if (i < len - 2 || (i == len - 2 && in[len - 1] != '='))
				return -1;
			break;
		}
		if (!c || !in[i])
			return -1;
		v = v << 6 | (uint32_t)(c - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -1;
			o[n++] = (uint8_t)(v >> bits);
		}
	}
	return (long)n;
}
