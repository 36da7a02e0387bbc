/* common/json.c: the etcd gateway's shapes, escapes, and malformed input
 * (which must be refused whole); base64 against RFC 4648's vectors. */
#include "cu.h"
#include "json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void test_etcd_shapes(void)
{
	static const char s[] =
		"{\"result\":{\"header\":{\"revision\":\"4\"},\"events\":[{\"type\":\"DELETE\","
		"\"kv\":{\"key\":\"Zm9v\",\"mod_revision\":\"4\"}},{\"kv\":{\"key\":\"YQ==\","
		"\"value\":\"Yg==\"}}],\"canceled\":false,\"x\":null,\"n\":-1.5e3}}";
	struct ff_json *j = ff_json_parse(s, strlen(s));
	const struct ff_json *res = ff_json_get(j, "result"), *ev, *e;

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(ff_json_str(ff_json_get(res, "header"), "revision"), "4");
	ev = ff_json_get(res, "events");
	CU_ASSERT_EQUAL_FATAL(ev->type, FF_JSON_ARR);
	e = ev->kids;
	CU_ASSERT_STRING_EQUAL(ff_json_str(e, "type"), "DELETE");
	CU_ASSERT_STRING_EQUAL(ff_json_str(ff_json_get(e, "kv"), "key"), "Zm9v");
	CU_ASSERT_PTR_NULL(ff_json_str(e->next, "type"));
	CU_ASSERT_STRING_EQUAL(ff_json_str(ff_json_get(e->next, "kv"), "value"), "Yg==");
	CU_ASSERT_EQUAL(ff_json_get(res, "canceled")->type, FF_JSON_BOOL);
	CU_ASSERT_STRING_EQUAL(ff_json_str(res, "n"), "-1.5e3");
	ff_json_free(j);
}

static void test_escapes(void)
{
	static const char s[] = "[\"a\\\"b\\\\c\\n\\u0041\\u263a\"]";
	struct ff_json *j = ff_json_parse(s, strlen(s));

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(j->kids->str, "a\"b\\c\nA?");
	ff_json_free(j);
}

static void test_malformed(void)
{
	static const char *bad[] = {"", "{", "{\"a\":}", "{\"a\" 1}", "[1,]", "[1 2]", "\"abc",
				    "{\"a\":1}x", "\"\\q\"", "\"\\u12\"", "tru", "{a:1}",
				    "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]", "\"a\nb\""};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ff_json *j = ff_json_parse(bad[i], strlen(bad[i]));

		if (j)
			printf("accepted: %s\n", bad[i]);
		CU_ASSERT_PTR_NULL(j);
		ff_json_free(j);
	}
}

static void test_base64(void)
{
	static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	char buf[32];
	uint8_t raw[32];

	for (int i = 0; i < 7; i++) {
		ff_b64_encode(plain[i], strlen(plain[i]), buf, sizeof(buf));
		CU_ASSERT_STRING_EQUAL(buf, enc[i]);
		CU_ASSERT_EQUAL(ff_b64_decode(enc[i], raw, sizeof(raw)), (long)strlen(plain[i]));
		CU_ASSERT_EQUAL(memcmp(raw, plain[i], strlen(plain[i])), 0);
	}
	CU_ASSERT_EQUAL(ff_b64_decode("Zm9", raw, sizeof(raw)), -1);
	CU_ASSERT_EQUAL(ff_b64_decode("Zm=v", raw, sizeof(raw)), -1);
	CU_ASSERT_EQUAL(ff_b64_decode("Zm9v!!==", raw, sizeof(raw)), -1);
	CU_ASSERT_EQUAL(ff_b64_decode("Zm9vYmFy", raw, 3), -1); /* no room */
	CU_ASSERT_EQUAL(ff_b64_encode("foobar", 6, buf, 8), 0);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{"etcd_shapes", test_etcd_shapes},
		{"escapes", test_escapes},
		{"malformed", test_malformed},
		{"base64", test_base64},
		{0},
	};

	return cu_run("json", tests);
}
