"""Where mlflow-monitor keeps local state (spool, dead letters, rejected points, audit copies).

Local state can quote a tracking URI or a failed request, so it is private: the folders
this module creates are mode 0700 and :func:`open_private` creates files mode 0600 (and
tightens an existing file that is wider). Whatever is written there still goes through
:mod:`mlflow_monitor.redaction` first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Union

__all__ = ["ENV_HOME", "dead_letter_dir", "monitor_home", "open_private", "private_dir", "spool_dir",
           "write_private_text"]

ENV_HOME = "MLFLOW_MONITOR_HOME"
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Union[str, Path]) -> Path:
    """``path`` as a folder, created mode 0700 when missing (a folder we made earlier is tightened)."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        try:
            os.chmod(path, DIR_MODE)  # mkdir's mode is masked by the umask; this is not
        except OSError:
            pass
    return path


def monitor_home() -> Path:
    """``$MLFLOW_MONITOR_HOME``, else ``~/.mlflow_monitor``; created on demand (mode 0700)."""
    return private_dir(os.environ.get(ENV_HOME) or Path.home() / ".mlflow_monitor")


def spool_dir() -> Path:
    return private_dir(monitor_home() / "spool")


def dead_letter_dir() -> Path:
    return private_dir(monitor_home() / "dead_letter")


def open_private(path: Union[str, Path], mode: str = "a", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)``, the file created mode 0600 (an existing one is tightened to 0600).

    ``mode`` is one of ``"a"``, ``"w"``, ``"a+b"``, ``"ab"``, ``"wb"`` (text or binary).
    """
    flags = os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    flags |= os.O_RDWR if "+" in mode else os.O_WRONLY
    fd = os.open(path, flags, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def write_private_text(path: Union[str, Path], text: str) -> None:
    """Replace ``path``'s content with ``text`` (file mode 0600)."""
    with open_private(path, "w", encoding="utf-8") as fh:
        fh.write(text)
