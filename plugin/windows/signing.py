"""Evidence signatures: an HMAC-SHA256 over a production artifact, its run and its path.

Whoever may write to a monitoring run's experiment (EDIT) may write artifacts into the
monitoring run itself. So, when the gate takes production traffic as its evidence, it
cannot tell the windows the monitor wrote from rows an editor put there -- unless the
monitor signs what it writes. The serving process (``mlflow-monitor serve``,
:func:`mlflow_monitor.log_predictions`), the labelling job (:func:`mlflow_monitor.log_labels`)
and the gate (the ``monitor:`` store in ``mlflow server``) share a secret, and nobody
else has it:

- ``MLFLOW_MONITOR_EVIDENCE_KEY``: the secret itself (at least 32 bytes), or
- ``MLFLOW_MONITOR_EVIDENCE_KEY_FILE``: a file holding it, readable by its owner only
  (mode 0600 or stricter; a looser one is refused, as ssh refuses a loose key).

Each signed artifact ``<path>`` gets a sidecar ``<path>.sig``: a small JSON with the
key's id (a fingerprint, not the key), the SHA-256 of the artifact's bytes and the MAC of
``format, run id, artifact path, SHA-256``. A signature therefore holds only for those
bytes, in that run, at that path: an editor can neither change a signed file, nor write
a new one, nor copy a signed file of another run or window into place. What an editor
can still do is delete artifacts (hide traffic, never invent it): see
``docs/production.md``. The key never appears in a sidecar, a log line or an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
from typing import Mapping, Optional

__all__ = ["ENV_KEY", "ENV_KEY_FILE", "MIN_KEY_BYTES", "SIGNATURE_FORMAT", "SIGNATURE_SUFFIX", "EvidenceKey",
           "EvidenceKeyError", "evidence_key", "log_signed_artifact", "signature_path"]

ENV_KEY = "MLFLOW_MONITOR_EVIDENCE_KEY"
ENV_KEY_FILE = "MLFLOW_MONITOR_EVIDENCE_KEY_FILE"
MIN_KEY_BYTES = 32
SIGNATURE_FORMAT = "mlflow_monitor.evidence_signature/1"
SIGNATURE_SUFFIX = ".sig"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class EvidenceKeyError(ValueError):
    """The evidence key is configured but unusable (too short, unreadable, a loose file mode)."""


def signature_path(path: str) -> str:
    """The sidecar of the artifact ``path``."""
    return f"{path}{SIGNATURE_SUFFIX}"


def _artifact_path(path: str) -> str:
    return "/".join(p for p in str(path).replace("\\", "/").split("/") if p and p != ".")


class EvidenceKey:
    """The shared secret; signs and verifies artifacts. Its ``repr`` shows only the key id."""

    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise EvidenceKeyError(f"the evidence key must be at least {MIN_KEY_BYTES} bytes; got {len(secret)} "
                                   f"(generate one with: python -c \"import secrets; print(secrets.token_hex(32))\")")
        self._secret = secret
        self.key_id = hashlib.sha256(b"mlflow-monitor evidence key id\0" + secret).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"EvidenceKey(key_id={self.key_id!r})"

    def _mac(self, run_id: str, path: str, digest: str) -> str:
        message = "\n".join((SIGNATURE_FORMAT, str(run_id), _artifact_path(path), digest)).encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, run_id: str, path: str, data: bytes) -> bytes:
        """The sidecar (JSON bytes) of ``data`` stored at artifact ``path`` of run ``run_id``."""
        digest = hashlib.sha256(data).hexdigest()
        return json.dumps({"format": SIGNATURE_FORMAT, "key_id": self.key_id, "sha256": digest,
                           "mac": self._mac(run_id, path, digest)}, sort_keys=True).encode("utf-8")

    def verify(self, run_id: str, path: str, data: bytes, sidecar: Optional[bytes]) -> Optional[str]:
        """``None`` when ``sidecar`` signs ``data`` at ``path`` of ``run_id`` with this key;
        else why not (no signature, another key, changed bytes, another run or path)."""
        if sidecar is None:
            return "no signature"
        try:
            record = json.loads(sidecar.decode("utf-8"))
            mac, digest, key_id = record["mac"], record["sha256"], record.get("key_id")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError):
            return "an unreadable signature"
        if not (isinstance(mac, str) and isinstance(digest, str) and _HEX64.fullmatch(mac)
                and _HEX64.fullmatch(digest)):
            return "an unreadable signature"
        if record.get("format") != SIGNATURE_FORMAT:
            return "a signature of an unknown format"
        if key_id != self.key_id:
            return "a signature made with another key"
        if not hmac.compare_digest(digest, hashlib.sha256(data).hexdigest()):
            return "a signature of other bytes (the file was changed)"
        if not hmac.compare_digest(mac, self._mac(run_id, path, digest)):
            return "a signature made for another run or path"
        return None


def evidence_key(environ: Optional[Mapping[str, str]] = None) -> Optional[EvidenceKey]:
    """The configured evidence key, or ``None`` when neither variable is set.

    Raises :class:`EvidenceKeyError` (naming the variable, never the secret) when one is
    set but unusable, or both are set."""
    env = os.environ if environ is None else environ
    value, file = env.get(ENV_KEY) or "", env.get(ENV_KEY_FILE) or ""
    if value and file:
        raise EvidenceKeyError(f"both {ENV_KEY} and {ENV_KEY_FILE} are set; set one of them")
    if value:
        try:
            return EvidenceKey(value.strip().encode("utf-8"))
        except EvidenceKeyError as exc:
            raise EvidenceKeyError(f"{ENV_KEY}: {exc}") from None
    if not file:
        return None
    try:
        info = os.stat(file)
        if not stat.S_ISREG(info.st_mode):
            raise EvidenceKeyError(f"{ENV_KEY_FILE}={file!r} is not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise EvidenceKeyError(f"{ENV_KEY_FILE}={file!r} has mode {stat.S_IMODE(info.st_mode):04o}: it must be "
                                   "readable by its owner only (chmod 600)")
        with open(file, "rb") as f:
            secret = f.read().strip()
    except OSError as exc:
        raise EvidenceKeyError(f"{ENV_KEY_FILE}={file!r} cannot be read ({type(exc).__name__}: "
                               f"{exc.strerror or exc})") from None
    try:
        return EvidenceKey(secret)
    except EvidenceKeyError as exc:
        raise EvidenceKeyError(f"{ENV_KEY_FILE}={file!r}: {exc}") from None


def log_signed_artifact(client: object, run_id: str, local_path: str, artifact_dir: str,
                        key: Optional[EvidenceKey]) -> None:
    """``client.log_artifact(run_id, local_path, artifact_dir)``, its signature first when
    ``key`` is given (a reader never sees the file unsigned, only for a moment a sidecar
    without its file). The sidecar is written beside ``local_path``."""
    if key is not None:
        name = os.path.basename(local_path)
        with open(local_path, "rb") as f:
            sidecar = key.sign(run_id, f"{artifact_dir}/{name}", f.read())
        sig_local = signature_path(local_path)
        with open(sig_local, "wb") as f:
            f.write(sidecar)
        client.log_artifact(run_id, sig_local, artifact_dir)  # type: ignore[attr-defined]
    client.log_artifact(run_id, local_path, artifact_dir)  # type: ignore[attr-defined]
