/* SPDX-License-Identifier: MIT */
/* pci.h: plugging devices into the PCI host bridge: configuration space and memory BARs. */
#ifndef KVMM_DEV_PCI_H
#define KVMM_DEV_PCI_H

#include <stdbool.h>
#include <stdint.h>

struct bus_ops;
struct err;

#define PCI_CFG_SIZE 256
#define PCI_NUM_BARS 6

/* Configuration space offsets and bits (PCI Local Bus 3.0, 6.1-6.2). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_STATUS_INTERRUPT 0x08
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CLASS_DEVICE 0x0a
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

/* A memory BAR the device implements: size is a power of two >= 4 KiB, 0 when unused. */
struct pci_bar_desc {
	uint64_t size;
	bool is64;
	const struct bus_ops *ops;
	void *opaque;
};

struct pci_device {
	const char *name;
	/*
	 * The owner fills IDs, class, capabilities and sets wmask for the bits a
	 * guest may write outside the header's BARs and command register, which
	 * the host manages itself.
	 */
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];
	struct pci_bar_desc bars[PCI_NUM_BARS];
	/* Before a guest read at [off, off+len): refresh cfg bytes computed on demand. */
	void (*cfg_reading)(void *opaque, unsigned off, unsigned len);
	/* After a guest write at [off, off+len) outside BARs/command (host lock held). */
	void (*cfg_written)(void *opaque, unsigned off, unsigned len);
	/* A BAR was mapped (addr != 0) or unmapped (addr == 0). */
	void (*bar_mapped)(void *opaque, int bar, uint64_t addr);
	void *opaque;

	/* Owned by the host bridge. */
	unsigned slot;
	/* INTA#'s GSI: fixed by the slot; the guest-writable Interrupt Line is only a note to the OS. */
	uint32_t intx_gsi;
	uint64_t bar_addr[PCI_NUM_BARS];
	bool bar_live[PCI_NUM_BARS];
};

/*
 * Plug d into the first free slot (1-31) of the host bridge (the priv of
 * pci_host_desc): assigns its BARs inside the 32-bit PCI window (firmware
 * style, so the guest finds them ready) and its INTx line.
 */
int pci_add_device(void *host, struct pci_device *d, struct err *e);
void pci_remove_device(void *host, struct pci_device *d);

#endif
