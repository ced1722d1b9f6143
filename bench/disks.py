"""Small disks that can be filled: a tmpfs mounted on a directory (needs root), and a filler file."""
import errno
import subprocess
from pathlib import Path

FILLER = ".filler"


def fill(path):
    """Write a file until the filesystem is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with open(path, "ab", buffering=0) as f:  # the last bytes of the last page
        try:
            while True:
                f.write(b"x")
        except OSError:
            pass


class SmallDisk:
    """A tmpfs of ``size`` (e.g. "32m") on ``directory``; ``fill()`` makes it full, ``free()`` undoes that."""

    def __init__(self, directory, size):
        self.directory, self.size = Path(directory), size

    def mount(self):
        """Mount the tmpfs; raise OSError when this machine does not allow it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.directory)],
                              capture_output=True, text=True)
        if done.returncode:
            raise OSError(f"cannot mount a tmpfs on {self.directory}: {done.stderr.strip() or done.returncode}")

    def fill(self):
        fill(self.directory / FILLER)

    def free(self):
        (self.directory / FILLER).unlink(missing_ok=True)

    def unmount(self):
        """Unmount it lazily (a process may still hold a file on it)."""
        subprocess.run(["umount", "-l", str(self.directory)], check=True, capture_output=True)
