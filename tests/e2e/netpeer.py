#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""netpeer.py: the host side of the virtio-net end-to-end test (net.sh) with guests/net.elf.

  netpeer.py echo ADDR PORT LOG   UDP echo server on ADDR:PORT; appends 'SIZE' per datagram
                                  echoed to LOG (flushed at once); runs until killed.
  netpeer.py send GUEST PORT N [TAP GUEST_MAC]
                                  host-initiated traffic to the guest's server: waits until a
                                  probe is echoed, with TAP sends malformed frames into the
                                  tap (junk_frames()), pings the guest (raw ICMP, payload
                                  checked), sends N datagrams of random sizes (1-1472) and
                                  payloads one at a time, then a burst of 32, and checks
                                  that every echo is identical; ends with KVMM:STOP.
                                  Prints 'peer: OK ...' and exits 0, or 'peer: FAIL: ...'.
  netpeer.py tapexec NAME ARGV... opens tap NAME (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR) and execs
                                  ARGV with the fd inherited; '{fd}' in ARGV becomes its
                                  number (for kvmm run --net fd=N).
  netpeer.py tapexec-novnet NAME ARGV...  the same without IFF_VNET_HDR (a wrong tap fd).
  netpeer.py hold NAME            opens tap NAME and sleeps with it open (a busy tap).
