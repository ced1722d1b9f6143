"""Faults that real machines have, for tests and fault-injection runs to inject: a frozen process, a full disk."""
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
    with open(path, "ab", buffering=0) as f:  # the last bytes of the last page
        with contextlib.suppress(OSError):
            while True:
                f.write(b"x")
