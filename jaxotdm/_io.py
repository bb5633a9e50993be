"""Files and output sets written as transactions: the one home of jaxotdm's write machinery.

- **Single files** (:func:`write_atomic`, :func:`write_msgpack`): written to a temporary name in the same
  folder, fsynced and renamed, with the permissions the umask allows (not ``mkstemp``'s 0600). Msgpack
  files carry a magic line and the SHA-256 of their payload.
- **Output sets** (:class:`Transaction`): the files of one result (a model folder, a report, a sample set)
  are written into a private staging folder ``.<set>.txn-<run>`` beside them. ``commit`` writes the set's
  manifest (the SHA-256 of every file and a run id) into it and renames it to ``.<set>.commit-<run>``:
  that rename is the commit point. The files are then moved into place and the manifest
  ``<set>.manifest.json`` is replaced last. A kill before the commit point leaves the previous set
  untouched (the staging folder is swept by the next run); a kill after it is completed ("rolled
  forward") by the next writer or reader. Readers (:func:`verify_set`) reject any file that differs from
  the manifest, naming the file.
- **Locks** (:func:`locked`): an exclusive ``fcntl.flock`` on ``.<set>.lock`` in the folder; a second
  writer is refused at once with the holder's pid. The OS releases the lock when its process dies, so a
  killed run never blocks the next one.
- **Faults** for the test suite: ``JAXOTDM_FAULT=exit:<point>`` ends the process at a named write step
  (as a kill would), ``JAXOTDM_FAULT=enospc:<point>`` raises "No space left on device" there. Points:
  ``write:<file>`` (a set's file about to be written), ``commit`` (the commit point, before it),
  ``move:<file>`` (after a committed file was moved into place), ``atomic:<file>`` (a single file, after its
  temporary was written).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import threading
import uuid
from pathlib import Path

import flax.serialization

MAGIC = b"JAXOTDM-CKPT-1\n"
MANIFEST_FORMAT = "jaxotdm-manifest-1"
FAULT_ENV = "JAXOTDM_FAULT"
TMP_TAG = ".jaxotdm-tmp"
FAULT_EXIT_CODE = 99


class CheckpointError(ValueError):
    """A checkpoint or model folder is missing, corrupt, or belongs to a different configuration."""


class OutputBusyError(ValueError):
    """Another process holds the lock of an output folder."""


# ------------------------------------------------------------------------------------------ faults
def fault(point: str) -> None:
    """The test hook: acts when ``$JAXOTDM_FAULT`` names ``point`` (see the module docstring)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or ":" not in spec:
        return
    action, where = spec.split(":", 1)
    if where != point:
        return
    if action == "exit":
        os._exit(FAULT_EXIT_CODE)
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # like a failed write: no file name


# ------------------------------------------------------------------------------------------ temporaries
_REGISTRY_LOCK = threading.RLock()
_LIVE: set[str] = set()  # temporaries and staging folders of this process (removed on an interrupt)


def _register(path) -> None:
    with _REGISTRY_LOCK:
        _LIVE.add(str(path))


def _unregister(path) -> None:
    with _REGISTRY_LOCK:
        _LIVE.discard(str(path))


def remove_live_temporaries() -> None:
    """Removes this process's temporary files and staging folders (called on Ctrl-C before exiting)."""
    with _REGISTRY_LOCK:
        for p in list(_LIVE):
            with contextlib.suppress(OSError):
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
            _LIVE.discard(p)


