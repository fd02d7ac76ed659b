/* SPDX-License-Identifier: MIT */
/* ready.c: start-up benchmark guest. entry.S (built with GUEST_EARLY_READY) writes one
 * byte to port 0x511 as its first action; then it reports SUCCESS and powers off. */
#include "lib/guest.h"

void guest_main(void)
{
}
