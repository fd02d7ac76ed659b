/* SPDX-License-Identifier: MIT */
/* acpi_pm.h: the ACPI fixed hardware (PM1 event/control, PM timer, GPE0) the FADT points at. */
#ifndef KVMM_DEV_ACPI_PM_H
#define KVMM_DEV_ACPI_PM_H

#include "dev/dev.h"

/*
 * Claims X86_PORT_PM1A_EVT, X86_PORT_PM1A_CNT, X86_PORT_PM_TMR and
 * X86_PORT_GPE0 on ctx->pio and drives the SCI (X86_IRQ_SCI) as a level.
 * The FADT's reset register (0xcf9) is not here: it sits inside the PCI
 * host's 0xcf8-0xcff range and pci.c decodes it.
 */
extern const struct dev_desc acpi_pm_desc;

/* Press the fixed-feature power button: sets PM1_STS.PWRBTN_STS (any thread). */
void acpi_pm_power_button(void *priv);

/* Raise general-purpose event `bit` (0..15): sets GPE0_STS bit (any thread). */
void acpi_pm_gpe_raise(void *priv, unsigned bit);

#endif
