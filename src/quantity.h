/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Kubernetes resource.Quantity: "100", "80Gi", "1Mi", "500m", "1.5G", "12e3".
 * The API server canonicalises what it stores ("1048576" comes back as "1Mi"), so
 * quantities are compared as numbers, never as text.
 */

#include <stddef.h>
#include <stdint.h>

#define QUANTITY_STRING_MAX 64

/*
 * Parse into the integer value, rounded up as Quantity.Value() does ("500m" -> 1).
 * -EINVAL for anything that is not a quantity (including negative numbers: no
 * capacity is negative), -ERANGE when the value does not fit in an int64.
 */
int quantity_parse(const char *s, uint64_t *ret);

/* Like quantity_parse but also says whether rounding happened ("1500m" -> 2, inexact). */
int quantity_parse_exact(const char *s, uint64_t *ret, int *ret_exact);

/* Canonical binary form for byte counts: 25769803776 -> "24Gi", 1536 -> "1536". */
int quantity_format_bytes(uint64_t bytes, char *buf, size_t size);
