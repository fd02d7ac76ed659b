/* SPDX-License-Identifier: MIT */
/* reset.c: prints a banner, then asks for a reset through the i8042 (0xfe to port 0x64). */
#include "lib/guest.h"

void guest_main(void)
{
	printf("reset guest booted\n");
	i8042_reset();
	delay_us(2000000);
	fail("still running 2 s after the i8042 reset request");
}