"""
import fcntl
import os
import random
import select
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


def fail(msg):
    print('peer: FAIL: ' + msg, flush=True)
    sys.exit(1)


def open_tap(name, flags=IFF_TAP | IFF_NO_PI | IFF_VNET_HDR):
    fd = os.open('/dev/net/tun', os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), flags))
    return fd


def echo(addr, port, log):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    with open(log, 'a') as f:
        f.write('ready\n')
        f.flush()
        while True:
            data, src = s.recvfrom(65536)
            s.sendto(data, src)
            f.write('%d\n' % len(data))
            f.flush()


def checksum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ping(guest, seq, size):
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    payload = bytes((i * 11 + seq) & 0xff for i in range(size))
    ident = os.getpid() & 0xffff
    hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq)
    pkt = struct.pack('!BBHHH', 8, 0, checksum(hdr + payload), ident, seq) + payload
    for _ in range(3):
        r.sendto(pkt, (guest, 0))
        end = time.time() + 1
        while time.time() < end:
            if not select.select([r], [], [], max(0, end - time.time()))[0]:
                break
            data, src = r.recvfrom(65536)
            ihl = (data[0] & 0xf) * 4
            icmp = data[ihl:]
            if src[0] != guest or len(icmp) < 8:
                continue
            t, _, _, i, sq = struct.unpack('!BBHHH', icmp[:8])
            if t != 0 or i != ident or sq != seq:
                continue
            if checksum(icmp) != 0:
                fail('ping seq %d: bad ICMP checksum in the reply' % seq)
            if icmp[8:] != payload:
                fail('ping seq %d: the reply payload differs (%d bytes, sent %d)' % (seq, len(icmp) - 8, size))
            return
    fail('no reply to ping seq %d (%d bytes) from %s' % (seq, size, guest))


def ip4(src, dst, proto, payload, ihl=5, version=4, total=None, csum=None, frag=0x4000):
    hdr = struct.pack('!BBHHHBBH4s4s', version << 4 | ihl, 0, 20 + len(payload) if total is None else total,
                      1, frag, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    c = checksum(hdr) if csum is None else csum
    return hdr[:10] + struct.pack('!H', c) + hdr[12:] + payload


def junk_frames(host, guest, port):
    """Malformed frames for the guest (each must be dropped and counted), then two that are
    well-formed but not for it (ignored): (what, ethertype, payload, counted as malformed)."""
    udp = struct.pack('!HHHH', 9999, port, 8 + 4, 0) + b'junk'
    icmp = struct.pack('!BBHHH', 8, 0, 0x1234, 1, 1) + b'bad checksum'
    arp = struct.pack('!HHBBH6s4s6s4s', 1, 0x0800, 6, 4, 1, b'\x02' * 6, socket.inet_aton(host),
                      b'\0' * 6, socket.inet_aton(guest))
    return [
        ('an Ethernet header alone', 0x0800, b'', True),
        ('IP version 6 in an IPv4 frame', 0x0800, ip4(host, guest, 17, udp, version=6), True),
        ('IP header length 16 bytes', 0x0800, ip4(host, guest, 17, udp, ihl=4), True),
        ('IP total length beyond the frame', 0x0800, ip4(host, guest, 17, udp, total=1400), True),
        ('a bad IP header checksum', 0x0800, ip4(host, guest, 17, udp, csum=0x1234), True),
        ('UDP length 4', 0x0800, ip4(host, guest, 17, udp[:4] + b'\0\x04' + udp[6:]), True),
        ('UDP length beyond the packet', 0x0800, ip4(host, guest, 17, udp[:4] + b'\x05\xdc' + udp[6:]), True),
        ('a bad UDP checksum', 0x0800, ip4(host, guest, 17, udp[:6] + b'\x12\x34' + udp[8:]), True),
        ('a bad ICMP checksum', 0x0800, ip4(host, guest, 1, icmp), True),
        ('a truncated ARP packet', 0x0806, arp[:20], True),
        ('ARP with 8-byte hardware addresses', 0x0806, arp[:4] + b'\x08' + arp[5:], True),
        ('an unknown ethertype', 0x88b5, b'\0' * 46, False),
        ('an IPv4 fragment', 0x0800, ip4(host, guest, 17, udp, frag=0x2001), False),
    ]


def send_junk(tap, guest_mac, host, guest, port):
    r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    r.bind((tap, 0))
    dst = bytes.fromhex(guest_mac.replace(':', ''))
    src = r.getsockname()[4]
    frames = junk_frames(host, guest, port)
    for _, etype, payload, _ in frames:
        r.send(dst + src + struct.pack('!H', etype) + payload)
    return sum(1 for f in frames if f[3])


def send(guest, port, n, tap=None, guest_mac=None):
    port, n = int(port), int(n)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.connect((guest, port))
    s.settimeout(0.2)
    # The guest's server may still be busy with its own tests: probe until echoed.
    end = time.time() + 30
    probes = 0
    while True:
        s.send(b'probe')
        probes += 1
        try:
            got = s.recv(65536)
            if got != b'probe':
                fail('the echo of the probe differs: %r' % got)
            break
        except socket.timeout:
            pass
        except ConnectionRefusedError:
            pass
        if time.time() > end:
            fail('no echo from %s:%d in 30 s' % (guest, port))
    # A slow guest (QEMU TCG) may still echo earlier probes: wait for those first.
    probes_echoed = 1
    s.settimeout(0.5)
    try:
        while probes_echoed < probes:
            got = s.recv(65536)
            if got != b'probe':
                fail('the echo of a probe differs: %r' % got)
            probes_echoed += 1
    except socket.timeout:
        pass
    junk = 0
    if tap:
        # Junk first: everything after it shows the guest survived it.
        junk = send_junk(tap, guest_mac, s.getsockname()[0], guest, port)
    for seq, size in ((1, 56), (2, 1400)):
        ping(guest, seq, size)
    rnd = random.Random(os.getpid())
    s.settimeout(5)
    sizes = [1, 1472, 1400, 64] + [rnd.randint(1, 1472) for _ in range(max(0, n - 4))]
    echoed = 0
    for i, size in enumerate(sizes[:n]):
        data = bytes([i & 0xff]) + rnd.randbytes(size - 1)
        s.send(data)
        try:
            got = s.recv(65536)
        except socket.timeout:
            fail('datagram %d (%d bytes): no echo in 5 s' % (i, size))
        if got != data:
            fail('datagram %d (%d bytes): the echo (%d bytes) differs' % (i, size, len(got)))
        echoed += 1
    burst = [bytes([0xb0 + i]) + rnd.randbytes(rnd.randint(0, 1400)) for i in range(32)]
    for data in burst:
        s.send(data)
    got = []
    try:
        while len(got) < len(burst):
            got.append(s.recv(65536))
    except socket.timeout:
        fail('burst: %d of %d echoes came back' % (len(got), len(burst)))
    if sorted(got) != sorted(burst):
        fail('burst: the echoes differ from the %d datagrams sent' % len(burst))
    echoed += len(burst)
    s.send(b'KVMM:STOP')
    try:
        got = s.recv(65536)
    except socket.timeout:
        fail('no reply to KVMM:STOP')
    # Probes lost on the way (none expected on a tap) were not echoed.
    if not got.startswith(b'KVMM:STOPPED ') or not got[13:].isdigit():
        fail('KVMM:STOP: reply %r' % got)
    total = int(got[13:])
    if not echoed + probes_echoed <= total <= echoed + probes:
        fail('the guest says it echoed %d datagrams; %d were sent and %d echoed here'
             % (total, echoed + probes, echoed + probes_echoed))
    print('peer: OK, %d datagrams echoed by the guest, 2 pings answered, %d malformed frames sent'
          % (total, junk), flush=True)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == 'echo' and len(args) == 3:
        echo(*args)
    elif cmd == 'send' and len(args) in (3, 5):
        send(*args)
    elif cmd in ('tapexec', 'tapexec-novnet') and len(args) >= 2:
        fd = open_tap(args[0], IFF_TAP | IFF_NO_PI if cmd == 'tapexec-novnet' else
                      IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        os.set_inheritable(fd, True)
        argv = [a.replace('{fd}', str(fd)) for a in args[1:]]
        os.execvp(argv[0], argv)
    elif cmd == 'hold' and len(args) == 1:
        open_tap(args[0])
        print('holding', flush=True)
        time.sleep(3600)
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
