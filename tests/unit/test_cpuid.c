// SPDX-License-Identifier: MIT
/* test_cpuid.c: unit tests for --cpu-features parsing and the CPUID policy built from a synthetic host table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/cpu.h"
#include "base/err.h"
#include "base/util.h"

/* Undefined behaviour fails the test: meson 1.0 does not set UBSAN_OPTIONS for us. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX

/* Bits of the synthetic host. */
#define L1_ECX_SSE3 (1u << 0)
#define L1_ECX_X2APIC (1u << 21)
#define L1_ECX_AVX (1u << 28)
#define L1_ECX_HYPERVISOR (1u << 31)
#define L1_EDX_HTT (1u << 28)
#define L7_EBX_AVX2 (1u << 5)

static const struct kvm_cpuid_entry2 host_entries[] = {
	{ .function = 0, .eax = 0xd, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69 },
	/* Leaf 1: stepping info, CLFLUSH size 8 in EBX[15:8], junk in the topology fields. */
	{ .function = 1, .eax = 0x806f8, .ebx = 0xabcd0800,
	  .ecx = L1_ECX_SSE3 | L1_ECX_AVX | (1u << 26) | (1u << 23),
	  .edx = (1u << 25) | (1u << 26) | L1_EDX_HTT },
	/* Leaf 4: L1d (type 1, level 1), L1i, L2, L3 (level 3). */
	{ .function = 4, .index = 0, .flags = SIG, .eax = 0xfc000121 },
	{ .function = 4, .index = 1, .flags = SIG, .eax = 0xfc000122 },
	{ .function = 4, .index = 2, .flags = SIG, .eax = 0xfc000143 },
	{ .function = 4, .index = 3, .flags = SIG, .eax = 0xfc0fc163 },
	{ .function = 7, .index = 0, .flags = SIG, .ebx = L7_EBX_AVX2 | 1u, .ecx = 1u << 2 },
	{ .function = 0xb, .index = 0, .flags = SIG, .eax = 1, .ebx = 2, .ecx = 0x100, .edx = 77 },
	{ .function = 0xb, .index = 1, .flags = SIG, .eax = 7, .ebx = 64, .ecx = 0x201, .edx = 77 },
	{ .function = 0xb, .index = 2, .flags = SIG, .eax = 0, .ebx = 0, .ecx = 2, .edx = 77 },
	{ .function = 0x40000000, .eax = 0x40000001 },
	{ .function = 0x40000001, .eax = 0x12345 },
	{ .function = 0x80000000, .eax = 0x80000008 },
	{ .function = 0x80000001, .ecx = 1u, .edx = (1u << 11) | (1u << 20) | (1u << 29) },
	/* Leaf 0x80000008: address sizes in EAX, ECX with junk NC and bits 16-17 set. */
	{ .function = 0x80000008, .eax = 0x3030, .ecx = 0x3000f | 0x7000 },
};

static struct kvm_cpuid2 *host_table(void)
{
	size_t n = ARRAY_SIZE(host_entries);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

	assert_non_null(c);
	c->nent = (uint32_t)n;
	memcpy(c->entries, host_entries, sizeof(host_entries));
	return c;
}

/* Build the policy of vCPU index for ncpus, with an optional --cpu-features spec. */
static struct kvm_cpuid2 *policy(unsigned ncpus, unsigned index, const char *spec)
{
	struct kvm_cpuid2 *sup = host_table(), *out = NULL;
	struct cpuid_opts o = { .ncpus = ncpus };
	struct err e = { { 0 } };

	if (spec)
		assert_int_equal(cpuid_parse_features(spec, &o, &e), 0);
	assert_int_equal(cpuid_policy(sup, &o, index, &out, &e), 0);
	assert_non_null(out);
	assert_int_equal(out->nent, sup->nent);
	/* The host table is an input only. */
	assert_memory_equal(sup->entries, host_entries, sizeof(host_entries));
	free(sup);
	return out;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub)
{
	struct kvm_cpuid_entry2 *en = cpuid_find(c, leaf, sub);

	assert_non_null(en);
	return en;
}

static unsigned order(unsigned n)
{
	unsigned s = 0;

	while ((1u << s) < n)
		s++;
	return s;
}

/* ---- cpuid_parse_features ---- */

