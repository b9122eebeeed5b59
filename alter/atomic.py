"""Replace a file atomically and durably: temp file in the same folder, fsync, rename, fsync the folder.

The one implementation behind the daemon's state/settings files (fixed mode,
0600 for secrets) and the config writer (keeps the file's mode and owner).
The temp name is unique (mkstemp), so two threads writing the same file never
share a temp file; the last rename wins with a complete file either way.
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional, Tuple, Union


def replace_file(
    path: str,
    data: Union[bytes, str],
    mode: int = 0o600,
    owner: Optional[Tuple[int, int]] = None,
) -> None:
    """Write `data` to `path` (text is UTF-8) so readers see the old file or the new one, never a mix.

    A symlink is written through to its target.  OSError propagates (callers name the file).
    """
    target = os.path.realpath(path)
    folder = os.path.dirname(target) or "."
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder)
    try:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
