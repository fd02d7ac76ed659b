/* SPDX-License-Identifier: MIT */
/* lib.c: ring-3 runtime of the test guests: start-up, serial console, printf, command line. */
#include "guest.h"

#include "arch/x86/pvh.h" /* -I src: the same definition kvmm writes it with */

const char *cmdline = "";
int memmap_entries = -1;
uint64_t memmap_ram_bytes;
int memmap_covers_image;
static char cmdline_buf[1024];
uint64_t rsdp_hint; /* used by acpi.c */
void acpi_init(void);

void *memcpy(void *d, const void *s, size_t n)
{
	char *dp = d;
	const char *sp = s;
	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	char *dp = d;
	const char *sp = s;
	if (dp < sp)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}

void *memset(void *d, int c, size_t n)
{
	char *dp = d;
	while (n--)
		*dp++ = (char)c;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

void serial_putc(char c)
{
	/* Bounded wait for THR empty, so a missing UART cannot hang the guest. */
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		cpu_relax();
	outb(COM1, (uint8_t)c);
}

void serial_puts(const char *s)
{
	while (*s)
		serial_putc(*s++);
}

static void put_num(uint64_t v, unsigned base, int width, char pad, int neg)
{
	char buf[24];
	int n = 0;
	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		buf[n++] = '-';
	while (n < width)
		buf[n++] = pad;
	while (n)
		serial_putc(buf[--n]);
}

/* Supports %s %c %d %i %u %x %p %%, the l/ll/z length modifiers and a 0-padded width. */
void vprintf(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			serial_putc(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, lng = 0;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng = 1;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			serial_puts(s ? s : "(null)");
			break;
		}
		case 'c':
			serial_putc((char)va_arg(ap, int));
			break;
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, width, pad, v < 0);
			break;
		}
		case 'u':
			put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad, 0);
			break;
		case 'x':
			put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, pad, 0);
			break;
		case 'p':
			serial_puts("0x");
			put_num((uint64_t)va_arg(ap, void *), 16, 0, ' ', 0);
			break;
		case '%':
			serial_putc('%');
			break;
		case 0:
			return;
		default:
			serial_putc('%');
			serial_putc(*fmt);
		}
	}
}

void printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

uint64_t cmdline_u64(const char *key, uint64_t def)
{
	size_t klen = strlen(key);
	const char *p = cmdline;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!memcmp(p, key, klen) && p[klen] == '=') {
			const char *v = p + klen + 1;
			uint64_t n = 0;
			unsigned base = 10;
			if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
				base = 16;
				v += 2;
			}
			const char *start = v;
			for (;; v++) {
				unsigned d;
				if (*v >= '0' && *v <= '9')
					d = *v - '0';
				else if (base == 16 && (*v | 0x20) >= 'a' && (*v | 0x20) <= 'f')
					d = (*v | 0x20) - 'a' + 10;
				else
					break;
				n = n * base + d;
			}
			return v == start ? def : n;
		}
		while (*p && *p != ' ')
			p++;
	}
	return def;
}

void delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + us * 4000;
	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
}

void i8042_reset(void)
{
	outb(0x64, 0xfe);
}

void poweroff(void)
{
	if (acpi_pm1a_cnt)
		outw(acpi_pm1a_cnt, acpi_s5_value);
	delay_us(100000);
	i8042_reset();
	for (;;)
		cpu_relax();
}

void success(void)
{
	serial_puts("SUCCESS\n");
	if (cmdline_u64("reset", 0)) /* for reboot tests: end in a reset instead */
		i8042_reset();
	poweroff();
}

void fail(const char *fmt, ...)
{
	va_list ap;
	serial_puts("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	serial_putc('\n');
	poweroff();
}

void triple_fault(void)
{
	__asm__ volatile("ud2" : : "a"(UD2_TRIPLE_FAULT) : "memory");
}

__attribute__((weak)) void ap_main(int index)
{
	(void)index;
}

/* Entered from entry.S in ring 3 on the BSP, .bss already zeroed. */
void guest_start(void)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)start_info_paddr;
	/* .data may be stale after a reset if the VMM does not reload the image. */
	memset((void *)irq_count, 0, sizeof(irq_count));
	acpi_pm1a_cnt = 0;
	acpi_s5_value = 0;
	if (si && si->magic == HVM_START_MAGIC) {
		if (si->cmdline_paddr) {
			const char *c = (const char *)(uintptr_t)si->cmdline_paddr;
			size_t n = 0;
			while (n < sizeof(cmdline_buf) - 1 && c[n])
				n++;
			memcpy(cmdline_buf, c, n);
			cmdline_buf[n] = 0;
			cmdline = cmdline_buf;
		}
		rsdp_hint = si->rsdp_paddr;
		if (si->version >= 1 && si->memmap_paddr) {
			const struct hvm_memmap_table_entry *m = (const void *)(uintptr_t)si->memmap_paddr;
			extern char __image_end[];
			memmap_entries = (int)si->memmap_entries;
			for (uint32_t i = 0; i < si->memmap_entries; i++) {
				if (m[i].type != HVM_MEMMAP_TYPE_RAM)
					continue;
				memmap_ram_bytes += m[i].size;
				if (m[i].addr <= 0x100000 && m[i].addr + m[i].size >= (uintptr_t)__image_end)
					memmap_covers_image = 1;
			}
		}
	}
	acpi_init();
	guest_main();
	success();
}

/* Entered from entry.S in ring 3 on an AP. */
void guest_ap_start(int index)
{
	ap_main(index);
	for (;;)
		cpu_relax();
}
