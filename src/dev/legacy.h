/* SPDX-License-Identifier: MIT */
/* legacy.h: the PC legacy devices (8250 UART, i8042, CMOS RTC, PCI host bridge). */
#ifndef KVMM_DEV_LEGACY_H
#define KVMM_DEV_LEGACY_H

#include <stddef.h>
#include <stdint.h>

#include "dev/dev.h"

extern const struct dev_desc serial_desc;
extern const struct dev_desc i8042_desc;
extern const struct dev_desc rtc_desc;
extern const struct dev_desc pci_host_desc;

/* Host-to-guest bytes for the UART; returns how many fit in its receive FIFO. */
size_t serial_receive(void *priv, const uint8_t *buf, size_t n);

#endif
