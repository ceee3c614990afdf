/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The unit's IP sandbox (IPAddressAllow=, IPAddressDeny=), as systemd applies it to our
 * cgroup: packets to a denied address are dropped by a BPF filter, which the daemon only
 * sees as a connection that times out (or fails with EPERM). Knowing the sandbox lets
 * the API client say so, with the drop-in that allows the address, instead of "timed out".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

typedef struct IPPrefix {
        int family;             /* AF_INET or AF_INET6 */
        uint8_t address[16];
        unsigned prefixlen;
} IPPrefix;

typedef struct IPSandbox {
        char *unit;             /* "hami-dra-plugin.service"; NULL: not known */
        IPPrefix *allow, *deny;
        size_t n_allow, n_deny;
} IPSandbox;

/* Read the unit's lists from systemd over bus (the unit of our own PID). -ENXIO when
 * we run in no service or scope, -ENODATA when its reply has no lists. */
int ip_sandbox_load(sd_bus *bus, IPSandbox *ret);
void ip_sandbox_done(IPSandbox *s);

/* Add "10.0.0.0/8", "::1/128" or "any" (both families, prefix 0) to a list: for tests. */
int ip_prefix_list_add(IPPrefix **list, size_t *n, const char *text);

/* As systemd decides: an address on the allow list passes, else one on the deny list is
 * dropped. ip: a numeric IPv4 or IPv6 address. -EINVAL when it is not one. */
int ip_sandbox_drops(const IPSandbox *s, const char *ip);

/* "203.0.113.1 is outside IPAddressAllow= of hami-dra-plugin.service: systemd drops its
 * packets. Allow it with a drop-in: systemctl edit hami-dra-plugin.service, then
 * [Service] IPAddressAllow=203.0.113.1" into buf; false (buf untouched) when the sandbox
 * does not drop ip. */
bool ip_sandbox_hint(const IPSandbox *s, const char *ip, char *buf, size_t size);
