/* SPDX-License-Identifier: Apache-2.0 */

#include "quantity.h"
#include "tests.h"

static uint64_t parse_ok(const char *s) {
        uint64_t v = 0;
        ASSERT_OK(quantity_parse(s, &v));
        return v;
}

static void test_plain_and_suffixes(void) {
        ASSERT_EQ_U(parse_ok("0"), 0);
        ASSERT_EQ_U(parse_ok("100"), 100);
        ASSERT_EQ_U(parse_ok("+7"), 7);
        ASSERT_EQ_U(parse_ok("1Ki"), 1024);
        ASSERT_EQ_U(parse_ok("1Mi"), 1048576);
        ASSERT_EQ_U(parse_ok("80Gi"), 80ULL << 30);
        ASSERT_EQ_U(parse_ok("23028Mi"), 23028ULL << 20);
        ASSERT_EQ_U(parse_ok("2Ei"), 2ULL << 60);
        ASSERT_EQ_U(parse_ok("1k"), 1000);
        ASSERT_EQ_U(parse_ok("10G"), 10000000000ULL);
        ASSERT_EQ_U(parse_ok("10737418240"), 10737418240ULL);
        ASSERT_EQ_U(parse_ok("12e3"), 12000);
        ASSERT_EQ_U(parse_ok("1E2"), 100);
        ASSERT_EQ_U(parse_ok("007"), 7);
}

static void test_fractions_round_up(void) {
        int exact = -1;
        uint64_t v;

        ASSERT_EQ_U(parse_ok("500m"), 1);
        ASSERT_EQ_U(parse_ok("1000m"), 1);
        ASSERT_EQ_U(parse_ok("1.5Gi"), 1610612736ULL);
        ASSERT_EQ_U(parse_ok("0.5"), 1);
        ASSERT_EQ_U(parse_ok(".5Ki"), 512);
        ASSERT_EQ_U(parse_ok("1.Ki"), 1024);
        ASSERT_EQ_U(parse_ok("1.50"), 2);
        ASSERT_EQ_U(parse_ok("15e-1"), 2);
        ASSERT_EQ_U(parse_ok("0.000"), 0);
        ASSERT_OK(quantity_parse_exact("1500m", &v, &exact));
        ASSERT_EQ_U(v, 2);
        ASSERT_EQ(exact, 0);
        ASSERT_OK(quantity_parse_exact("2000m", &v, &exact));
        ASSERT_EQ_U(v, 2);
        ASSERT_EQ(exact, 1);
        ASSERT_OK(quantity_parse_exact("1e-50", &v, &exact));
        ASSERT_EQ_U(v, 1);
        ASSERT_EQ(exact, 0);
}

static void test_rejects(void) {
        uint64_t v = 42;
        const char *bad[] = { "", "-1", "Gi", "1 Gi", "1gi", "1Gi ", "1..5", "1.5.5", "1e", "1e+",
                              "0x10", "1Zi", "abc", "1mi", "1KiB", "∞" };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (quantity_parse(bad[i], &v) != -EINVAL)
                        TEST_FAIL("accepted \"%s\"", bad[i]);
        ASSERT_EQ_U(v, 42); /* untouched on error */
        ASSERT_ERROR(quantity_parse(NULL, &v), EINVAL);
        ASSERT_ERROR(quantity_parse("9223372036854775808", &v), ERANGE);
        ASSERT_ERROR(quantity_parse("8Ei", &v), ERANGE);
        ASSERT_ERROR(quantity_parse("1e1000", &v), ERANGE);
        ASSERT_ERROR(quantity_parse("99999999999999999999999999999999999999999", &v), ERANGE);
        ASSERT_ERROR(quantity_parse("1111111111111111111111111111111111111111111111111111111111111111111", &v), EINVAL);
        ASSERT_OK(quantity_parse("9223372036854775807", &v));
        ASSERT_EQ_U(v, INT64_MAX);
        ASSERT_OK(quantity_parse("0e1000", &v));
        ASSERT_EQ_U(v, 0);
}

static void test_format_bytes(void) {
        char buf[QUANTITY_STRING_MAX];

        ASSERT_OK(quantity_format_bytes(24ULL << 30, buf, sizeof(buf)));
        ASSERT_STREQ(buf, "24Gi");
        ASSERT_OK(quantity_format_bytes(23028ULL << 20, buf, sizeof(buf)));
        ASSERT_STREQ(buf, "23028Mi");
        ASSERT_OK(quantity_format_bytes(1536, buf, sizeof(buf)));
        ASSERT_STREQ(buf, "1536");
        ASSERT_OK(quantity_format_bytes(0, buf, sizeof(buf)));
        ASSERT_STREQ(buf, "0");
        ASSERT_ERROR(quantity_format_bytes(1ULL << 40, buf, 3), ENOBUFS);

        /* Round trip. */
        uint64_t v;
        ASSERT_OK(quantity_format_bytes(80ULL << 30, buf, sizeof(buf)));
        ASSERT_OK(quantity_parse(buf, &v));
        ASSERT_EQ_U(v, 80ULL << 30);
}

int main(void) {
        TEST(test_plain_and_suffixes);
        TEST(test_fractions_round_up);
        TEST(test_rejects);
        TEST(test_format_bytes);
        return 0;
}
