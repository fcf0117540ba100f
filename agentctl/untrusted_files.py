"""Reading files that someone else may have written: contracts and agentctl.yaml.

A pull request controls what is in the contracts folder, and CI prints what
``agentctl validate`` says about it. So a file is refused *by name*, never
opened, when it is a symbolic link that leads outside the folder it was found
in (``ln -s /etc/shadow contracts/x.yaml`` must not put /etc/shadow into a CI
log), or when it is not a regular file (a FIFO would block the reader forever,
opening some devices has side effects). What is read is capped in size.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Byte-order marks, longest first: UTF-32's little-endian mark starts with UTF-16's.
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
)


class FileRefused(Exception):
    """Why a file was not read; ``code`` is a stable problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def leaves(path: Path, folder: Path) -> bool:
    """True when ``path``, with every symbolic link followed, is not inside ``folder``."""
    try:
        real = Path(os.path.realpath(path, strict=False))
        base = Path(os.path.realpath(folder, strict=False))
    except (OSError, ValueError):  # a symlink loop, an unreadable component
        return True
    return real != base and base not in real.parents


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_untrusted(
    path: Path, *, limit: int, within: Path | None = None, expected: str = "a regular file"
) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit + 1``, so a caller
    can tell "too large"), or :class:`FileRefused`.

    ``within``: the folder the file must stay inside once symbolic links are
    followed (the directory it was found in, or the one that holds it).
    ``expected``: what the file should be, for the message.
    Nothing is opened until the path is known to be a regular file there.
    """
    folder = path.parent if within is None else within
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise FileRefused("not-found", "no such file or directory: check the path") from None
    except OSError as exc:
        raise FileRefused(
            "unreadable", f"cannot be read ({exc.strerror}): check its permissions"
        ) from None
    real = path
    if not (stat.S_ISREG(info.st_mode) and path.parent == folder):
        # A link, or a file in a subfolder (whose path may pass through a
        # link): follow every link and check where it ends. (A regular file
        # directly in its folder is inside it, wherever the folder resolves
        # to, and lstat already said all stat would: no realpath per file.)
        if leaves(path, folder):
            raise FileRefused(
                "outside-folder",
                f"a symbolic link to a file outside {folder}: not read. Put the file itself "
                "here instead of a link",
            )
        real = Path(os.path.realpath(path))
        try:
            info = os.stat(real)
        except FileNotFoundError:
            raise FileRefused(
                "unreadable", "a broken symbolic link: point it at a file or remove it"
            ) from None
        except OSError as exc:
            raise FileRefused(
                "unreadable", f"cannot be read ({exc.strerror}): check its permissions"
            ) from None
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused("unreadable", f"{_kind(info.st_mode)}, not read: expected {expected}")
    if info.st_size > limit:
        raise FileRefused("file-too-large", f"larger than {limit // 1024} KiB")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    # O_NONBLOCK: if the path was swapped for a FIFO since the check, open must not wait.
    flags |= getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise FileRefused(
            "unreadable", f"cannot be read ({exc.strerror}): check its permissions"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the check
            raise FileRefused("unreadable", f"not a regular file, not read: expected {expected}")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused("unreadable", f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)


def wide_encoding(data: bytes) -> str | None:
    """The name of the UTF-16/UTF-32 encoding ``data`` is in (by its byte-order
    mark, or NUL bytes between ASCII letters), else None."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    sample = data[:64]
    if len(sample) >= 4 and b"\x00" in sample:
        if all(b == 0 for b in sample[1::2]) and all(sample[0::2]):
            return "UTF-16 (little-endian, no byte-order mark)"
        if all(b == 0 for b in sample[0::2]) and all(sample[1::2]):
            return "UTF-16 (big-endian, no byte-order mark)"
    return None
