"""Writing an export all at once: a file through model_io's atomic write, a folder by
building it beside the target and renaming it into place, so a crash or a refused layer
never leaves half an export and an existing export is replaced only by a complete one."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from ..model_io import write_bytes_atomic, write_text_atomic

__all__ = ["write_bytes_atomic", "write_text_atomic", "write_folder_atomic"]


def write_folder_atomic(path: str | os.PathLike, files: dict[str, bytes | str]) -> None:
    """Make folder `path` hold exactly `files` ({relative name: content}).

    An existing folder is replaced only after the new one is complete (it is renamed aside,
    the new one renamed in, the old one removed). A file in the way is refused: OSError
    with a one-line message naming it.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"cannot export to {target}: a file of that name is in the way; choose a folder name")
    parent = target.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot export to {target}: the folder {parent} does not exist")
    if target.is_dir():
        # Replacing removes the old folder: only a previous export (nothing in it but what this
        # write puts back, and Python's bytecode cache) may go, never a folder of the user's.
        ours = {Path(name).parts[0] for name in files} | {"__pycache__"}
        foreign = sorted(entry.name for entry in target.iterdir() if entry.name not in ours)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise FileExistsError(f"cannot export to {target}: the folder already holds {shown}, which replacing "
                                  "it would delete; choose a new folder name")
    staging = parent / f".{target.name[:180]}.{secrets.token_hex(4)}.tmp"
    old = None
    try:
        staging.mkdir()
        for name, content in files.items():
            out = staging / name
            out.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode("utf-8") if isinstance(content, str) else content
            with open(out, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        if target.exists():
            old = parent / f".{target.name[:180]}.{secrets.token_hex(4)}.old"
            os.replace(target, old)
        os.replace(staging, target)
        staging = None
    except OSError as exc:
        if old is not None and not target.exists():
            os.replace(old, target)  # put the previous export back
            old = None
        raise type(exc)(f"cannot export to {target}: {exc.strerror or exc}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
