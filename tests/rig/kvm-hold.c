// SPDX-License-Identifier: MIT
/*
 * kvm-hold: keeps one empty KVM VM open until killed, in the emulated host.
 *
 * Creating the first VM and destroying the last one flip static keys in the host
 * kernel (KVM's preempt notifiers, patched into __schedule), which the kernel
 * does by live-patching its own code across CPUs (text_poke_bp, int3). QEMU's
 * multi-threaded TCG has been seen to keep running a stale translation of the
 * patched site then: both emulated CPUs looped in the int3 handler at
 * __schedule+0x2ac, and the host hung. With a VM held from boot to the end the
 * keys never flip while scenarios start and stop VMs. Test rig only: kvmm itself
 * does nothing of the sort.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int vm;

	if (kvm < 0) {
		perror("kvm-hold: /dev/kvm");
		return 1;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		perror("kvm-hold: KVM_CREATE_VM");
		return 1;
	}
	printf("kvm-hold: holding a VM\n");
	fflush(stdout);
	for (;;)
		pause();
}
