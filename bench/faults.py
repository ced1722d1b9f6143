"""Faults that real machines have, for tests and fault-injection runs to inject: a frozen process, a full
disk, a connection cut off."""
import contextlib
import errno
import signal
import subprocess


@contextlib.contextmanager
def frozen(process):
    """SIGSTOP ``process`` (a Popen) for the block, as a GC pause, a VM freeze or a stalled disk would;
    SIGCONT it on the way out."""
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def small_disk(path, size="256k"):
    """Mount a tmpfs of ``size`` on ``path`` (made if missing) for the block; yield None, without mounting,
    where this machine does not allow it (root is needed), with the reason in ``small_disk.refused``."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True)
    if mount.returncode:
        small_disk.refused = mount.stderr.strip() or f"mount exited {mount.returncode}"
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path):
    """Write the file ``path`` until its filesystem is full; deleting it frees the space again."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    with open(path, "ab", buffering=0) as f, contextlib.suppress(OSError):  # the last bytes of the last page
        while True:
            f.write(b"x")


@contextlib.contextmanager
def cut_off(pid, port=5672):
    """Drop every packet of the TCP connections process ``pid`` has open to ``port`` on this host (the
    broker), both ways, for the block: a link cut without a close, as a partition does. Connections it
    opens meanwhile are not touched. Needs root and iptables; the rules are removed on the way out."""
    listing = subprocess.run(["ss", "-tnpH", "state", "established", f"( dport = :{port} )"],
                             capture_output=True, text=True, check=True).stdout
    ports = [line.split()[2].rsplit(":", 1)[1] for line in listing.splitlines() if f"pid={pid}," in line]
    rules = [["INPUT", "-i", "lo", "-p", "tcp", direction, local, "-j", "DROP"]
             for local in ports for direction in ("--sport", "--dport")]
    for rule in rules:
        subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        yield ports
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-D", *rule], check=False)
