#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""disk.py: checks a disk image written by guests/virtio.elf.

Usage: disk.py FILE SEED LBA COUNT
Sectors LBA..LBA+COUNT-1 must hold the guest's pattern (the 64-bit little-endian word
at byte offset o is splitmix64(SEED + o), as blk_pattern() in guests/virtio.c) and every
other byte of the file must be zero. Exits 0 when it matches, 1 (with the first
difference) when not.
"""
import struct
import sys

SECTOR = 512
M64 = (1 << 64) - 1


def pattern(seed, off):
    z = (seed + off + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def main():
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path = sys.argv[1]
    seed, lba, count = (int(a, 0) for a in sys.argv[2:])
    with open(path, "rb") as f:
        data = f.read()
    start, end = lba * SECTOR, (lba + count) * SECTOR
    if end > len(data):
        print(f"{path}: {len(data)} bytes, the pattern should end at {end}")
        return 1
    want = b"".join(struct.pack("<Q", pattern(seed, o)) for o in range(start, end, 8))
    got = data[start:end]
    if got != want:
        i = next(i for i in range(len(got)) if got[i] != want[i])
        o = start + i
        print(f"{path}: byte {o} (sector {o // SECTOR}) is 0x{got[i]:02x}, "
              f"the pattern has 0x{want[i]:02x}")
        return 1
    for name, lo, hi in (("before", 0, start), ("after", end, len(data))):
        part = data[lo:hi]
        if part.count(0) != len(part):
            i = next(i for i in range(len(part)) if part[i])
            print(f"{path}: byte {lo + i} ({name} the pattern) is 0x{part[i]:02x}, not 0")
            return 1
    print(f"{path}: sectors {lba}-{lba + count - 1} hold the pattern (seed {seed}), "
          f"the other {len(data) - (end - start)} bytes are zero")
    return 0


if __name__ == "__main__":
    sys.exit(main())