static void test_parse_good(void **state)
{
	struct cpuid_opts o = { 0 };
	struct err e;

	assert_int_equal(cpuid_parse_features("-avx512f,+x2apic,-hypervisor", &o, &e), 0);
	assert_int_equal(o.nchanges, 3);
	assert_int_equal(o.changes[0].leaf, 7);
	assert_int_equal(o.changes[0].subleaf, 0);
	assert_int_equal(o.changes[0].reg, 1); /* ebx */
	assert_int_equal(o.changes[0].bit, 16);
	assert_false(o.changes[0].set);
	assert_string_equal(o.changes[0].name, "avx512f");
	assert_int_equal(o.changes[1].leaf, 1);
	assert_int_equal(o.changes[1].reg, 2); /* ecx */
	assert_int_equal(o.changes[1].bit, 21);
	assert_true(o.changes[1].set);
	assert_int_equal(o.changes[2].bit, 31);
	assert_false(o.changes[2].set);
	assert_int_equal(cpuid_parse_features("+nx", &o, &e), 0);
	assert_int_equal(o.nchanges, 4); /* appended */
	assert_int_equal(o.changes[3].leaf, 0x80000001);
	assert_int_equal(o.changes[3].reg, 3); /* edx */
	assert_int_equal(o.changes[3].bit, 20);
}

static void test_parse_empty_tokens(void **state)
{
	struct cpuid_opts o = { 0 };
	struct err e;

	assert_int_equal(cpuid_parse_features("", &o, &e), 0);
	assert_int_equal(o.nchanges, 0);
	assert_int_equal(cpuid_parse_features(",,-avx,,", &o, &e), 0);
	assert_int_equal(o.nchanges, 1);
	assert_string_equal(o.changes[0].name, "avx");
}

/* Every advertised name is accepted with either sign. */
static void test_parse_all_names(void **state)
{
	char names[1024], *save = NULL, *tok;
	unsigned count = 0;

	strcpy(names, cpuid_feature_names());
	for (tok = strtok_r(names, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		struct cpuid_opts o = { 0 };
		struct err e = { { 0 } };
		char spec[64];

		snprintf(spec, sizeof(spec), "+%s,-%s", tok, tok);
		if (cpuid_parse_features(spec, &o, &e))
			fail_msg("feature '%s' listed but refused: %s", tok, e.msg);
		assert_int_equal(o.nchanges, 2);
		assert_string_equal(o.changes[0].name, tok);
		assert_true(o.changes[0].bit < 32);
		assert_true(o.changes[0].reg >= 0 && o.changes[0].reg <= 3);
		count++;
	}
	assert_true(count >= 40);
}

static void test_parse_bad(void **state)
{
	static const char *const bad[] = {
		"avx", "+nosuch", "+", "-", "+avx,avx2", "+AVX", "+avx ", "++avx", "*avx",
	};
	char big[1100];
	struct err e;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct cpuid_opts o = { 0 };

		e.msg[0] = '\0';
		if (cpuid_parse_features(bad[i], &o, &e) != -EINVAL)
			fail_msg("spec \"%s\" accepted", bad[i]);
		assert_true(strlen(e.msg) > 0);
	}
	{
		struct cpuid_opts o = { 0 };

		assert_int_equal(cpuid_parse_features("+nosuch", &o, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "unknown feature 'nosuch'"));
		assert_int_equal(cpuid_parse_features("avx", &o, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "must start with + or -"));
	}
	/* Too long for the parser's buffer. */
	{
		struct cpuid_opts o = { 0 };

		memset(big, 'a', sizeof(big) - 1);
		big[0] = '+';
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(cpuid_parse_features(big, &o, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "too long"));
	}
	/* More changes than fit. */
	{
		struct cpuid_opts o = { 0 };
		size_t n = 0;

		big[0] = '\0';
		for (int i = 0; i < CPU_MAX_CHANGES + 1; i++)
			n += (size_t)snprintf(big + n, sizeof(big) - n, "%s-sse", i ? "," : "");
		assert_int_equal(cpuid_parse_features(big, &o, &e), -EINVAL);
		assert_int_equal(o.nchanges, CPU_MAX_CHANGES);
		assert_non_null(strstr(e.msg, "more than"));
	}
}

/* ---- cpuid_find ---- */

static void test_find(void **state)
{
	struct kvm_cpuid2 *c = host_table();

	/* Subleaf matters only for entries flagged with a significant index. */
	assert_ptr_equal(cpuid_find(c, 1, 5), &c->entries[1]);
	assert_ptr_equal(cpuid_find(c, 4, 2), &c->entries[4]);
	assert_null(cpuid_find(c, 4, 4));
	assert_ptr_equal(cpuid_find(c, 0xb, 1), &c->entries[8]);
	assert_null(cpuid_find(c, 0x12, 0));
	free(c);
}

/* ---- cpuid_policy ---- */

