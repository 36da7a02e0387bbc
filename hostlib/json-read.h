/* Reading JSON another program wrote (the etcd gateway's answers) with
 * json-c, strictly: one whole document of exactly len bytes, valid UTF-8,
 * nested at most FF_JSON_DEPTH deep; anything else is an error, never a
 * partial tree. json-c's strict mode still lets through a few things RFC
 * 8259 does not (single-quoted strings, NaN, raw control characters in
 * strings); they cannot reach the router as anything but a member it
 * ignores or a string it checks.
 *
 * The accessors check types, so a tree of the wrong shape reads as missing
 * members: json-c asserts when an array function meets a non-array, and
 * prints any value when asked for a string. */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#define FF_JSON_DEPTH 16

/* A tree (free with json_object_put), or NULL on any error. */
struct json_object *ff_json_parse(const char *s, size_t len);
/* Member key of o if it is an object / an array, else NULL (o may be NULL). */
struct json_object *ff_json_obj(const struct json_object *o, const char *key);
struct json_object *ff_json_arr(const struct json_object *o, const char *key);
/* Member key of o if a string, or a number as written, else NULL. Valid as
 * long as the tree. */
const char *ff_json_str(const struct json_object *o, const char *key);
