// SPDX-License-Identifier: MIT
/* cpuid.c: the CPUID policy a vCPU sees, built from KVM_GET_SUPPORTED_CPUID. */
#include "arch/x86/cpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"

enum { R_EAX, R_EBX, R_ECX, R_EDX };

/* Features a user may add or hide by name (Intel SDM vol. 2A, CPUID). */
static const struct {
	const char *name;
	uint32_t leaf, subleaf;
	int reg;
	uint32_t bit;
} features[] = {
	{ "sse3", 1, 0, R_ECX, 0 },	   { "pclmulqdq", 1, 0, R_ECX, 1 },
	{ "ssse3", 1, 0, R_ECX, 9 },	   { "fma", 1, 0, R_ECX, 12 },
	{ "cx16", 1, 0, R_ECX, 13 },	   { "pcid", 1, 0, R_ECX, 17 },
	{ "sse4.1", 1, 0, R_ECX, 19 },	   { "sse4.2", 1, 0, R_ECX, 20 },
	{ "x2apic", 1, 0, R_ECX, 21 },	   { "movbe", 1, 0, R_ECX, 22 },
	{ "popcnt", 1, 0, R_ECX, 23 },	   { "tsc-deadline", 1, 0, R_ECX, 24 },
	{ "aes", 1, 0, R_ECX, 25 },	   { "xsave", 1, 0, R_ECX, 26 },
	{ "avx", 1, 0, R_ECX, 28 },	   { "f16c", 1, 0, R_ECX, 29 },
	{ "rdrand", 1, 0, R_ECX, 30 },	   { "hypervisor", 1, 0, R_ECX, 31 },
	{ "mtrr", 1, 0, R_EDX, 12 },	   { "pge", 1, 0, R_EDX, 13 },
	{ "sse", 1, 0, R_EDX, 25 },	   { "sse2", 1, 0, R_EDX, 26 },
	{ "fsgsbase", 7, 0, R_EBX, 0 },	   { "bmi1", 7, 0, R_EBX, 3 },
	{ "avx2", 7, 0, R_EBX, 5 },	   { "smep", 7, 0, R_EBX, 7 },
	{ "bmi2", 7, 0, R_EBX, 8 },	   { "erms", 7, 0, R_EBX, 9 },
	{ "invpcid", 7, 0, R_EBX, 10 },	   { "avx512f", 7, 0, R_EBX, 16 },
	{ "rdseed", 7, 0, R_EBX, 18 },	   { "adx", 7, 0, R_EBX, 19 },
	{ "smap", 7, 0, R_EBX, 20 },	   { "sha", 7, 0, R_EBX, 29 },
	{ "umip", 7, 0, R_ECX, 2 },	   { "pku", 7, 0, R_ECX, 3 },
	{ "la57", 7, 0, R_ECX, 16 },	   { "rdpid", 7, 0, R_ECX, 22 },
	{ "syscall", 0x80000001, 0, R_EDX, 11 }, { "nx", 0x80000001, 0, R_EDX, 20 },
	{ "pdpe1gb", 0x80000001, 0, R_EDX, 26 }, { "rdtscp", 0x80000001, 0, R_EDX, 27 },
	{ "lm", 0x80000001, 0, R_EDX, 29 }, { "lahf_lm", 0x80000001, 0, R_ECX, 0 },
	{ "svm", 0x80000001, 0, R_ECX, 2 }, { "vmx", 1, 0, R_ECX, 5 },
};

const char *cpuid_feature_names(void)
{
	return "sse3 pclmulqdq ssse3 fma cx16 pcid sse4.1 sse4.2 x2apic movbe popcnt "
	       "tsc-deadline aes xsave avx f16c rdrand hypervisor mtrr pge sse sse2 fsgsbase "
	       "bmi1 avx2 smep bmi2 erms invpcid avx512f rdseed adx smap sha umip pku la57 "
	       "rdpid syscall nx pdpe1gb rdtscp lm lahf_lm svm vmx";
}

int cpuid_parse_features(const char *spec, struct cpuid_opts *o, struct err *e)
{
	char buf[1024], *save = NULL, *tok;
	size_t i;

	if (strlen(spec) >= sizeof(buf))
		return err_set(e, EINVAL, "--cpu-features: list too long");
	strcpy(buf, spec);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool set;

		if (tok[0] != '+' && tok[0] != '-')
			return err_set(e, EINVAL, "--cpu-features: '%s' must start with + or -", tok);
		set = tok[0] == '+';
		for (i = 0; i < ARRAY_SIZE(features); i++)
			if (!strcmp(tok + 1, features[i].name))
				break;
		if (i == ARRAY_SIZE(features))
			return err_set(e, EINVAL, "--cpu-features: unknown feature '%s' (known: %s)",
				       tok + 1, cpuid_feature_names());
		if (o->nchanges >= CPU_MAX_CHANGES)
			return err_set(e, EINVAL, "--cpu-features: more than %d changes",
				       CPU_MAX_CHANGES);
		o->changes[o->nchanges++] = (struct cpu_feature_change){
			.leaf = features[i].leaf,
			.subleaf = features[i].subleaf,
			.reg = features[i].reg,
			.bit = features[i].bit,
			.set = set,
			.name = features[i].name,
		};
	}
	return 0;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf)
{
	uint32_t i;

	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *en = &c->entries[i];

		if (en->function != leaf)
			continue;
		if ((en->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && en->index != subleaf)
			continue;
		return en;
	}
	return NULL;
}

