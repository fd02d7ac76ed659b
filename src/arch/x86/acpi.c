// SPDX-License-Identifier: MIT
/* acpi.c: builds the ACPI tables (RSDP, XSDT, FADT, FACS, DSDT, MADT) an x86 guest boots with. */
#include "arch/x86/acpi.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/dsdt/dsdt.h"
#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/util.h"

/*
 * Table layouts, little-endian as the x86 guest reads them. The host is
 * x86-64 too, so packed structs give the exact byte layout.
 */
#define ACPI_PACKED __attribute__((packed))

/* System description table header (ACPI 6.x section 5.2.6). */
struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} ACPI_PACKED;

/* Root System Description Pointer, revision 2 (section 5.2.5.3). */
struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* over the first 20 bytes (the ACPI 1.0 part) */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* over all 36 bytes */
	uint8_t reserved[3];
} ACPI_PACKED;

/* Generic Address Structure (section 5.2.3.2). */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} ACPI_PACKED;

/* Fixed ACPI Description Table, revision 6 (section 5.2.9, table 5.9). */
struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} ACPI_PACKED;

/* Firmware ACPI Control Structure (section 5.2.10); no header, no checksum. */
struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_waking_vector;
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} ACPI_PACKED;

/* Multiple APIC Description Table (section 5.2.12) and its entries. */
struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_addr;
	uint32_t flags;
} ACPI_PACKED;

struct madt_lapic { /* type 0, section 5.2.12.2 */
	uint8_t type, length, uid, apic_id;
	uint32_t flags;
} ACPI_PACKED;

struct madt_ioapic { /* type 1, section 5.2.12.3 */
	uint8_t type, length, ioapic_id, reserved;
	uint32_t address;
	uint32_t gsi_base;
} ACPI_PACKED;

struct madt_iso { /* type 2, section 5.2.12.5 */
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
} ACPI_PACKED;

struct madt_lapic_nmi { /* type 4, section 5.2.12.7 */
	uint8_t type, length, uid;
	uint16_t flags;
	uint8_t lint;
} ACPI_PACKED;

struct madt_x2apic { /* type 9, section 5.2.12.12 */
	uint8_t type, length;
	uint16_t reserved;
	uint32_t x2apic_id;
	uint32_t flags;
	uint32_t uid;
} ACPI_PACKED;

struct madt_x2apic_nmi { /* type 10, section 5.2.12.13 */
	uint8_t type, length;
	uint16_t flags;
	uint32_t uid;
	uint8_t lint;
	uint8_t reserved[3];
} ACPI_PACKED;

_Static_assert(sizeof(struct acpi_header) == 36, "ACPI header");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS");
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT");
_Static_assert(sizeof(struct madt_lapic) == 8, "MADT local APIC");
_Static_assert(sizeof(struct madt_ioapic) == 12, "MADT IOAPIC");
_Static_assert(sizeof(struct madt_iso) == 10, "MADT override");
_Static_assert(sizeof(struct madt_lapic_nmi) == 6, "MADT local APIC NMI");
_Static_assert(sizeof(struct madt_x2apic) == 16, "MADT local x2APIC");
_Static_assert(sizeof(struct madt_x2apic_nmi) == 12, "MADT local x2APIC NMI");

#define ACPI_OEM_ID "KVMM  "
#define ACPI_CREATOR_ID "KVMM"

/* FADT flags (table 5.10) and IA-PC boot architecture flags (table 5.11). */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_SLP_BUTTON (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_BOOT_LEGACY_DEVICES (1u << 0)
#define FADT_BOOT_8042 (1u << 1)

/* GAS address spaces and access sizes (table 5.1). */
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3

/* MADT flags (tables 5.44, 5.46, 5.50). */
#define MADT_PCAT_COMPAT (1u << 0)
#define MADT_LAPIC_ENABLED (1u << 0)
#define MPS_INTI_POLARITY_HIGH 0x1
#define MPS_INTI_TRIGGER_LEVEL (0x3 << 2)

/* RTC CMOS index of the century byte (FADT CENTURY). */
#define RTC_CENTURY_INDEX 0x32

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return (uint8_t)(0 - sum);
}

uint32_t x86_pci_intx_gsi(unsigned slot, unsigned pin)
{
	return 16 + (slot + pin) % 8;
}

