/* SPDX-License-Identifier: MIT */
/* acpi.c: finds the RSDP, walks the XSDT/RSDT to the FADT and MADT, and learns how to
 * power off (PM1a_CNT port and the \_S5_ sleep type from the DSDT). */
#include "guest.h"

struct acpi_header {
	char sig[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem[6];
	char oem_table[8];
	uint32_t oem_rev;
	uint32_t creator;
	uint32_t creator_rev;
} __attribute__((packed));

extern uint64_t rsdp_hint;
static const uint8_t *rsdp;

static int checksum_ok(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t sum = 0;
	while (n--)
		sum += *b++;
	return sum == 0;
}

static int is_rsdp(const uint8_t *p)
{
	return !memcmp(p, "RSD PTR ", 8) && checksum_ok(p, 20);
}

static const uint8_t *find_rsdp(void)
{
	if (rsdp_hint && rsdp_hint < 0x100000000ULL && is_rsdp((const uint8_t *)(uintptr_t)rsdp_hint))
		return (const uint8_t *)(uintptr_t)rsdp_hint;
	for (uintptr_t a = 0xe0000; a < 0x100000; a += 16)
		if (is_rsdp((const uint8_t *)a))
			return (const uint8_t *)a;
	return NULL;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static const struct acpi_header *table_at(uint64_t addr)
{
	if (!addr || addr >= 0x100000000ULL)
		return NULL;
	return (const struct acpi_header *)(uintptr_t)addr;
}

const void *acpi_find_table(const char sig[4])
{
	if (!rsdp)
		return NULL;
	const struct acpi_header *root;
	int entsz;
	if (rsdp[15] >= 2 && rd64(rsdp + 24)) {
		root = table_at(rd64(rsdp + 24));
		entsz = 8;
	} else {
		root = table_at(rd32(rsdp + 16));
		entsz = 4;
	}
	if (!root || root->length < sizeof(*root))
		return NULL;
	const uint8_t *ents = (const uint8_t *)(root + 1);
	size_t n = (root->length - sizeof(*root)) / entsz;
	for (size_t i = 0; i < n; i++) {
		uint64_t a = entsz == 8 ? rd64(ents + i * 8) : rd32(ents + i * 4);
		const struct acpi_header *t = table_at(a);
		if (t && !memcmp(t->sig, sig, 4))
			return t;
	}
	return NULL;
}

/* First element of the \_S5_ package: SLP_TYPa. AML: NameOp "_S5_" PackageOp PkgLength
 * NumElements, then a ByteConst (0x0a NN), Zero (0x00), One (0x01) or Ones (0xff). */
static int s5_sleep_type(const struct acpi_header *dsdt)
{
	const uint8_t *p = (const uint8_t *)dsdt;
	for (uint32_t i = sizeof(*dsdt); i + 12 < dsdt->length; i++) {
		if (memcmp(p + i, "_S5_", 4) || p[i + 4] != 0x12)
			continue;
		const uint8_t *q = p + i + 5;
		q += 1 + (q[0] >> 6); /* PkgLength: lead byte bits 7:6 count extra bytes */
		q++; /* NumElements */
		if (q[0] == 0x0a)
			return q[1] & 7;
		if (q[0] == 0x00 || q[0] == 0x01)
			return q[0];
		if (q[0] == 0xff)
			return 7;
		return -1;
	}
	return -1;
}

void acpi_init(void)
{
	rsdp = find_rsdp();
	const uint8_t *fadt = acpi_find_table("FACP");
	if (!fadt)
		return;
	uint32_t flen = ((const struct acpi_header *)fadt)->length;
	uint32_t pm1a = flen >= 68 ? rd32(fadt + 64) : 0;
	if (!pm1a && flen >= 184 && fadt[172] == 1) /* X_PM1a_CNT_BLK in I/O space */
		pm1a = (uint32_t)rd64(fadt + 176);
	uint64_t dsdt_addr = flen >= 148 ? rd64(fadt + 140) : 0;
	if (!dsdt_addr && flen >= 44)
		dsdt_addr = rd32(fadt + 40);
	const struct acpi_header *dsdt = table_at(dsdt_addr);
	int slp = -1;
	if (dsdt && !memcmp(dsdt->sig, "DSDT", 4))
		slp = s5_sleep_type(dsdt);
	if (pm1a && pm1a < 0x10000 && slp >= 0) {
		acpi_s5_value = (uint16_t)(slp << 10 | 1 << 13);
		acpi_pm1a_cnt = (uint16_t)pm1a;
	}
}

int madt_cpus(uint32_t *ids, int max)
{
	const uint8_t *madt = acpi_find_table("APIC");
	if (!madt)
		return -1;
	uint32_t len = ((const struct acpi_header *)madt)->length;
	int n = 0;
	for (uint32_t off = 44; off + 2 <= len;) {
		uint8_t type = madt[off], elen = madt[off + 1];
		if (elen < 2 || off + elen > len)
			break;
		if (type == 0 && elen >= 8 && (rd32(madt + off + 4) & 1)) {
			if (n < max)
				ids[n] = madt[off + 3];
			n++;
		} else if (type == 9 && elen >= 16 && (rd32(madt + off + 8) & 1)) {
			if (n < max)
				ids[n] = rd32(madt + off + 4);
			n++;
		}
		off += elen;
	}
	return n;
}