def current_umask() -> int:
    """The process's umask (read without changing it where ``/proc`` allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_name(path: Path) -> str:
    return f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_TAG}"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def named(path) -> None:
    """Gives an ``OSError`` raised inside the block the file name ``path`` when it has none (a failed
    ``write`` names no file), so that the CLI's one-line message can name it."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename), with the
    permissions the umask allows (``0666 & ~umask``, like ``open``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / _temp_name(path)
    _register(tmp)
    try:
        with named(path):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            fault(f"atomic:{path.name}")
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        _unregister(tmp)
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path next to ``path`` for a writer that wants a file name (e.g. ``savefig``); on
    success it replaces ``path`` in one step, on failure the previous file is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / (_temp_name(path) + (path.suffix or ""))
    _register(tmp)
    try:
        yield tmp
        fault(f"atomic:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        _unregister(tmp)


def write_msgpack(path: str | Path, tree) -> Path:
    """Serialises a tree of arrays, numbers and strings with a checksum, atomically."""
    return write_atomic(path, msgpack_bytes(tree))


def msgpack_bytes(tree) -> bytes:
    """The bytes :func:`write_msgpack` writes: magic line, SHA-256 of the payload, msgpack payload."""
    payload = flax.serialization.msgpack_serialize(tree)
    return MAGIC + hashlib.sha256(payload).digest() + payload


def read_msgpack(path: str | Path, what: str = "checkpoint"):
    """Reads a file written by :func:`write_msgpack`; :class:`CheckpointError` when missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} does not exist.")
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}.") from None
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ locks
_HELD: dict[str, list] = {}  # lock file -> [fd, depth]: re-entrant within one process


def _option(option: str | None, folder: Path) -> str:
    return f"`{option}` {str(folder)!r}" if option else f"folder {str(folder)!r}"


@contextlib.contextmanager
def locked(folder: str | Path, set_name: str, *, option: str | None = None):
    """Holds the exclusive lock of the output set ``set_name`` in ``folder`` (created if needed).

    On entry it completes a committed but unfinished transaction of a killed run and sweeps that run's
    staging folders and temporary files. Raises :class:`OutputBusyError` (a ``ValueError``) at once when
    another process holds the lock, and a ``ValueError`` naming the folder when it cannot be created or
    written; ``option`` (e.g. ``"--out"``) names the folder in messages.
    """
    folder = Path(folder)
    where = _option(option, folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{where} exists and is not a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{where} cannot be created: {exc.strerror or exc}.") from None
    lock_file = folder / f".{set_name}.lock"
    key = os.path.realpath(lock_file)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield folder
        finally:
            _HELD[key][1] -= 1
        return
    import fcntl

    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ValueError(f"{where} is not writable ({exc.strerror or exc}).") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise OutputBusyError(f"{where} is being written by another jaxotdm process (pid {holder}); wait for it "
                              "to finish or choose another folder.") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        if not os.access(folder, os.W_OK):
            raise ValueError(f"{where} is not writable.")
        _HELD[key] = [fd, 1]
        recover(folder, set_name)
        yield folder
    finally:
        _HELD.pop(key, None)
        os.close(fd)  # releases the flock


def holds_lock(folder: str | Path, set_name: str) -> bool:
    return os.path.realpath(Path(folder) / f".{set_name}.lock") in _HELD


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(folder: Path, set_name: str) -> None:
    """Under the set's lock: completes committed transactions of a killed run, removes its staging folders
    and the temporary files of dead processes in ``folder``."""
    folder = Path(folder)
    for cdir in sorted(folder.glob(f".{set_name}.commit-*")):
        _roll_forward(folder, set_name, cdir)
    for sdir in folder.glob(f".{set_name}.txn-*"):
        shutil.rmtree(sdir, ignore_errors=True)
    for tmp in folder.glob("*.msgpack.*.tmp"):  # temporaries of earlier jaxotdm versions (no pid in their names)
        with contextlib.suppress(OSError):
            tmp.unlink()
    for tmp in folder.glob(f".*{TMP_TAG}*"):
        parts = tmp.name.split(".")
        pid = next((int(p) for p in parts if p.isdigit()), None)
        if pid is not None and not _pid_alive(pid):
            with contextlib.suppress(OSError):
                tmp.unlink()


# ------------------------------------------------------------------------------------------ output sets
def manifest_name(set_name: str) -> str:
    return f"{set_name}.manifest.json"


def _read_manifest(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), dict):
        return None
    return doc


def _roll_forward(folder: Path, set_name: str, cdir: Path) -> None:
    new = _read_manifest(cdir / ".manifest.json")
    if new is None:  # not a complete commit (cannot happen: the manifest is written before the rename)
        shutil.rmtree(cdir, ignore_errors=True)
        return
    live = folder / manifest_name(set_name)
    old = _read_manifest(live) or {"files": {}}
    for rel in new["files"]:
        src = cdir / rel
        if src.exists():
            dst = folder / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            fault(f"move:{rel}")
    for rel in set(old["files"]) - set(new["files"]):  # the previous set's files that the new one lacks
        with contextlib.suppress(OSError):
            (folder / rel).unlink()
    os.replace(cdir / ".manifest.json", live)
    _fsync_dir(folder)
    shutil.rmtree(cdir, ignore_errors=True)


class Transaction:
    """One output set written as a transaction (see the module docstring).

    Use it as a context manager inside :func:`locked` (it takes the lock itself otherwise): ask
    :meth:`path` for the staging path of each file, write there, and call :meth:`commit`. A commit may be
    repeated: the later commit publishes the earlier files plus the new ones (results first, figures
    later). Leaving the block on an exception discards what was not committed.

    Example:
        >>> import tempfile, jaxotdm._io as io
        >>> folder = tempfile.mkdtemp()
        >>> with io.Transaction(folder, "report") as t:
        ...     _ = t.path("report.json").write_text("{}")
        ...     t.commit()
        >>> sorted(io.verify_set(folder, "report")["files"])
        ['report.json']
    """

    def __init__(self, folder: str | Path, set_name: str, *, option: str | None = None):
        self.folder, self.set_name, self.option = Path(folder), set_name, option
        self.run_id = uuid.uuid4().hex
        self.committed: dict[str, str] = {}
        self._staging: Path | None = None
        self._lock = None
        self._commits = 0

    def __enter__(self) -> Transaction:
        if not holds_lock(self.folder, self.set_name):
            self._lock = locked(self.folder, self.set_name, option=self.option)
            self._lock.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.discard()
        finally:
            if self._lock is not None:
                self._lock.__exit__(*exc)

    def _stage(self) -> Path:
        if self._staging is None:
            self._staging = self.folder / f".{self.set_name}.txn-{os.getpid()}-{self.run_id[:8]}-{self._commits}"
            _register(self._staging)
            self._staging.mkdir(parents=True)
        return self._staging

    def staging(self) -> Path:
        """The staging folder (for writers that take a folder and name their files themselves)."""
        return self._stage()

    def path(self, name: str) -> Path:
        """The staging path of the set's file ``name`` (relative, e.g. ``grids/a.png``)."""
        fault(f"write:{name}")
        p = self._stage() / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_bytes(self, name: str, data: bytes) -> Path:
        with named(self.folder / name):
            p = self.path(name)
            p.write_bytes(data)
        return p

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode())

    def carry_over(self) -> None:
        """Keeps the files of the set now in the folder (those not written again) in the next commit."""
        live = _read_manifest(self.folder / manifest_name(self.set_name))
        if live is not None:
            self.committed = {**live["files"], **self.committed}

    def commit(self) -> None:
        """Publishes the files written so far (with those of earlier commits) in one step."""
        with named(self.folder / manifest_name(self.set_name)):
            self._commit()

    def _commit(self) -> None:
        staging = self._stage()
        files = {}
        for p in sorted(staging.rglob("*")):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
                files[p.relative_to(staging).as_posix()] = _sha256(p)
        files = {**self.committed, **files}
        doc = {"format": MANIFEST_FORMAT, "set": self.set_name, "run_id": self.run_id, "files": files}
        (staging / ".manifest.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
        _fsync_dir(staging)
        fault("commit")
        cdir = self.folder / f".{self.set_name}.commit-{self.run_id[:8]}-{self._commits}"
        with _REGISTRY_LOCK:  # an interrupt removes staging folders, never a committed one
            os.replace(staging, cdir)
            _unregister(staging)
        self._staging = None
        self._commits += 1
        _fsync_dir(self.folder)
        _roll_forward(self.folder, self.set_name, cdir)
        self.committed = files

    def discard(self) -> None:
        """Removes what was written since the last commit."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            _unregister(self._staging)
            self._staging = None


def verify_set(folder: str | Path, set_name: str, *, what: str = "output folder") -> dict:
    """The manifest of the set ``set_name`` in ``folder``, after checking the SHA-256 of every file it
    lists; :class:`CheckpointError` naming the first file that is missing or differs.

    A transaction that a killed run committed but did not finish is completed first when the folder is
    writable and no other process holds its lock.
    """
    folder = Path(folder)
    if any(folder.glob(f".{set_name}.commit-*")):
        try:
            with locked(folder, set_name):
                pass
        except (ValueError, OSError):
            raise CheckpointError(f"{what} {str(folder)!r}: a write of its files was interrupted and cannot be "
                                  "completed now (folder busy or read-only); retry when it is free.") from None
    mpath = folder / manifest_name(set_name)
    if not mpath.is_file():
        raise CheckpointError(f"{what} {str(folder)!r} has no {mpath.name}: it was written by an older jaxotdm, "
                              "or its writing was interrupted; write it again.")
    doc = _read_manifest(mpath)
    if doc is None:
        raise CheckpointError(f"{str(mpath)!r} is corrupt (not a {MANIFEST_FORMAT} manifest).")
    for rel, want in doc["files"].items():
        p = folder / rel
        if not p.is_file():
            raise CheckpointError(f"{str(p)!r} is missing: {mpath.name} lists it (the folder was changed after "
                                  "it was written).")
        try:
            got = _sha256(p)
        except OSError as exc:
            raise CheckpointError(f"{str(p)!r} cannot be read: {exc.strerror or exc}.") from None
        if got != want:
            raise CheckpointError(f"{str(p)!r} does not match {mpath.name} (SHA-256 differs: modified, truncated, "
                                  f"or not from run {doc.get('run_id', '?')[:8]}).")
    return doc


def check_free_space(folder: str | Path, nbytes: int, *, option: str | None = None) -> None:
    """``ValueError`` naming the folder when it has less than ``nbytes`` (plus 1 MiB) free."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    need = int(nbytes) + (1 << 20)
    if free < need:
        raise ValueError(f"{_option(option, folder)} has {free / 2**20:.1f} MiB free; this output needs about "
                         f"{need / 2**20:.1f} MiB.")


__all__ = ["CheckpointError", "OutputBusyError", "Transaction", "locked", "verify_set", "write_atomic",
           "atomic_path", "write_msgpack", "read_msgpack", "msgpack_bytes", "check_free_space", "current_umask",
           "remove_live_temporaries", "fault", "manifest_name", "named"]
