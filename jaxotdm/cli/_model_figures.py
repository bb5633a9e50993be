"""Figures of the model commands (``train``, ``generate``): loss curves, sample grids and scatter plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def loss_figure(path: Path, losses: np.ndarray, evaluations: list[dict], title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.5, alpha=0.4, label="loss")
    if len(losses) >= 10:
        w = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], smooth, lw=1.5, label=f"moving average ({w})")
    if evaluations:
        ax.plot([e["step"] for e in evaluations], [e["val_loss"] for e in evaluations], "o-", label="held-out (EMA)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    keys = [k for k in (evaluations[0] if evaluations else {}) if k.startswith("score_rel_err")]
    for k in keys:
        ax2.plot([e["step"] for e in evaluations], [e[k] for e in evaluations], "o-", label=k.split("@")[1])
    ax2.axhline(0.15, color="k", lw=0.8, ls="--", label="quality bar 0.15")
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_title("relative L2 error vs exact score of the training split (EMA)", fontsize=9)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def samples_figure(out: Path, score, image_shape, x_tr, seed: int, t_start: float) -> None:
    import jax
    import matplotlib

    matplotlib.use("Agg")
    from jaxotdm.cli._common import image_grid
    from jaxotdm.samplers import DPMSolverPP2M, sample

    res = sample(DPMSolverPP2M(), score, score.schedule, t_start=t_start, t_end=1e-3, nfe=50, grid="log_snr",
                 key=jax.random.key(seed + 12345),
                 shape=jax.ShapeDtypeStruct((64 if image_shape else 512, x_tr.shape[1]), x_tr.dtype),
                 throw=False)  # a figure of a diverged model is still drawn (the run warns)
    pts = np.asarray(res.points)
    if image_shape is not None:
        image_grid(np.clip(pts, -1, 1), image_shape[:2] if image_shape[2] == 1 else image_shape, out / "samples.png",
                   title="EMA model, DPM-Solver++(2M), 50 NFE", ncol=16)
        return
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(x_tr[:, 0], x_tr[:, 1], s=2, alpha=0.3, label="training data")
    ax.scatter(pts[:, 0], pts[:, 1], s=2, label="samples")
    ax.legend(fontsize=7)
    fig.savefig(out / "samples.png", dpi=110)
    plt.close(fig)


def samples_png(path: Path, x: np.ndarray, saved, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxotdm.cli._common import image_grid

    shape = saved.data.get("shape")
    if shape is not None:
        scale = saved.data.get("scale")
        lo, hi = scale if scale is not None else (-1.0, 1.0)
        img = 2.0 * (np.asarray(x[:128], np.float64) - lo) / (hi - lo) - 1.0  # the grid draws [-1, 1]
        image_grid(np.clip(img, -1, 1), tuple(shape[:2]) if shape[2] == 1 else tuple(shape), path, title=title)
        return
    fig, ax = plt.subplots(figsize=(4, 4))
    if x.shape[1] >= 2:
        ax.scatter(x[:, 0], x[:, 1], s=3)
    else:
        ax.hist(x[:, 0], bins=50)
    ax.set_title(title, fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
