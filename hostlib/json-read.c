/* The strict reader on json-c's tokener; see json-read.h. */
#include "json-read.h"

#include <limits.h>
#include <stdbool.h>

struct json_object *ff_json_parse(const char *s, size_t len)
{
	struct json_tokener *tok;
	struct json_object *j;
	bool whole;

	if (len >= INT_MAX)
		return NULL;
	tok = json_tokener_new_ex(FF_JSON_DEPTH);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	j = json_tokener_parse_ex(tok, s, (int)len);
	whole = json_tokener_get_parse_end(tok) == len;
	if (!j && whole && json_tokener_get_error(tok) == json_tokener_continue) {
		j = json_tokener_parse_ex(tok, "", 1); /* the end, which a bare number needs */
	} else if (j && !whole) {
		json_object_put(j);
		j = NULL;
	}
	json_tokener_free(tok);
	return j;
}

static struct json_object *member(const struct json_object *o, const char *key,
				  enum json_type type)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

struct json_object *ff_json_obj(const struct json_object *o, const char *key)
{
	return member(o, key, json_type_object);
}

struct json_object *ff_json_arr(const struct json_object *o, const char *key)
{
	return member(o, key, json_type_array);
}

const char *ff_json_str(const struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	switch (json_object_get_type(v)) {
	case json_type_string:
	case json_type_int:
	case json_type_double:
		return json_object_get_string(v);
	default:
		return NULL;
	}
}
