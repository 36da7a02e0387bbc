/* A small strict JSON reader for the etcd gateway's answers: objects,
 * arrays, strings (with escapes; \u beyond Latin-1 kept as '?'), numbers
 * (kept as text), true/false/null. Depth and size are bounded; anything
 * malformed is an error, never a partial tree. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum ff_json_type { FF_JSON_NULL, FF_JSON_BOOL, FF_JSON_NUM, FF_JSON_STR, FF_JSON_ARR, FF_JSON_OBJ };

struct ff_json {
	enum ff_json_type type;
	char *key;            /* member name inside an object */
	char *str;            /* FF_JSON_STR, FF_JSON_NUM (as text) */
	bool b;
	struct ff_json *kids; /* array elements / object members */
	struct ff_json *next;
};

/* Parses len bytes. NULL on any error. Free with ff_json_free. */
struct ff_json *ff_json_parse(const char *s, size_t len);
void ff_json_free(struct ff_json *j);
/* Member of an object, or NULL. */
const struct ff_json *ff_json_get(const struct ff_json *obj, const char *key);
/* String (or number text) of a member, or NULL. */
const char *ff_json_str(const struct ff_json *obj, const char *key);

/* Base64 (RFC 4648, with padding). decode returns the length or -1. */
size_t ff_b64_encode(const void *in, size_t len, char *out, size_t cap);
long ff_b64_decode(const char *in, void *out, size_t cap);
