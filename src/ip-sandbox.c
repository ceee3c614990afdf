/* SPDX-License-Identifier: Apache-2.0 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-login.h>

#include "ip-sandbox.h"
#include "macro.h"

#define IP_PREFIXES_MAX 1024U   /* a unit with more is not ours to judge */

static bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && streq(s + n - k, suffix);
}

static size_t family_size(int family) {
        return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

static int prefix_append(IPPrefix **list, size_t *n, int family, const void *address, size_t size,
                         unsigned prefixlen) {
        IPPrefix *l;

        if (size != family_size(family) || prefixlen > size * 8)
                return -EINVAL;
        if (*n >= IP_PREFIXES_MAX)
                return -E2BIG;
        l = reallocarray(*list, *n + 1, sizeof(IPPrefix));
        if (!l)
                return -ENOMEM;
        l[*n] = (IPPrefix) { .family = family, .prefixlen = prefixlen };
        memcpy(l[*n].address, address, size);
        *list = l;
        (*n)++;
        return 0;
}

int ip_prefix_list_add(IPPrefix **list, size_t *n, const char *text) {
        uint8_t address[16] = {};
        char host[INET6_ADDRSTRLEN];
        const char *slash;
        unsigned long len;
        char *end;
        int family, r;

        if (streq(text, "any")) {
                r = prefix_append(list, n, AF_INET, address, 4, 0);
                return r < 0 ? r : prefix_append(list, n, AF_INET6, address, 16, 0);
        }
        slash = strchr(text, '/');
        if ((size_t) (slash ? slash - text : (ptrdiff_t) strlen(text)) >= sizeof(host))
                return -EINVAL;
        snprintf(host, sizeof(host), "%.*s", (int) (slash ? slash - text : (ptrdiff_t) strlen(text)), text);
        family = strchr(host, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(family, host, address) != 1)
                return -EINVAL;
        len = family_size(family) * 8;
        if (slash) {
                errno = 0;
                len = strtoul(slash + 1, &end, 10);
                if (errno != 0 || end == slash + 1 || *end || len > family_size(family) * 8)
                        return -EINVAL;
        }
        return prefix_append(list, n, family, address, family_size(family), (unsigned) len);
}

static bool prefix_matches(const IPPrefix *p, int family, const uint8_t *address) {
        unsigned full = p->prefixlen / 8, rest = p->prefixlen % 8;

        if (p->family != family)
                return false;
        if (memcmp(p->address, address, full) != 0)
                return false;
        return rest == 0 || ((p->address[full] ^ address[full]) & (uint8_t) (0xff << (8 - rest))) == 0;
}

static bool list_matches(const IPPrefix *l, size_t n, int family, const uint8_t *address) {
        for (size_t i = 0; i < n; i++)
                if (prefix_matches(&l[i], family, address))
                        return true;
        return false;
}

int ip_sandbox_drops(const IPSandbox *s, const char *ip) {
        uint8_t address[16];
        int family = ip && strchr(ip, ':') ? AF_INET6 : AF_INET;

        if (!ip || inet_pton(family, ip, address) != 1)
                return -EINVAL;
        if (list_matches(s->allow, s->n_allow, family, address))
                return 0;
        return list_matches(s->deny, s->n_deny, family, address);
}

bool ip_sandbox_hint(const IPSandbox *s, const char *ip, char *buf, size_t size) {
        const char *unit = s->unit ?: "hami-dra-plugin.service";

        if (ip_sandbox_drops(s, ip) <= 0)
                return false;
        snprintf(buf, size,
                 "%s is outside IPAddressAllow= of %s: systemd drops its packets. If it is the API server, "
                 "allow it with a drop-in: systemctl edit %s, then [Service] IPAddressAllow=%s",
                 ip, unit, unit, ip);
        return true;
}

/* Append the a(iayu) list systemd gives for IPAddressAllow/IPAddressDeny. */
static int read_prefixes(sd_bus *bus, const char *path, const char *interface, const char *property,
                         IPPrefix **list, size_t *n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int32_t family;
        uint32_t prefixlen;
        const void *address;
        size_t size;
        int r;

        r = sd_bus_get_property(bus, "org.freedesktop.systemd1", path, interface, property, &error, &reply,
                                "a(iayu)");
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(iayu)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'r', "iayu")) > 0) {
                r = sd_bus_message_read(reply, "i", &family);
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'y', &address, &size);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "u", &prefixlen);
                if (r < 0)
                        return r;
                r = prefix_append(list, n, family, address, size, prefixlen);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        return r;
}

int ip_sandbox_load(sd_bus *bus, IPSandbox *ret) {
        _cleanup_free_ char *unit = NULL, *path = NULL;
        const char *interface;
        IPSandbox s = {};
        int r;

        r = sd_pid_get_unit(0, &unit);
        if (r < 0)
                return -ENXIO;
        if (endswith(unit, ".service"))
                interface = "org.freedesktop.systemd1.Service";
        else if (endswith(unit, ".scope"))
                interface = "org.freedesktop.systemd1.Scope";
        else
                return -ENXIO;
        r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit, &path);
        if (r < 0)
                return r;
        r = read_prefixes(bus, path, interface, "IPAddressAllow", &s.allow, &s.n_allow);
        if (r >= 0)
                r = read_prefixes(bus, path, interface, "IPAddressDeny", &s.deny, &s.n_deny);
        if (r < 0) {
                ip_sandbox_done(&s);
                return r == -ENOMEM ? r : -ENODATA;
        }
        s.unit = TAKE_PTR(unit);
        *ret = s;
        return 0;
}

void ip_sandbox_done(IPSandbox *s) {
        free(s->unit);
        free(s->allow);
        free(s->deny);
        *s = (IPSandbox) {};
}