/* The part of buf handed out so far, and where the guest sees it. */
struct acpi_out {
	uint8_t *buf;
	size_t cap;
	size_t off;
	uint64_t gpa;
};

/*
 * Hand out len zeroed bytes at a guest-physical address aligned to align
 * (a power of two). NULL when they do not fit.
 */
static void *acpi_alloc(struct acpi_out *o, size_t len, uint64_t align, uint64_t *gpa)
{
	uint64_t at = ALIGN_UP(o->gpa + o->off, align) - o->gpa;
	uint8_t *p;

	if (!range_ok(at, len, o->cap))
		return NULL;
	memset(o->buf + o->off, 0, (size_t)at - o->off); /* padding */
	p = o->buf + at;
	memset(p, 0, len);
	o->off = (size_t)at + len;
	*gpa = o->gpa + at;
	return p;
}

static void acpi_header_init(struct acpi_header *h, const char sig[4], uint32_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	/* "KVMM" followed by the signature, as the DSDT's "KVMMDSDT". */
	memcpy(h->oem_table_id, "KVMM", 4);
	memcpy(h->oem_table_id + 4, sig, 4);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
}

/* Fill the checksum of a table whose header gives its length. */
static void acpi_header_seal(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = acpi_checksum(h, h->length);
}

static struct acpi_gas gas_io(uint16_t port, uint8_t bytes, uint8_t access)
{
	return (struct acpi_gas){
		.space_id = GAS_SYSTEM_IO,
		.bit_width = (uint8_t)(bytes * 8),
		.access_size = access,
		.address = port,
	};
}

static void fadt_fill(struct acpi_fadt *f, uint64_t facs, uint64_t dsdt)
{
	acpi_header_init(&f->h, "FACP", sizeof(*f), 6);
	f->minor_version = 0;
	/*
	 * Both the 32-bit and the X_ pointers, equal, so an OSPM reading
	 * either agrees (section 5.2.9: the X_ field wins when non-zero).
	 */
	f->firmware_ctrl = (uint32_t)facs;
	f->dsdt = (uint32_t)dsdt;
	f->x_firmware_ctrl = facs;
	f->x_dsdt = dsdt;
	f->sci_int = X86_IRQ_SCI;
	/* SMI_CMD 0: no ACPI mode transition, the hardware is always in ACPI mode. */
	f->smi_cmd = 0;

	f->pm1a_evt_blk = X86_PORT_PM1A_EVT;
	f->pm1a_cnt_blk = X86_PORT_PM1A_CNT;
	f->pm_tmr_blk = X86_PORT_PM_TMR;
	f->gpe0_blk = X86_PORT_GPE0;
	f->pm1_evt_len = X86_PM1_EVT_LEN;
	f->pm1_cnt_len = X86_PM1_CNT_LEN;
	f->pm_tmr_len = X86_PM_TMR_LEN;
	f->gpe0_blk_len = X86_GPE0_LEN;
	/* The X_ blocks must match the legacy lengths (bit width = 8 * LEN). */
	f->x_pm1a_evt_blk = gas_io(X86_PORT_PM1A_EVT, X86_PM1_EVT_LEN, GAS_ACCESS_WORD);
	f->x_pm1a_cnt_blk = gas_io(X86_PORT_PM1A_CNT, X86_PM1_CNT_LEN, GAS_ACCESS_WORD);
	f->x_pm_tmr_blk = gas_io(X86_PORT_PM_TMR, X86_PM_TMR_LEN, GAS_ACCESS_DWORD);
	f->x_gpe0_blk = gas_io(X86_PORT_GPE0, X86_GPE0_LEN, GAS_ACCESS_BYTE);

	/* Latencies above 100 / 1000 us say C2 / C3 are not supported. */
	f->p_lvl2_lat = 101;
	f->p_lvl3_lat = 1001;
	f->century = RTC_CENTURY_INDEX;
	f->iapc_boot_arch = FADT_BOOT_LEGACY_DEVICES | FADT_BOOT_8042;
	/*
	 * PWR_BUTTON clear: the power button is the fixed-feature one
	 * (PM1_STS.PWRBTN_STS). TMR_VAL_EXT clear: a 24-bit PM timer.
	 */
	f->flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP;
	/* Reset: write 0x06 (full reset | reset CPU) to the 0xcf9 register. */
	f->reset_reg = gas_io(X86_PORT_RESET, 1, GAS_ACCESS_BYTE);
	f->reset_value = 0x06;
	acpi_header_seal(&f->h);
}

