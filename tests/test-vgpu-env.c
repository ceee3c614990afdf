/* SPDX-License-Identifier: Apache-2.0 */

/* libvgpu's environment parsers (preload/env.c). */

#include <errno.h>

#include "env.h"
#include "tests.h"

static void test_size(void) {
        uint64_t v;

        ASSERT_OK(vgpu_parse_size("1073741824", &v));
        ASSERT_EQ_U(v, 1073741824);
        ASSERT_OK(vgpu_parse_size("10g", &v));
        ASSERT_EQ_U(v, 10ULL << 30);
        ASSERT_OK(vgpu_parse_size("512M", &v));
        ASSERT_EQ_U(v, 512ULL << 20);
        ASSERT_OK(vgpu_parse_size("1024k", &v));
        ASSERT_EQ_U(v, 1ULL << 20);
        ASSERT_OK(vgpu_parse_size("3Gi", &v));
        ASSERT_EQ_U(v, 3ULL << 30);
        ASSERT_OK(vgpu_parse_size("2gb", &v));
        ASSERT_EQ_U(v, 2ULL << 30);
        ASSERT_OK(vgpu_parse_size("0", &v));
        ASSERT_EQ_U(v, 0);
        ASSERT_ERROR(vgpu_parse_size("", &v), EINVAL);
        ASSERT_ERROR(vgpu_parse_size("-1", &v), EINVAL);
        ASSERT_ERROR(vgpu_parse_size(" 5", &v), EINVAL);
        ASSERT_ERROR(vgpu_parse_size("5 ", &v), EINVAL);
        ASSERT_ERROR(vgpu_parse_size("5x", &v), EINVAL);
        ASSERT_ERROR(vgpu_parse_size("1.5g", &v), EINVAL);
        ASSERT_ERROR(vgpu_parse_size("99999999999999999999", &v), ERANGE);
        ASSERT_ERROR(vgpu_parse_size("17179869184g", &v), ERANGE);
        ASSERT_ERROR(vgpu_parse_size(NULL, &v), EINVAL);
}

static void test_percent_and_level(void) {
        unsigned p;
        int l;

        ASSERT_OK(vgpu_parse_percent("0", &p));
        ASSERT_EQ(p, 0);
        ASSERT_OK(vgpu_parse_percent("100", &p));
        ASSERT_EQ(p, 100);
        ASSERT_ERROR(vgpu_parse_percent("101", &p), ERANGE);
        ASSERT_ERROR(vgpu_parse_percent("50%", &p), EINVAL);
        ASSERT_ERROR(vgpu_parse_percent("", &p), EINVAL);
        ASSERT_OK(vgpu_parse_log_level("4", &l));
        ASSERT_EQ(l, 4);
        ASSERT_ERROR(vgpu_parse_log_level("5", &l), ERANGE);
}

static void test_visible_devices(void) {
        int map[VGPU_VISIBLE_DEVICES_MAX];

        ASSERT_EQ(vgpu_parse_visible_devices("1", map, VGPU_VISIBLE_DEVICES_MAX), 1);
        ASSERT_EQ(map[0], 1);
        ASSERT_EQ(vgpu_parse_visible_devices("2,0, 1", map, VGPU_VISIBLE_DEVICES_MAX), 3);
        ASSERT_EQ(map[0], 2);
        ASSERT_EQ(map[1], 0);
        ASSERT_EQ(map[2], 1);
        ASSERT_EQ(vgpu_parse_visible_devices("GPU-1234,3", map, VGPU_VISIBLE_DEVICES_MAX), 2);
        ASSERT_EQ(map[0], -1);
        ASSERT_EQ(map[1], 3);
        /* The driver stops at the first invalid entry. */
        ASSERT_EQ(vgpu_parse_visible_devices("0,x,1", map, VGPU_VISIBLE_DEVICES_MAX), 1);
        ASSERT_EQ(vgpu_parse_visible_devices("", map, VGPU_VISIBLE_DEVICES_MAX), 0);
        ASSERT_EQ(vgpu_parse_visible_devices("0,1,2", map, 2), 2);
        ASSERT_EQ(vgpu_parse_visible_devices("99999999999999999999", map, 2), 0);
}

int main(void) {
        test_size();
        test_percent_and_level();
        test_visible_devices();
        return 0;
}
