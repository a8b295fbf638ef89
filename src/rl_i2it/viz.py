"""Pictures people look at: step-wise grids and training curves."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .data.images import to_uint8


def image_grid(rows: list[list[torch.Tensor]], path: str | Path, headers: list[str] | None = None,
               row_labels: list[str] | None = None, zoom: int = 3, pad: int = 2) -> None:
    """Save a grid of ``[C, H, W]`` images in [0, 1]: one list per row; optional column headers."""
    cells = [[to_uint8(im) for im in row] for row in rows]
    h, w = cells[0][0].shape[:2]
    h, w = h * zoom, w * zoom
    top = 14 if headers else 0
    left = 40 if row_labels else 0
    ncol = max(len(r) for r in cells)
    canvas = Image.new("RGB", (left + ncol * (w + pad) + pad, top + len(cells) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(cells):
        for j, a in enumerate(row):
            im = Image.fromarray(a).convert("RGB").resize((w, h), Image.NEAREST)
            canvas.paste(im, (left + pad + j * (w + pad), top + pad + i * (h + pad)))
        if row_labels:
            draw.text((2, top + pad + i * (h + pad) + h // 2 - 5), row_labels[i], fill="black")
    for j, text in enumerate(headers or []):
        draw.text((left + pad + j * (w + pad) + 2, 1), text, fill="black")
    canvas.save(path)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of ``metrics.jsonl``; a line cut short by a killed process is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for ln in path.read_text().splitlines():
        try:
            rows.append(json.loads(ln))
        except ValueError:
            continue
    return rows


def plot_curves(run_dirs: list[str | Path], path: str | Path, labels: list[str] | None = None,
                score_name: str = "episode score") -> None:
    """Training curves of one or more runs against training time: score (``score_name``: what the
    task's ``info["score"]`` measures), auxiliary loss, critic, alpha."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("score", f"episode score: {score_name}"), ("aux_loss", "auxiliary loss"),
            ("critic_loss", "critic loss"), ("alpha", "temperature alpha")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    for i, (run, label) in enumerate(zip(run_dirs, labels or [Path(r).name for r in run_dirs])):
        rows = read_metrics(run)
        for ax, (key, title) in zip(axes, keys):
            pts = [(r["seconds"] / 60, r[key]) for r in rows if key in r]
            if pts:          # one colour per run in every panel (a panel a run is missing from included)
                x, y = np.array(pts).T
                ax.plot(x, y, label=label, color=f"C{i}", marker="o" if len(x) == 1 else None)
            ax.set_title(title)
            ax.set_xlabel("training minutes")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=7)
        else:                        # critic and alpha without RL; a style model's score without rewards
            ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
