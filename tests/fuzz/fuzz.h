/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Every fuzzer defines this; libFuzzer or fuzz-main.c calls it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
