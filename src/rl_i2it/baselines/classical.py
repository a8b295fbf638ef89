"""The classical registration tools users run today, on our pairs: ANTs SyN (``antspyx``) and
elastix B-spline (``itk-elastix``). Both are optional (``pip install .[baselines]``).

Each returns the displacement field in our convention (``[N, *S]`` voxels, pull-back: the warped
moving image at ``x`` is ``moving(x + u(x))``), so labels are warped and Jacobians computed by
the same code as for our own methods.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import UserError

TOOLS = {"syn": ("ants", "antspyx"), "elastix": ("itk", "itk-elastix")}


def available(tool: str) -> bool:
    module = TOOLS[tool][0]
    if importlib.util.find_spec(module) is None:
        return False
    if tool == "elastix":
        import itk
        return hasattr(itk, "elastix_registration_method")
    return True


def missing_line(tool: str) -> str:
    return f"{tool}: skipped ({TOOLS[tool][1]} is not installed; `pip install .[baselines]` adds it)"


def syn(fixed: np.ndarray, moving: np.ndarray, threads: int = 2) -> np.ndarray:
    """ANTs SyN (``type_of_transform='SyN'``: rigid + affine + SyN, mutual information, its
    default multi-resolution schedule). Returns the total displacement ``[N, *S]``."""
    import ants
    f = ants.from_numpy(np.ascontiguousarray(fixed, np.float32))
    m = ants.from_numpy(np.ascontiguousarray(moving, np.float32))
    reg = ants.registration(fixed=f, moving=m, type_of_transform="SyN")
    with tempfile.TemporaryDirectory() as tmp:
        path = ants.apply_transforms(fixed=f, moving=m, transformlist=reg["fwdtransforms"],
                                     compose=str(Path(tmp) / "total_"))
        disp = ants.image_read(path).numpy()           # [*S, N], physical axis i = array axis i
    return np.moveaxis(disp, -1, 0).astype(np.float32)


def elastix(fixed: np.ndarray, moving: np.ndarray, threads: int = 2) -> np.ndarray:
    """elastix B-spline, multi-resolution: 3 levels, mutual information, final grid spacing 8
    voxels, 300 iterations per level (2D) / 200 (3D). Returns the displacement ``[N, *S]``."""
    import itk
    nd = fixed.ndim
    f = itk.image_from_array(np.ascontiguousarray(fixed, np.float32))
    m = itk.image_from_array(np.ascontiguousarray(moving, np.float32))
    params = itk.ParameterObject.New()
    pm = params.GetDefaultParameterMap("bspline", 3, 8.0)
    pm["MaximumNumberOfIterations"] = ["300" if nd == 2 else "200"]
    pm["NumberOfSpatialSamples"] = ["4096"]
    params.AddParameterMap(pm)
    _, tp = itk.elastix_registration_method(f, m, parameter_object=params, log_to_console=False)
    field = np.asarray(itk.transformix_deformation_field(m, tp))   # [*S, N], components (x, y[, z])
    return np.moveaxis(field[..., ::-1], -1, 0).astype(np.float32)  # reverse to array-axis order


def register_pairs(tool: str, fixed: np.ndarray, moving: np.ndarray, threads: int = 2
                   ) -> tuple[np.ndarray, list[float]]:
    """Register pairs ``[P, *S]`` with ``tool`` in a child process; return the fields
    ``[P, N, *S]`` and the seconds each pair took.

    A child process because ITK's and torch's native libraries clash in one process (elastix
    crashes when torch was imported first), and so that a crash of the tool is an error here.
    """
    if tool not in TOOLS:
        raise UserError(f"unknown baseline {tool!r} (known: {', '.join(TOOLS)})")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, fixed=fixed.astype(np.float32), moving=moving.astype(np.float32))
        proc = subprocess.run([sys.executable, "-m", "rl_i2it.baselines.classical", tool, str(src), str(dst),
                               str(threads)], capture_output=True, text=True, cwd=tmp)  # transformix writes files in its cwd
        if proc.returncode != 0 or not dst.is_file():
            raise UserError(f"{tool} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        with np.load(dst) as z:
            return z["fields"], z["seconds"].tolist()


def _load(tool: str) -> None:
    """Import the tool and load its lazily loaded parts (ITK loads a module at its first use: the
    first pair's seconds held seconds of loading that RL-I2IT's never do)."""
    if tool == "syn":
        import ants
        ants.from_numpy(np.zeros((8, 8), np.float32))
    else:
        import itk
        itk.ParameterObject.New()
        itk.elastix_registration_method, itk.transformix_deformation_field, itk.image_from_array


def _worker(tool: str, src: str, dst: str, threads: int) -> None:
    """The child process: no torch here; ITK's thread count from the environment (elastix's own
    ``number_of_threads`` argument crashes itk-elastix 0.2x)."""
    import os
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    os.environ.setdefault("ANTS_RANDOM_SEED", "1")    # SyN's affine stage samples at random (clock seed otherwise)
    fn = {"syn": syn, "elastix": elastix}[tool]
    _load(tool)                                   # one-off costs outside the timed pairs
    with np.load(src) as z:
        fixed, moving = z["fixed"], z["moving"]
    fields, secs = [], []
    for f, m in zip(fixed, moving):
        t0 = time.perf_counter()
        fields.append(fn(f, m, threads))
        secs.append(time.perf_counter() - t0)
    np.savez(dst, fields=np.stack(fields), seconds=np.array(secs))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
