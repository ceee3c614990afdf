/* SPDX-License-Identifier: Apache-2.0 */

/* The unit's IP sandbox as systemd applies it: allow wins over deny; the hint names the
 * address, the unit and the drop-in. */

#include <string.h>

#include "ip-sandbox.h"
#include "tests.h"

/* The shipped unit: IPAddressDeny=any, IPAddressAllow= loopback and the private ranges. */
static void shipped(IPSandbox *s) {
        const char *allow[] = { "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                "fd00::/8", "169.254.0.0/16" };

        *s = (IPSandbox) {};
        for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++)
                ASSERT_OK(ip_prefix_list_add(&s->allow, &s->n_allow, allow[i]));
        ASSERT_OK(ip_prefix_list_add(&s->deny, &s->n_deny, "any"));
        ASSERT_EQ_U(s->n_deny, 2);
}

static void test_drops(void) {
        IPSandbox s;

        shipped(&s);
        ASSERT_EQ(ip_sandbox_drops(&s, "127.0.0.1"), 0);
        ASSERT_EQ(ip_sandbox_drops(&s, "10.96.0.1"), 0);
        ASSERT_EQ(ip_sandbox_drops(&s, "172.31.255.255"), 0);
        ASSERT_EQ(ip_sandbox_drops(&s, "172.32.0.1"), 1);     /* just past /12 */
        ASSERT_EQ(ip_sandbox_drops(&s, "203.0.113.1"), 1);
        ASSERT_EQ(ip_sandbox_drops(&s, "::1"), 0);
        ASSERT_EQ(ip_sandbox_drops(&s, "fdab::1"), 0);
        ASSERT_EQ(ip_sandbox_drops(&s, "2001:db8::1"), 1);
        ASSERT_ERROR(ip_sandbox_drops(&s, "api.example"), EINVAL);
        ASSERT_ERROR(ip_sandbox_drops(&s, NULL), EINVAL);

        /* An operator's drop-in adds the address: allowed now. */
        ASSERT_OK(ip_prefix_list_add(&s.allow, &s.n_allow, "203.0.113.1"));
        ASSERT_EQ(ip_sandbox_drops(&s, "203.0.113.1"), 0);
        ASSERT_EQ(ip_sandbox_drops(&s, "203.0.113.2"), 1);
        ip_sandbox_done(&s);

        /* No sandbox (empty lists, e.g. not under systemd): nothing dropped. */
        s = (IPSandbox) {};
        ASSERT_EQ(ip_sandbox_drops(&s, "203.0.113.1"), 0);
}

static void test_parse(void) {
        IPPrefix *l = NULL;
        size_t n = 0;

        ASSERT_ERROR(ip_prefix_list_add(&l, &n, "10.0.0.0/33"), EINVAL);
        ASSERT_ERROR(ip_prefix_list_add(&l, &n, "::/129"), EINVAL);
        ASSERT_ERROR(ip_prefix_list_add(&l, &n, "10.0.0/8"), EINVAL);
        ASSERT_ERROR(ip_prefix_list_add(&l, &n, "10.0.0.0/"), EINVAL);
        ASSERT_ERROR(ip_prefix_list_add(&l, &n, "10.0.0.0/8x"), EINVAL);
        ASSERT_ERROR(ip_prefix_list_add(&l, &n, "localhost"), EINVAL);
        ASSERT_EQ_U(n, 0);
        ASSERT_OK(ip_prefix_list_add(&l, &n, "192.168.1.7/23"));
        ASSERT_EQ(l[0].prefixlen, 23);
        free(l);
}

static void test_hint(void) {
        char buf[512] = "untouched";
        IPSandbox s;

        shipped(&s);
        ASSERT_FALSE(ip_sandbox_hint(&s, "10.0.0.1", buf, sizeof(buf)));
        ASSERT_STREQ(buf, "untouched");
        ASSERT_TRUE(ip_sandbox_hint(&s, "203.0.113.1", buf, sizeof(buf)));
        ASSERT_STREQ(buf, "203.0.113.1 is outside IPAddressAllow= of hami-dra-plugin.service: systemd drops its "
                          "packets. If it is the API server, allow it with a drop-in: systemctl edit "
                          "hami-dra-plugin.service, then [Service] IPAddressAllow=203.0.113.1");
        ip_sandbox_done(&s);
}

int main(void) {
        test_parse();
        test_drops();
        test_hint();
        return 0;
}