static size_t madt_size(const struct acpi_config *cfg, bool *x2apic)
{
	size_t len = sizeof(struct acpi_madt);

	*x2apic = false;
	for (unsigned i = 0; i < cfg->ncpus; i++) {
		/* Section 5.2.12.12: IDs of 255 and up need the x2APIC entry. */
		if (cfg->apic_ids[i] < 0xff && i < 0xff) {
			len += sizeof(struct madt_lapic);
		} else {
			len += sizeof(struct madt_x2apic);
			*x2apic = true;
		}
	}
	len += sizeof(struct madt_ioapic) + 2 * sizeof(struct madt_iso) +
	       sizeof(struct madt_lapic_nmi);
	if (*x2apic)
		len += sizeof(struct madt_x2apic_nmi);
	return len;
}

static void madt_fill(uint8_t *p, size_t len, bool x2apic, const struct acpi_config *cfg)
{
	struct acpi_madt *m = (struct acpi_madt *)p;
	struct madt_lapic_nmi *nmi;
	struct madt_ioapic *io;
	struct madt_iso *iso;
	size_t off = sizeof(*m);

	acpi_header_init(&m->h, "APIC", (uint32_t)len, 3);
	m->lapic_addr = (uint32_t)cfg->lapic_addr;
	/* PCAT_COMPAT: there are 8259 PICs, which the OS must mask. */
	m->flags = MADT_PCAT_COMPAT;

	for (unsigned i = 0; i < cfg->ncpus; i++) {
		if (cfg->apic_ids[i] < 0xff && i < 0xff) {
			struct madt_lapic *l = (struct madt_lapic *)(p + off);

			l->type = 0;
			l->length = sizeof(*l);
			l->uid = (uint8_t)i;
			l->apic_id = (uint8_t)cfg->apic_ids[i];
			l->flags = MADT_LAPIC_ENABLED;
			off += sizeof(*l);
		} else {
			struct madt_x2apic *x = (struct madt_x2apic *)(p + off);

			x->type = 9;
			x->length = sizeof(*x);
			x->x2apic_id = cfg->apic_ids[i];
			x->flags = MADT_LAPIC_ENABLED;
			x->uid = i;
			off += sizeof(*x);
		}
	}

	io = (struct madt_ioapic *)(p + off);
	io->type = 1;
	io->length = sizeof(*io);
	io->ioapic_id = (uint8_t)cfg->ioapic_id;
	io->address = (uint32_t)cfg->ioapic_addr;
	io->gsi_base = 0;
	off += sizeof(*io);

	/* The PIT's IRQ 0 arrives on IOAPIC pin 2 (pin 0 is the 8259's ExtINT). */
	iso = (struct madt_iso *)(p + off);
	iso->type = 2;
	iso->length = sizeof(*iso);
	iso->bus = 0; /* ISA */
	iso->source = 0;
	iso->gsi = 2;
	iso->flags = 0; /* conforms to the bus: edge, active high */
	off += sizeof(*iso);

	/* The SCI is level-triggered, active high (section 5.2.12.5). */
	iso = (struct madt_iso *)(p + off);
	iso->type = 2;
	iso->length = sizeof(*iso);
	iso->bus = 0;
	iso->source = X86_IRQ_SCI;
	iso->gsi = X86_IRQ_SCI;
	iso->flags = MPS_INTI_POLARITY_HIGH | MPS_INTI_TRIGGER_LEVEL;
	off += sizeof(*iso);

	/* NMI arrives on LINT1 of every processor (UID 0xff = all). */
	nmi = (struct madt_lapic_nmi *)(p + off);
	nmi->type = 4;
	nmi->length = sizeof(*nmi);
	nmi->uid = 0xff;
	nmi->flags = 0;
	nmi->lint = 1;
	off += sizeof(*nmi);

	if (x2apic) {
		struct madt_x2apic_nmi *xn = (struct madt_x2apic_nmi *)(p + off);

		xn->type = 10;
		xn->length = sizeof(*xn);
		xn->uid = 0xffffffff;
		xn->lint = 1;
		off += sizeof(*xn);
	}
	acpi_header_seal(&m->h);
}