static void test_leaf1_apic_id(void **state)
{
	static const unsigned counts[] = { 1, 2, 3, 4, 8, 64, 128 };

	for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
		unsigned n = counts[k];

		for (unsigned idx = 0; idx < n; idx += (n > 8 ? 7 : 1)) {
			struct kvm_cpuid2 *c = policy(n, idx, NULL);
			struct kvm_cpuid_entry2 *l1 = find(c, 1, 0);
			unsigned logical = (l1->ebx >> 16) & 0xff;

			assert_int_equal(l1->ebx >> 24, idx);
			assert_int_equal(l1->ebx & 0xffff, 0x0800); /* CLFLUSH and brand kept */
			if (n == 1) {
				assert_int_equal(logical, 1);
				assert_false(l1->edx & L1_EDX_HTT);
			} else {
				assert_int_equal(logical, 1u << order(n));
				assert_true(l1->edx & L1_EDX_HTT);
			}
			assert_int_equal(l1->eax, 0x806f8);
			free(c);
		}
	}
}

/*
 * With more than 128 vCPUs the count of logical processors no longer fits
 * EBX[23:16]; it must not spill into the APIC ID in EBX[31:24].
 */
static void test_leaf1_many_vcpus(void **state)
{
	static const unsigned counts[] = { 129, 200, 254 };

	for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
		unsigned n = counts[k];
		static const unsigned idxs[] = { 0, 1, 2, 100 };

		for (size_t j = 0; j < ARRAY_SIZE(idxs); j++) {
			struct kvm_cpuid2 *c = policy(n, idxs[j], NULL);
			struct kvm_cpuid_entry2 *l1 = find(c, 1, 0);

			if (l1->ebx >> 24 != idxs[j])
				fail_msg("%u vCPUs, vCPU %u: leaf 1 EBX 0x%08x has APIC ID %u", n,
					 idxs[j], l1->ebx, l1->ebx >> 24);
			assert_true(((l1->ebx >> 16) & 0xff) >= 128);
			assert_true(l1->edx & L1_EDX_HTT);
			free(c);
		}
	}
}

static void check_topology(unsigned n, unsigned idx)
{
	struct kvm_cpuid2 *c = policy(n, idx, NULL);
	struct kvm_cpuid_entry2 *s0 = find(c, 0xb, 0), *s1 = find(c, 0xb, 1), *s2 = find(c, 0xb, 2);

	/* Level 0, SMT: one thread per core, shift 0. */
	assert_int_equal(s0->eax, 0);
	assert_int_equal(s0->ebx, 1);
	assert_int_equal(s0->ecx, 0x100);
	assert_int_equal(s0->edx, idx);
	/* Level 1, core: shift covers all vCPUs, ncpus logical processors. */
	assert_int_equal(s1->eax, order(n));
	assert_int_equal(s1->ebx, n);
	assert_int_equal(s1->ecx, 0x201);
	assert_int_equal(s1->edx, idx);
	/* Every vCPU is in package 0: x2APIC ID >> shift. */
	assert_int_equal(s1->edx >> s1->eax, 0);
	/* Level 2: invalid, ends the enumeration. */
	assert_int_equal(s2->eax, 0);
	assert_int_equal(s2->ebx, 0);
	assert_int_equal((s2->ecx >> 8) & 0xff, 0);
	assert_int_equal(s2->ecx & 0xff, 2);
	assert_int_equal(s2->edx, idx);
	free(c);
}

static void test_leaf_b_topology(void **state)
{
	static const unsigned counts[] = { 1, 2, 3, 4, 254 };

	for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
		check_topology(counts[k], 0);
		check_topology(counts[k], counts[k] - 1);
	}
	assert_int_equal(order(254), 8);
}

static void test_leaf4_and_amd_cores(void **state)
{
	static const unsigned counts[] = { 1, 2, 3, 4, 16 };

	for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
		unsigned n = counts[k], cb = order(n);
		struct kvm_cpuid2 *c = policy(n, 0, NULL);
		struct kvm_cpuid_entry2 *x8 = find(c, 0x80000008, 0);

		for (unsigned s = 0; s < 4; s++) {
			struct kvm_cpuid_entry2 *l4 = find(c, 4, s);
			unsigned sharing = (l4->eax >> 14) & 0xfff;

			assert_int_equal(l4->eax >> 26, (1u << cb) - 1);
			assert_int_equal(l4->eax & 0x3fff, host_entries[2 + s].eax & 0x3fff);
			/* Only the L3 (level 3) is shared by the package. */
			assert_int_equal(sharing, s == 3 ? (1u << cb) - 1 : 0);
		}
		assert_int_equal(x8->ecx & 0xff, n - 1);
		assert_int_equal((x8->ecx >> 12) & 0xf, cb);
		assert_int_equal(x8->ecx & 0x30000, 0x30000); /* other bits kept */
		assert_int_equal(x8->eax, 0x3030);
		free(c);
	}
}

