/* SPDX-License-Identifier: MIT */
/*
 * dsdt.asl: the Differentiated System Description Table kvmm gives every x86
 * guest (ACPI 6.x section 5.2.11.1): the S5 sleep package, the PCI root
 * bridge with its resource windows and interrupt routing, and COM1.
 *
 * Numbers here mirror src/arch/x86/layout.h (iasl cannot read the C header);
 * tests/unit/test_acpi.c checks the compiled bytes against layout.h.
 */
DefinitionBlock ("", "DSDT", 2, "KVMM  ", "KVMMDSDT", 0x00000001)
{
	/*
	 * \_S5 (ACPI 6.x section 7.4.2): the SLP_TYP values for PM1a_CNT and
	 * PM1b_CNT. Writing SLP_TYP 5 with SLP_EN powers the VM off
	 * (X86_SLP_TYP_S5, src/dev/acpi_pm.c).
	 */
	Name (\_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })

	Scope (\_SB)
	{
		/* PCI root bridge (ACPI 6.x section 6.1.5, PCI Firmware spec 3.2). */
		Device (PCI0)
		{
			Name (_HID, EisaId ("PNP0A08"))
			Name (_CID, EisaId ("PNP0A03"))
			Name (_SEG, Zero)
			Name (_BBN, Zero)
			Name (_UID, Zero)

			/* Resources decoded by the bridge (ACPI 6.x section 6.4.3.5). */
			Name (_CRS, ResourceTemplate ()
			{
				WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
					0x0000, 0x0000, 0x00FF, 0x0000, 0x0100)
				/* The configuration mechanism #1 ports the bridge itself uses. */
				IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
				WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
					0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8)
				WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
					0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300)
				/* X86_PCI_MMIO_START .. X86_PCI_MMIO_END - 1 */
				DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed,
					NonCacheable, ReadWrite,
					0x00000000, 0xC0000000, 0xFEBFFFFF, 0x00000000, 0x3EC00000)
				/* 64-bit window for large BARs: 512 GiB .. 1 TiB - 1. */
				QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed,
					NonCacheable, ReadWrite,
					0x0000000000000000, 0x0000008000000000, 0x000000FFFFFFFFFF,
					0x0000000000000000, 0x0000008000000000)
			})

			/*
			 * Interrupt routing (ACPI 6.x section 6.2.13): no link devices,
			 * every entry names a global system interrupt directly (source
			 * Zero). Slot s (1..31), pin p (0 = INTA .. 3 = INTD) goes to
			 * GSI 16 + ((s + p) % 8), as x86_pci_intx_gsi() computes.
			 * Slot 0 is the host bridge, which raises no interrupts.
			 */
			Name (_PRT, Package ()
			{
				Package () { 0x0001FFFF, 0, Zero, 17 },
				Package () { 0x0001FFFF, 1, Zero, 18 },
				Package () { 0x0001FFFF, 2, Zero, 19 },
				Package () { 0x0001FFFF, 3, Zero, 20 },
				Package () { 0x0002FFFF, 0, Zero, 18 },
				Package () { 0x0002FFFF, 1, Zero, 19 },
				Package () { 0x0002FFFF, 2, Zero, 20 },
				Package () { 0x0002FFFF, 3, Zero, 21 },
				Package () { 0x0003FFFF, 0, Zero, 19 },
				Package () { 0x0003FFFF, 1, Zero, 20 },
				Package () { 0x0003FFFF, 2, Zero, 21 },
				Package () { 0x0003FFFF, 3, Zero, 22 },
				Package () { 0x0004FFFF, 0, Zero, 20 },
				Package () { 0x0004FFFF, 1, Zero, 21 },
				Package () { 0x0004FFFF, 2, Zero, 22 },
				Package () { 0x0004FFFF, 3, Zero, 23 },
				Package () { 0x0005FFFF, 0, Zero, 21 },
				Package () { 0x0005FFFF, 1, Zero, 22 },
				Package () { 0x0005FFFF, 2, Zero, 23 },
				Package () { 0x0005FFFF, 3, Zero, 16 },
				Package () { 0x0006FFFF, 0, Zero, 22 },
				Package () { 0x0006FFFF, 1, Zero, 23 },
				Package () { 0x0006FFFF, 2, Zero, 16 },
				Package () { 0x0006FFFF, 3, Zero, 17 },
				Package () { 0x0007FFFF, 0, Zero, 23 },
				Package () { 0x0007FFFF, 1, Zero, 16 },
				Package () { 0x0007FFFF, 2, Zero, 17 },
				Package () { 0x0007FFFF, 3, Zero, 18 },
				Package () { 0x0008FFFF, 0, Zero, 16 },
				Package () { 0x0008FFFF, 1, Zero, 17 },
				Package () { 0x0008FFFF, 2, Zero, 18 },
				Package () { 0x0008FFFF, 3, Zero, 19 },
				Package () { 0x0009FFFF, 0, Zero, 17 },
				Package () { 0x0009FFFF, 1, Zero, 18 },
				Package () { 0x0009FFFF, 2, Zero, 19 },
				Package () { 0x0009FFFF, 3, Zero, 20 },
				Package () { 0x000AFFFF, 0, Zero, 18 },
				Package () { 0x000AFFFF, 1, Zero, 19 },
				Package () { 0x000AFFFF, 2, Zero, 20 },
				Package () { 0x000AFFFF, 3, Zero, 21 },
				Package () { 0x000BFFFF, 0, Zero, 19 },
				Package () { 0x000BFFFF, 1, Zero, 20 },
				Package () { 0x000BFFFF, 2, Zero, 21 },
				Package () { 0x000BFFFF, 3, Zero, 22 },
				Package () { 0x000CFFFF, 0, Zero, 20 },
				Package () { 0x000CFFFF, 1, Zero, 21 },
				Package () { 0x000CFFFF, 2, Zero, 22 },
				Package () { 0x000CFFFF, 3, Zero, 23 },
				Package () { 0x000DFFFF, 0, Zero, 21 },
				Package () { 0x000DFFFF, 1, Zero, 22 },
				Package () { 0x000DFFFF, 2, Zero, 23 },
				Package () { 0x000DFFFF, 3, Zero, 16 },
				Package () { 0x000EFFFF, 0, Zero, 22 },
				Package () { 0x000EFFFF, 1, Zero, 23 },
				Package () { 0x000EFFFF, 2, Zero, 16 },
				Package () { 0x000EFFFF, 3, Zero, 17 },
				Package () { 0x000FFFFF, 0, Zero, 23 },
				Package () { 0x000FFFFF, 1, Zero, 16 },
				Package () { 0x000FFFFF, 2, Zero, 17 },
				Package () { 0x000FFFFF, 3, Zero, 18 },
				Package () { 0x0010FFFF, 0, Zero, 16 },
				Package () { 0x0010FFFF, 1, Zero, 17 },
				Package () { 0x0010FFFF, 2, Zero, 18 },
				Package () { 0x0010FFFF, 3, Zero, 19 },
				Package () { 0x0011FFFF, 0, Zero, 17 },
				Package () { 0x0011FFFF, 1, Zero, 18 },
				Package () { 0x0011FFFF, 2, Zero, 19 },
				Package () { 0x0011FFFF, 3, Zero, 20 },
				Package () { 0x0012FFFF, 0, Zero, 18 },
				Package () { 0x0012FFFF, 1, Zero, 19 },
				Package () { 0x0012FFFF, 2, Zero, 20 },
				Package () { 0x0012FFFF, 3, Zero, 21 },
				Package () { 0x0013FFFF, 0, Zero, 19 },
				Package () { 0x0013FFFF, 1, Zero, 20 },
				Package () { 0x0013FFFF, 2, Zero, 21 },
				Package () { 0x0013FFFF, 3, Zero, 22 },
				Package () { 0x0014FFFF, 0, Zero, 20 },
				Package () { 0x0014FFFF, 1, Zero, 21 },
				Package () { 0x0014FFFF, 2, Zero, 22 },
				Package () { 0x0014FFFF, 3, Zero, 23 },
				Package () { 0x0015FFFF, 0, Zero, 21 },
				Package () { 0x0015FFFF, 1, Zero, 22 },
				Package () { 0x0015FFFF, 2, Zero, 23 },
				Package () { 0x0015FFFF, 3, Zero, 16 },
				Package () { 0x0016FFFF, 0, Zero, 22 },
				Package () { 0x0016FFFF, 1, Zero, 23 },
				Package () { 0x0016FFFF, 2, Zero, 16 },
				Package () { 0x0016FFFF, 3, Zero, 17 },
				Package () { 0x0017FFFF, 0, Zero, 23 },
				Package () { 0x0017FFFF, 1, Zero, 16 },
				Package () { 0x0017FFFF, 2, Zero, 17 },
				Package () { 0x0017FFFF, 3, Zero, 18 },
				Package () { 0x0018FFFF, 0, Zero, 16 },
				Package () { 0x0018FFFF, 1, Zero, 17 },
				Package () { 0x0018FFFF, 2, Zero, 18 },
				Package () { 0x0018FFFF, 3, Zero, 19 },
				Package () { 0x0019FFFF, 0, Zero, 17 },
				Package () { 0x0019FFFF, 1, Zero, 18 },
				Package () { 0x0019FFFF, 2, Zero, 19 },
				Package () { 0x0019FFFF, 3, Zero, 20 },
				Package () { 0x001AFFFF, 0, Zero, 18 },
				Package () { 0x001AFFFF, 1, Zero, 19 },
				Package () { 0x001AFFFF, 2, Zero, 20 },
				Package () { 0x001AFFFF, 3, Zero, 21 },
				Package () { 0x001BFFFF, 0, Zero, 19 },
				Package () { 0x001BFFFF, 1, Zero, 20 },
				Package () { 0x001BFFFF, 2, Zero, 21 },
				Package () { 0x001BFFFF, 3, Zero, 22 },
				Package () { 0x001CFFFF, 0, Zero, 20 },
				Package () { 0x001CFFFF, 1, Zero, 21 },
				Package () { 0x001CFFFF, 2, Zero, 22 },
				Package () { 0x001CFFFF, 3, Zero, 23 },
				Package () { 0x001DFFFF, 0, Zero, 21 },
				Package () { 0x001DFFFF, 1, Zero, 22 },
				Package () { 0x001DFFFF, 2, Zero, 23 },
				Package () { 0x001DFFFF, 3, Zero, 16 },
				Package () { 0x001EFFFF, 0, Zero, 22 },
				Package () { 0x001EFFFF, 1, Zero, 23 },
				Package () { 0x001EFFFF, 2, Zero, 16 },
				Package () { 0x001EFFFF, 3, Zero, 17 },
				Package () { 0x001FFFFF, 0, Zero, 23 },
				Package () { 0x001FFFFF, 1, Zero, 16 },
				Package () { 0x001FFFFF, 2, Zero, 17 },
				Package () { 0x001FFFFF, 3, Zero, 18 }
			})
		}

		/* COM1, the 8250 UART at X86_PORT_COM1 on X86_IRQ_COM1. */
		Device (COM1)
		{
			Name (_HID, EisaId ("PNP0501"))
			Name (_UID, One)
			Name (_STA, 0x0F)
			Name (_CRS, ResourceTemplate ()
			{
				IO (Decode16, 0x03F8, 0x03F8, 0x08, 0x08)
				IRQNoFlags () { 4 }
			})
		}
	}
}
