/* hostlib/json-read.c: the answers the router's etcd client reads, as etcd
 * 3.4's JSON gateway wrote them (captured from a real one), read through
 * json-c; trees of the wrong shape read as missing members, never as a
 * crash; malformed input is refused whole. The client itself, against a
 * fake gateway, is tests/unit/router/test_etcd.c. */
#include "cu.h"
#include "json-read.h"

#include <stdio.h>
#include <string.h>

#define HEADER                                                                                     \
	"\"header\":{\"cluster_id\":\"15875391935852295136\",\"member_id\":"                       \
	"\"7383792418829112008\",\"revision\":\"3\",\"raft_term\":\"2\"}"

static struct json_object *parse(const char *s)
{
	return ff_json_parse(s, strlen(s));
}

static void test_range(void)
{
	struct json_object *j = parse(
		"{" HEADER ",\"kvs\":[{\"key\":\"L2ZmbmV0L3YxL2NvbnRhaW5lci9iMQ==\","
		"\"create_revision\":\"3\",\"mod_revision\":\"3\",\"version\":\"1\","
		"\"value\":\"Y29udGFpbmVyIGIxIGlwcz0xMC43OC4wLjIgaG9zdD1C\","
		"\"lease\":\"1353510092082904325\"},{\"key\":\"L2ZmbmV0L3YxL2hvc3QvQg==\","
		"\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
		"\"value\":\"aG9zdCBCIGFkZHI9MTAuMC4wLjI6NzAwMA==\","
		"\"lease\":\"1353510092082904325\"}],\"count\":\"2\"}");
	struct json_object *kvs = ff_json_arr(j, "kvs");

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(ff_json_str(ff_json_obj(j, "header"), "revision"), "3");
	CU_ASSERT_PTR_NOT_NULL_FATAL(kvs);
	CU_ASSERT_EQUAL_FATAL(json_object_array_length(kvs), 2);
	CU_ASSERT_STRING_EQUAL(ff_json_str(json_object_array_get_idx(kvs, 1), "key"),
			       "L2ZmbmV0L3YxL2hvc3QvQg==");
	CU_ASSERT_STRING_EQUAL(ff_json_str(json_object_array_get_idx(kvs, 0), "value"),
			       "Y29udGFpbmVyIGIxIGlwcz0xMC43OC4wLjIgaG9zdD1C");
	json_object_put(j);
	/* an empty range has no kvs at all */
	j = parse("{" HEADER "}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NULL(ff_json_arr(j, "kvs"));
	json_object_put(j);
}

static void test_watch(void)
{
	/* one line of the stream each; a PUT has no "type" (the enum's zero) */
	struct json_object *j = parse(
		"{\"result\":{" HEADER ",\"events\":[{\"kv\":{"
		"\"key\":\"L2ZmbmV0L3YxL2NvbnRhaW5lci9iMg==\","
		"\"create_revision\":\"4\",\"mod_revision\":\"4\",\"version\":\"1\","
		"\"value\":\"Y29udGFpbmVyIGIyIGlwcz0xMC43OC4wLjMgaG9zdD1C\"}},"
		"{\"type\":\"DELETE\",\"kv\":{\"key\":\"L2ZmbmV0L3YxL2NvbnRhaW5lci9iMQ==\","
		"\"mod_revision\":\"5\"}}]}}\n");
	struct json_object *ev = ff_json_arr(ff_json_obj(j, "result"), "events"), *e;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	CU_ASSERT_EQUAL_FATAL(json_object_array_length(ev), 2);
	e = json_object_array_get_idx(ev, 0);
	CU_ASSERT_PTR_NULL(ff_json_str(e, "type"));
	CU_ASSERT_STRING_EQUAL(ff_json_str(ff_json_obj(e, "kv"), "value"),
			       "Y29udGFpbmVyIGIyIGlwcz0xMC43OC4wLjMgaG9zdD1C");
	e = json_object_array_get_idx(ev, 1);
	CU_ASSERT_STRING_EQUAL(ff_json_str(e, "type"), "DELETE");
	CU_ASSERT_PTR_NULL(ff_json_str(ff_json_obj(e, "kv"), "value"));
	json_object_put(j);
	/* the first line of a stream says it started, with no events */
	j = parse("{\"result\":{" HEADER ",\"created\":true}}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NULL(ff_json_arr(ff_json_obj(j, "result"), "events"));
	json_object_put(j);
}

static void test_lease(void)
{
	struct json_object *j = parse("{" HEADER ",\"ID\":\"1353510092082904325\",\"TTL\":\"10\"}");

	CU_ASSERT_STRING_EQUAL(ff_json_str(j, "ID"), "1353510092082904325");
	json_object_put(j);
	j = parse("{\"result\":{" HEADER ",\"ID\":\"1353510092082904325\",\"TTL\":\"10\"}}");
	CU_ASSERT_STRING_EQUAL(ff_json_str(ff_json_obj(j, "result"), "TTL"), "10");
	json_object_put(j);
	/* an expired lease's keepalive: no TTL */
	j = parse("{\"result\":{" HEADER ",\"ID\":\"1353510092082904325\"}}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NULL(ff_json_str(ff_json_obj(j, "result"), "TTL"));
	json_object_put(j);
}

/* Members of the wrong type read as absent; numbers read as written. */
static void test_shapes(void)
{
	struct json_object *j = parse("{\"events\":\"x\",\"kvs\":{\"a\":1},\"header\":[1],"
				      "\"ID\":{},\"b\":true,\"n\":-1.5e3,"
				      "\"big\":12345678901234567890}");

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NULL(ff_json_arr(j, "events"));
	CU_ASSERT_PTR_NULL(ff_json_arr(j, "kvs"));
	CU_ASSERT_PTR_NULL(ff_json_obj(j, "header"));
	CU_ASSERT_PTR_NULL(ff_json_str(j, "ID"));
	CU_ASSERT_PTR_NULL(ff_json_str(j, "b"));
	CU_ASSERT_PTR_NULL(ff_json_str(j, "missing"));
	CU_ASSERT_STRING_EQUAL(ff_json_str(j, "n"), "-1.5e3");
	CU_ASSERT_STRING_EQUAL(ff_json_str(j, "big"), "12345678901234567890");
	CU_ASSERT_PTR_NULL(ff_json_str(ff_json_obj(j, "nothing"), "x"));
	CU_ASSERT_PTR_NULL(ff_json_arr(NULL, "x"));
	json_object_put(j);
	/* not an object at all */
	j = parse("[{\"ID\":\"1\"}]");
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NULL(ff_json_str(j, "ID"));
	json_object_put(j);
	/* a bare number is a whole document */
	j = ff_json_parse("42", 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_EQUAL(json_object_get_int(j), 42);
	json_object_put(j);
}

static void test_escapes(void)
{
	struct json_object *j = parse("{\"s\":\"a\\\"b\\\\c\\n\\u0041\\u263a\\ud83d\\ude00\\/\"}");

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(ff_json_str(j, "s"), "a\"b\\c\nA\xe2\x98\xba\xf0\x9f\x98\x80/");
	json_object_put(j);
}

static void test_malformed(void)
{
	static const char *bad[] = {"", "{", "{\"a\":}", "{\"a\" 1}", "[1,]", "[1 2]", "\"abc",
				    "{\"a\":1}x", "\"\\q\"", "\"\\u12\"", "tru", "{a:1}",
				    "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]", "{\"a\":1,}", "[01]",
				    "{}{}", "[\"\xff\"]", "[\"\xc3\"]",
				    "{\"result\":{" HEADER ","};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_object *j = parse(bad[i]);

		if (j)
			printf("accepted: %s\n", bad[i]);
		CU_ASSERT_PTR_NULL(j);
		json_object_put(j);
	}
	/* the length is the document: nothing may follow it, not even a NUL */
	CU_ASSERT_PTR_NULL(ff_json_parse("{}\0{}", 5));
	CU_ASSERT_PTR_NULL(ff_json_parse("{\"a\":1}", 5));
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"range", test_range},
		{"watch", test_watch},
		{"lease", test_lease},
		{"shapes", test_shapes},
		{"escapes", test_escapes},
		{"malformed", test_malformed},
		{0},
	};

	return cu_run("json", tests);
}
