"""Atomic, checksummed msgpack files (shared by model folders and training checkpoints).

Format: a magic line, the SHA-256 of the payload, then a msgpack payload (flax.serialization). Files are
written to a temporary name in the same folder, fsynced and renamed, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import flax.serialization

MAGIC = b"JAXOTDM-CKPT-1\n"


class CheckpointError(ValueError):
    """A checkpoint or model folder is missing, corrupt, or belongs to a different configuration."""


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_msgpack(path: str | Path, tree) -> Path:
    """Serialises a tree of arrays, numbers and strings with a checksum, atomically."""
    payload = flax.serialization.msgpack_serialize(tree)
    return write_atomic(path, MAGIC + hashlib.sha256(payload).digest() + payload)


def read_msgpack(path: str | Path, what: str = "checkpoint"):
    """Reads a file written by :func:`write_msgpack`; :class:`CheckpointError` when missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} does not exist.")
    blob = path.read_bytes()
    head = len(MAGIC)
    if not blob.startswith(MAGIC) or len(blob) < head + 32:
        raise CheckpointError(f"{what} {str(path)!r} is corrupt or not a jaxotdm checkpoint (bad header).")
    digest, payload = blob[head : head + 32], blob[head + 32 :]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{what} {str(path)!r} is corrupt: checksum mismatch (truncated or modified file).")
    try:
        return flax.serialization.msgpack_restore(payload)
    except Exception as exc:
        raise CheckpointError(f"{what} {str(path)!r} is corrupt: {exc}") from exc
