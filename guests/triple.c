/* SPDX-License-Identifier: MIT */
/* triple.c: ring 0 loads an IDT with limit 0 and executes ud2: a triple fault. */
#include "lib/guest.h"

void guest_main(void)
{
	printf("triple guest: forcing a triple fault\n");
	triple_fault();
	fail("still running after the triple fault");
}
