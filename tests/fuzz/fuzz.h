/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What every libFuzzer target shares: the entry point's prototype
 * (-Wmissing-prototypes) and CHECK, which aborts so that libFuzzer records
 * the input that broke a property.
 */
#ifndef MFS_FUZZ_H
#define MFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#endif
