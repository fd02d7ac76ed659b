# SPDX-License-Identifier: MIT
"""benchlib.py: shared pieces of bench/snapshot and bench/migrate: paths, VMM processes whose
console lines are timestamped as they arrive, a small QMP client, the report lines."""
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", "/tmp/build-bench")
KVMM = os.environ.get("KVMM", os.path.join(BUILD, "kvmm"))
GUESTS = os.environ.get("GUESTS", os.path.join(BUILD, "guests"))
GUEST = os.path.join(GUESTS, "counter.elf")
QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
# The QEMU peer is the classic PC (i440FX/PIIX, the machine the brief names). Its default
# firmware, SeaBIOS, runs instruction-emulated on this machine's nested KVM and takes
# about a minute to reach the guest (TESTING.md); qboot (Debian's qemu-system-data,
# microvm's firmware) boots the same -kernel in under a second. Firmware does not run on
# restore or migration, so it only shortens the set-up. QEMU_BIOS= (empty) for SeaBIOS.
QEMU_M = os.environ.get("QEMU_M", "pc")
QEMU_BIOS = os.environ.get("QEMU_BIOS", "/usr/share/qemu/qboot.rom")
OUT = os.environ.get("BENCH_OUT", "/tmp/kvmm-bench")


def die(msg):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(1)


def setup():
    if not os.access(KVMM, os.X_OK):
        die("no kvmm at %s (meson setup %s -Dbuildtype=release && ninja -C %s)" % (KVMM, BUILD, BUILD))
    if not os.path.exists(GUEST):
        die("no counter guest at %s" % GUEST)
    if not (os.access("/dev/kvm", os.R_OK | os.W_OK)):
        die("/dev/kvm is not usable")
    if subprocess.call(["sh", "-c", "command -v " + QEMU], stdout=subprocess.DEVNULL) != 0:
        die(QEMU + " not found")
    os.makedirs(OUT, exist_ok=True)
    os.environ["KVMM_RUNTIME_DIR"] = os.path.join(OUT, "run-%d" % os.getpid())
    os.makedirs(os.environ["KVMM_RUNTIME_DIR"], exist_ok=True)


def header(name, argv):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "none"
    kv = subprocess.run([KVMM, "version"], capture_output=True, text=True).stdout.strip().split("\n")[0]
    qv = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print("# %s: %s, %s, %d CPUs, %s, %s" % (name, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                            platform.node(), os.cpu_count(), cpu, platform.release()))
    print("# %s (%s); repository HEAD %s; %s" % (kv, KVMM, rev, qv))
    print("# load average at start: %s; command: %s" % (" ".join(open("/proc/loadavg").read().split()[:3]),
                                                         " ".join(argv)))
    sys.stdout.flush()


class Vmm:
    """A VMM process whose stdout lines are timestamped (time.monotonic) as they arrive."""

    def __init__(self, argv, name):
        self.argv = argv
        self.name = name
        self.lines = []  # (t, text)
        self.cond = threading.Condition()
        self.t_start = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.err = []
        self.err_t = []  # (t, line)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for raw in self.p.stdout:
            t = time.monotonic()
            with self.cond:
                self.lines.append((t, raw.decode(errors="replace").rstrip("\r\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def _read_err(self):
        for raw in self.p.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.err_t.append((time.monotonic(), line))
            self.err.append(line)

    def counts(self):
        with self.cond:
            return [(t, int(s[6:])) for t, s in self.lines if s.startswith("count=") and s[6:].isdigit()]

    def wait_counts(self, n, timeout=60, after=0.0):
        """Until n count lines arrived after time `after`; returns them."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [(t, int(s[6:])) for t, s in self.lines
                       if t > after and s.startswith("count=") and s[6:].isdigit()]
                bad = [s for _, s in self.lines if "FAIL" in s]
                if bad:
                    raise RuntimeError("%s: guest says %s" % (self.name, bad[0]))
                if len(got) >= n:
                    return got
                if self.p.poll() is not None:
                    raise RuntimeError("%s exited %s: %s" % (self.name, self.p.returncode,
                                                             " | ".join(self.err[-3:])))
                left = end - time.monotonic()
                if left <= 0:
                    raise RuntimeError("%s: %d count lines did not come in %d s" % (self.name, n, timeout))
                self.cond.wait(min(left, 0.5))

    def wait_exit(self, timeout=60):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError("%s did not exit in %d s" % (self.name, timeout))

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


class Qmp:
    def __init__(self, path, timeout=30):
        end = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > end:
                    raise RuntimeError("no QMP socket at " + path)
                time.sleep(0.02)
        self.f = self.s.makefile("rwb")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write((json.dumps(req) + "\n").encode())
        self.f.flush()
        r = self._read()
        if "error" in r:
            raise RuntimeError("QMP %s: %s" % (name, r["error"].get("desc")))
        return r.get("return")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def qemu_argv(mem_mb, cmdline, qmp_path, extra=()):
    argv = [QEMU, "-M", QEMU_M, "-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none",
            "-m", str(mem_mb), "-smp", "1", "-serial", "stdio", "-kernel", GUEST, "-append", cmdline,
            "-qmp", "unix:%s,server=on,wait=off" % qmp_path]
    if QEMU_BIOS:
        argv += ["-bios", QEMU_BIOS]
    return argv + list(extra)


def kvmm(*args, timeout=120):
    """A kvmm control verb; returns its stdout; raises on failure."""
    r = subprocess.run([KVMM] + list(args), capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError("kvmm %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout


def ctl(name, req, timeout=120):
    """One request on a VM's control socket (what `kvmm VERB NAME` sends, without the
    exec of the CLI, as QMP is used on an open connection); returns the result."""
    path = os.path.join(os.environ["KVMM_RUNTIME_DIR"], name + ".sock")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall((json.dumps(req) + "\n").encode())
    buf = b""
    while b"\n" not in buf:
        c = s.recv(65536)
        if not c:
            break
        buf += c
    s.close()
    r = json.loads(buf.split(b"\n")[0] or b"{}")
    if not r.get("ok"):
        raise RuntimeError("kvmm %s %s: %s" % (req.get("cmd"), name, r.get("error")))
    return r.get("result")


def med(v):
    return statistics.median(v) if v else float("nan")


def report(name, unit, k, q, details=""):
    """NAME: kvmm X UNIT, qemu Y UNIT, ratio R (details) -- medians; ratio kvmm/qemu."""
    mk, mq = med(k), med(q)
    ratio = mk / mq if mq else float("nan")
    print("%s: kvmm %.1f %s, qemu %.1f %s, ratio %.2f (%s)" % (name, mk, unit, mq, unit, ratio, details))
    sys.stdout.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