static int acpi_check_config(const struct acpi_config *cfg, struct err *e)
{
	if (!cfg || cfg->ncpus == 0 || !cfg->apic_ids)
		return err_set(e, EINVAL, "ACPI: no vCPUs to describe");
	if (cfg->ioapic_id > 0xff)
		return err_set(e, EINVAL, "ACPI: IOAPIC ID %u does not fit in 8 bits",
			       cfg->ioapic_id);
	/* The MADT holds 32-bit APIC addresses. */
	if (cfg->ioapic_addr > UINT32_MAX || cfg->lapic_addr > UINT32_MAX)
		return err_set(e, EINVAL, "ACPI: APIC addresses must lie below 4 GiB");
	return 0;
}

int acpi_build(void *buf, size_t len, uint64_t gpa, const struct acpi_config *cfg, size_t *used,
	       struct err *e)
{
	struct acpi_out o = { .buf = buf, .cap = len, .gpa = gpa };
	uint64_t rsdp_gpa, facs_gpa, dsdt_gpa, fadt_gpa, madt_gpa, xsdt_gpa;
	struct acpi_rsdp *rsdp;
	struct acpi_facs *facs;
	struct acpi_fadt *fadt;
	struct acpi_header *xsdt;
	uint8_t *dsdt, *madt;
	size_t madt_len, xsdt_len;
	bool x2apic;
	int ret;

	ret = acpi_check_config(cfg, e);
	if (ret)
		return ret;
	/* The FADT's 32-bit FIRMWARE_CTRL and DSDT fields need the tables below 4 GiB. */
	if (gpa >= UINT32_MAX)
		return err_set(e, EINVAL, "ACPI tables at 0x%llx: not below 4 GiB",
			       (unsigned long long)gpa);
	o.cap = (size_t)MIN((uint64_t)o.cap, (uint64_t)UINT32_MAX - gpa);
	/* In the BIOS area they must not run past its end (1 MiB). */
	if (gpa >= X86_BIOS_START && gpa < X86_BIOS_END)
		o.cap = (size_t)MIN((uint64_t)o.cap, X86_BIOS_END - gpa);

	madt_len = madt_size(cfg, &x2apic);
	xsdt_len = sizeof(struct acpi_header) + 2 * sizeof(uint64_t);

	/* The OS scans for the RSDP on 16-byte boundaries (section 5.2.5.1). */
	rsdp = acpi_alloc(&o, sizeof(*rsdp), 16, &rsdp_gpa);
	/* The FACS must be 64-byte aligned (section 5.2.10). */
	facs = rsdp ? acpi_alloc(&o, sizeof(*facs), 64, &facs_gpa) : NULL;
	dsdt = facs ? acpi_alloc(&o, acpi_dsdt_aml_len, 16, &dsdt_gpa) : NULL;
	fadt = dsdt ? acpi_alloc(&o, sizeof(*fadt), 16, &fadt_gpa) : NULL;
	madt = fadt ? acpi_alloc(&o, madt_len, 16, &madt_gpa) : NULL;
	xsdt = madt ? acpi_alloc(&o, xsdt_len, 16, &xsdt_gpa) : NULL;
	if (!xsdt)
		return err_set(e, ENOSPC, "ACPI tables for %u vCPUs do not fit in %zu bytes",
			       cfg->ncpus, o.cap);

	memcpy(facs->signature, "FACS", 4);
	facs->length = sizeof(*facs);
	facs->version = 2; /* ACPI 6.x FACS layout with X_Firmware_Waking_Vector */

	/* The AML carries its own header and checksum from iasl. */
	memcpy(dsdt, acpi_dsdt_aml, acpi_dsdt_aml_len);

	fadt_fill(fadt, facs_gpa, dsdt_gpa);
	madt_fill(madt, madt_len, x2apic, cfg);

	/* XSDT (section 5.2.8): 64-bit pointers to the FADT and the MADT. */
	acpi_header_init(xsdt, "XSDT", (uint32_t)xsdt_len, 1);
	memcpy((uint8_t *)xsdt + sizeof(*xsdt), &fadt_gpa, 8);
	memcpy((uint8_t *)xsdt + sizeof(*xsdt) + 8, &madt_gpa, 8);
	acpi_header_seal(xsdt);

	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, ACPI_OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->rsdt_address = 0; /* no RSDT: ACPI 2.0+ OSes use the XSDT */
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_address = xsdt_gpa;
	rsdp->checksum = acpi_checksum(rsdp, 20);
	rsdp->extended_checksum = acpi_checksum(rsdp, sizeof(*rsdp));

	*used = o.off;
	return 0;
}
