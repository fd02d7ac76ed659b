/* SPDX-License-Identifier: MIT */
/* dsdt.h: the compiled DSDT (AML from dsdt.asl), generated into dsdt_aml.c at build time. */
#ifndef KVMM_ARCH_X86_DSDT_DSDT_H
#define KVMM_ARCH_X86_DSDT_DSDT_H

#include <stddef.h>
#include <stdint.h>

extern const uint8_t acpi_dsdt_aml[];
extern const size_t acpi_dsdt_aml_len;

#endif