static uint32_t *cpuid_reg(struct kvm_cpuid_entry2 *en, int reg)
{
	switch (reg) {
	case R_EAX: return &en->eax;
	case R_EBX: return &en->ebx;
	case R_ECX: return &en->ecx;
	default: return &en->edx;
	}
}

/* Bits needed to number n things: ceil(log2(n)). */
static unsigned order_of(unsigned n)
{
	unsigned s = 0;

	while ((1u << s) < n)
		s++;
	return s;
}

int cpuid_policy(const struct kvm_cpuid2 *sup, const struct cpuid_opts *o, unsigned index,
		 struct kvm_cpuid2 **out, struct err *e)
{
	size_t sz = sizeof(struct kvm_cpuid2) + sup->nent * sizeof(struct kvm_cpuid_entry2);
	unsigned ncpus = o->ncpus ? o->ncpus : 1, core_bits = order_of(ncpus);
	struct kvm_cpuid2 *c = malloc(sz);
	uint32_t i;

	if (!c)
		return err_set(e, ENOMEM, "out of memory");
	memcpy(c, sup, sz);

	/* Feature changes first, against what the host supports. */
	for (i = 0; i < o->nchanges; i++) {
		const struct cpu_feature_change *ch = &o->changes[i];
		struct kvm_cpuid_entry2 *en = cpuid_find(c, ch->leaf, ch->subleaf);
		uint32_t *r;

		if (!en) {
			if (!ch->set)
				continue;
			free(c);
			return err_set(e, ENOTSUP, "CPU feature '%s' is not available on this host",
				       ch->name);
		}
		r = cpuid_reg(en, ch->reg);
		if (ch->set && !(*r & (1u << ch->bit))) {
			free(c);
			return err_set(e, ENOTSUP, "CPU feature '%s' is not available on this host",
				       ch->name);
		}
		if (!ch->set)
			*r &= ~(1u << ch->bit);
	}

	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *en = &c->entries[i];

		switch (en->function) {
		case 1:
			/* EBX: APIC ID [31:24], logical processors per package [23:16]. */
			en->ebx = (en->ebx & 0x0000ffffu) | (index << 24) |
				  (MIN(ncpus > 1 ? 1u << core_bits : 1u, 0xffu) << 16);
			if (ncpus > 1)
				en->edx |= 1u << 28; /* HTT: the count in EBX[23:16] is valid */
			else
				en->edx &= ~(1u << 28);
			break;
		case 4:
			/* Deterministic cache parameters: cores per package - 1 in [31:26]. */
			en->eax = (en->eax & 0x03ffffffu) | (((1u << core_bits) - 1) << 26);
			en->eax &= ~(0xfffu << 14);
			if ((en->eax & 0x1f) && ((en->eax >> 5) & 7) == 3) /* L3: whole package */
				en->eax |= ((1u << core_bits) - 1) << 14;
			break;
		case 0xb:
		case 0x1f:
			/* Extended topology: no SMT, ncpus cores in one package (SDM 3A 9.9.1). */
			en->edx = index;
			if (en->index == 0) {
				en->eax = 0;
				en->ebx = 1;
				en->ecx = (1u << 8) | 0;
			} else if (en->index == 1) {
				en->eax = core_bits;
				en->ebx = ncpus;
				en->ecx = (2u << 8) | 1;
			} else {
				en->eax = 0;
				en->ebx = 0;
				en->ecx = en->index;
			}
			break;
		case 0x80000008:
			/* AMD: NC = cores per package - 1; ApicIdCoreIdSize. */
			en->ecx = (en->ecx & ~0xf0ffu) | (core_bits << 12) | (ncpus - 1);
			break;
		case 0x40000000:
			/* KVM signature; EAX is the highest hypervisor leaf (api.rst cpuid.rst). */
			en->ebx = 0x4b4d564b; /* "KVMK" */
			en->ecx = 0x564b4d56; /* "VMKV" */
			en->edx = 0x4d;       /* "M\0\0\0" */
			break;
		default:
			break;
		}
	}
	/* Always present as a guest: the hypervisor bit, unless the user hid it. */
	{
		struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
		bool hide = false;

		for (i = 0; i < o->nchanges; i++)
			if (o->changes[i].leaf == 1 && o->changes[i].bit == 31 &&
			    o->changes[i].reg == R_ECX && !o->changes[i].set)
				hide = true;
		if (l1 && !hide)
			l1->ecx |= 1u << 31;
	}
	*out = c;
	return 0;
}