static void test_hypervisor_leaves(void **state)
{
	struct kvm_cpuid2 *c = policy(2, 1, NULL);
	struct kvm_cpuid_entry2 *h = find(c, 0x40000000, 0), *l1 = find(c, 1, 0);
	char sig[13];

	memcpy(sig, &h->ebx, 4);
	memcpy(sig + 4, &h->ecx, 4);
	memcpy(sig + 8, &h->edx, 4);
	sig[12] = '\0';
	assert_string_equal(sig, "KVMKVMKVM");
	assert_memory_equal(sig, "KVMKVMKVM\0\0\0", 12);
	assert_int_equal(h->eax, 0x40000001); /* highest hypervisor leaf kept */
	assert_int_equal(find(c, 0x40000001, 0)->eax, 0x12345);
	/* The host table lacks the hypervisor bit; a guest always sees it. */
	assert_false(host_entries[1].ecx & L1_ECX_HYPERVISOR);
	assert_true(l1->ecx & L1_ECX_HYPERVISOR);
	free(c);
}

static void test_hide_hypervisor(void **state)
{
	struct kvm_cpuid2 *c = policy(1, 0, "-hypervisor");

	assert_false(find(c, 1, 0)->ecx & L1_ECX_HYPERVISOR);
	free(c);
}

static void test_minus_features(void **state)
{
	struct kvm_cpuid2 *c = policy(1, 0, "-avx,-avx2,-nx");
	struct kvm_cpuid_entry2 *l1 = find(c, 1, 0), *l7 = find(c, 7, 0);
	struct kvm_cpuid_entry2 *e1 = find(c, 0x80000001, 0);

	assert_int_equal(l1->ecx & ~L1_ECX_HYPERVISOR, host_entries[1].ecx & ~L1_ECX_AVX);
	assert_int_equal(l7->ebx, host_entries[6].ebx & ~L7_EBX_AVX2);
	assert_int_equal(e1->edx, host_entries[13].edx & ~(1u << 20));
	free(c);

	/* Hiding what the host lacks is not an error. */
	c = policy(1, 0, "-x2apic,-la57");
	assert_false(find(c, 1, 0)->ecx & L1_ECX_X2APIC);
	free(c);
}

static void test_plus_features(void **state)
{
	struct kvm_cpuid2 *sup = host_table(), *out = (struct kvm_cpuid2 *)0x1;
	struct cpuid_opts o = { .ncpus = 1 };
	struct err e = { { 0 } };

	/* Asking for what the host has keeps it. */
	{
		struct kvm_cpuid2 *c = policy(1, 0, "+avx,+sse3,+avx2,+lm");

		assert_true(find(c, 1, 0)->ecx & L1_ECX_AVX);
		assert_true(find(c, 7, 0)->ebx & L7_EBX_AVX2);
		free(c);
	}
	/* What the host lacks is refused, and nothing is returned. */
	assert_int_equal(cpuid_parse_features("-avx,+x2apic", &o, &e), 0);
	assert_int_equal(cpuid_policy(sup, &o, 0, &out, &e), -ENOTSUP);
	assert_ptr_equal(out, (struct kvm_cpuid2 *)0x1);
	assert_non_null(strstr(e.msg, "'x2apic'"));

	/* A feature whose leaf the host does not report at all. */
	sup->nent = 13; /* drop 0x80000001 and 0x80000008 */
	o.nchanges = 0;
	assert_int_equal(cpuid_parse_features("+nx", &o, &e), 0);
	assert_int_equal(cpuid_policy(sup, &o, 0, &out, &e), -ENOTSUP);
	assert_non_null(strstr(e.msg, "'nx'"));
	o.nchanges = 0;
	assert_int_equal(cpuid_parse_features("-nx", &o, &e), 0);
	assert_int_equal(cpuid_policy(sup, &o, 0, &out, &e), 0);
	assert_int_equal(out->nent, 13);
	free(out);
	free(sup);
}

/* ncpus 0 means one vCPU. */
static void test_zero_ncpus(void **state)
{
	struct kvm_cpuid2 *c = policy(0, 0, NULL);

	assert_int_equal((find(c, 1, 0)->ebx >> 16) & 0xff, 1);
	assert_int_equal(find(c, 0xb, 1)->ebx, 1);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_empty_tokens),
		cmocka_unit_test(test_parse_all_names),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_leaf1_apic_id),
		cmocka_unit_test(test_leaf1_many_vcpus),
		cmocka_unit_test(test_leaf_b_topology),
		cmocka_unit_test(test_leaf4_and_amd_cores),
		cmocka_unit_test(test_hypervisor_leaves),
		cmocka_unit_test(test_hide_hypervisor),
		cmocka_unit_test(test_minus_features),
		cmocka_unit_test(test_plus_features),
		cmocka_unit_test(test_zero_ncpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
