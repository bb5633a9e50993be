"""Training quality and cost, measured against the exact score (issue 5, item 4).

For each dataset (a 2-D toy set and scikit-learn's 8x8 digits) the script trains a score network with
:func:`jaxotdm.training.fit` on a training split small enough for the exact score, then reports

- the relative L2 error ``sqrt(E|s_theta - s|^2 / E|s|^2)`` of the EMA score against the exact score of the
  training set at several noise levels (``x_t ~ p_t`` of the training set), next to a peer: the score of the
  Gaussian fitted to the training set (what a network that learned only the first two moments would give);
- the Sinkhorn divergence (ott-jax, fixed epsilon) to held-out data of samples from the learned score
  (probability-flow ODE from the prior at ``T``), next to the training set itself, samples from the exact
  score of the training set (these reproduce training points: memorisation) and from the Gaussian fit;
- the time of one compiled training step (compile time separately, median of repeats) and, as the machine's
  ceiling, a matmul of shape (batch, width) x (width, width).

Run: ``python benchmarks/bench_training.py [--quick]``. Writes ``results/<machine>/bench_training.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

import jaxotdm as jo  # noqa: E402
from jaxotdm import data as D  # noqa: E402
from jaxotdm.networks import MLP, NoisePrediction, ScoreModel, UNet  # noqa: E402
from jaxotdm.training import (  # noqa: E402
    DSMObjective,
    UniformLogSNR,
    default_optimizer_for,
    fit,
    init_train_state,
    score_relative_error,
    train_step,
)


def sinkhorn_div(x, y, epsilon):
    from ott.geometry import pointcloud
    from ott.tools import sinkhorn_divergence as sd

    val, _ = sd.sinkhorn_divergence(pointcloud.PointCloud, jnp.asarray(x), jnp.asarray(y), epsilon=epsilon)
    return float(val)


def sample_pf(score, schedule, n, d, T, t_end, key):
    z = schedule.sample_prior(key, jnp.asarray(T, jnp.float32), (n, d))
    out = jo.flow_map(score, schedule, z, T, t_end, solver="tsit5", rtol=1e-4, atol=1e-4)
    return np.asarray(out.points), int(out.nfe)


def run_case(name, x_train, x_test, *, features, depth, steps, batch_size, lr, times, T, t_end, n_samples, rows,
             heads, network=None, label=None):
    sched = jo.OU()
    x_train = np.asarray(x_train, np.float32)
    x_test = np.asarray(x_test, np.float32)
    n, d = x_train.shape
    network = MLP(features=features, depth=depth) if network is None else network
    model = ScoreModel(network, sched, NoisePrediction(), sigma_data=float(x_train.std()))
    objective = DSMObjective(model, time_distribution=UniformLogSNR.between(sched, 1e-3, T))

    # --- step cost: compile vs run, and the matmul ceiling ---------------------------------------
    opt = default_optimizer_for(lr)
    state0 = init_train_state(model, opt, x_train[:1], key=jax.random.key(0))
    batch = jnp.asarray(x_train[:batch_size])
    step = lambda s, b: train_step(s, b, objective=objective, optimizer=opt)  # noqa: E731
    timing = H.time_jax(step, state0, batch, repeats=20)
    ceiling = H.matmul_ceiling(batch_size, features, features)

    # --- train ------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    res = fit(objective, x_train, steps=steps, batch_size=batch_size, learning_rate=lr, seed=0, ema_decay=0.999)
    wall = time.perf_counter() - t0
    learned = model.bind(res.state.ema_params)
    exact = jo.exact_score(jo.EmpiricalMeasure(jnp.asarray(x_train)), sched)
    gauss = jo.exact_score(jo.GaussianMeasure(x_train.mean(0), (np.cov(x_train.T) + 1e-6 * np.eye(d)).astype(np.float32)), sched)
    base = {
        "dataset": name,
        "n_train": n,
        "d": d,
        "network": label or f"MLP {features}x{depth}",
        "steps": steps,
        "batch": batch_size,
        "final_loss": float(np.mean(res.losses[-200:])),
        "fit_wall_s": wall,
        "step_compile_s": timing["compile_s"],
        "step_run_ms": 1e3 * timing["run_s"],
        "matmul_ms": 1e3 * ceiling["run_s"],
        "step/matmul": timing["run_s"] / ceiling["run_s"],
    }
    xtr64 = jnp.asarray(x_train)
    for t in times:
        key = jax.random.key(11)
        e_l = float(score_relative_error(learned, exact, x_train, t, sched, key=key, num_samples=2048))
        e_g = float(score_relative_error(gauss, exact, xtr64, t, sched, key=key, num_samples=2048))
        snr = float(sched.log_snr(jnp.asarray(t)))
        rows.append({**base, "metric": "score rel. L2 error", "t": t, "log_snr": snr, "learned": e_l, "gaussian_fit": e_g})
        print(f"[{name}] t={t:g} (log-SNR {snr:+.2f}): learned {e_l:.4f}, Gaussian fit {e_g:.4f}")

    # --- samples vs held-out ---------------------------------------------------------------------------
    eps = 0.05 * float(np.mean(np.sum((x_test[:, None, :] - x_test[None, :, :]) ** 2, -1)))
    key = jax.random.key(5)
    xs_l, nfe_l = sample_pf(learned, sched, n_samples, d, T, t_end, key)
    xs_e, nfe_e = sample_pf(exact, sched, n_samples, d, T, t_end, key)
    xs_g, _ = sample_pf(gauss, sched, n_samples, d, T, t_end, key)
    nn = lambda xs: float(np.median(np.min(np.sum((xs[:, None] - x_train[None]) ** 2, -1), 1) ** 0.5))  # noqa: E731
    sk = {
        "training set": (sinkhorn_div(x_train, x_test, eps), 0.0),
        "learned score": (sinkhorn_div(xs_l, x_test, eps), nn(xs_l)),
        "exact score (train)": (sinkhorn_div(xs_e, x_test, eps), nn(xs_e)),
        "Gaussian fit": (sinkhorn_div(xs_g, x_test, eps), nn(xs_g)),
    }
    for what, (v, nnd) in sk.items():
        rows.append({**base, "metric": "Sinkhorn div. to held-out", "t": None, "samples": what, "value": v,
                     "epsilon": eps, "median NN dist to train": nnd,
                     "nfe": {"learned score": nfe_l, "exact score (train)": nfe_e}.get(what)})
        print(f"[{name}] Sinkhorn divergence ({what}) = {v:.4g} (eps {eps:.3g}); median NN distance to train {nnd:.3g}")
    net = base["network"]
    heads.append(H.headline(
        f"training step / matmul ceiling ({name}, {net}, batch {batch_size})", ratio=base["step/matmul"], target=None,
        ours_s=timing["run_s"], peer=f"matmul ({batch_size}x{features}) @ ({features}x{features})",
        peer_s=ceiling["run_s"], compile_s=timing["compile_s"],
        note="reported only (no target): one optimiser step (forward + backward + update) in units of one matmul"))
    ratio = sk["learned score"][0] / sk["Gaussian fit"][0]
    heads.append(H.headline(
        f"learned-sample Sinkhorn divergence / Gaussian fit's ({name}, {net}, {steps} steps)", ratio=ratio,
        target="< 1", peer="exact score of the Gaussian fitted to the training set",
        note=f"divergence to held-out data: learned {sk['learned score'][0]:.3g}, Gaussian fit "
             f"{sk['Gaussian fit'][0]:.3g}, training set itself {sk['training set'][0]:.3g}"))
    print(f"[{name}] step: compile {timing['compile_s']:.2f}s, run {1e3 * timing['run_s']:.2f} ms "
          f"(matmul ceiling {1e3 * ceiling['run_s']:.3f} ms); fit wall {wall:.1f}s for {steps} steps")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    q = args.quick
    rows: list[dict] = []
    heads: list[dict] = []
    toy = D.toy_2d("eight_gaussians", 1024, seed=0)
    tr, te = D.train_test_split(toy, test_fraction=0.5, seed=0)
    run_case("eight_gaussians", tr, te, features=128, depth=3, steps=500 if q else 4000, batch_size=256, lr=2e-3,
             times=(0.05, 0.2, 0.5, 1.0, 2.0), T=8.0, t_end=1e-3, n_samples=512, rows=rows, heads=heads)
    digits = D.load_digits()
    tr, te = D.train_test_split(digits, test_fraction=0.2, seed=0)
    run_case("digits (8x8)", tr, te, features=256, depth=3, steps=300 if q else 4000, batch_size=128, lr=1e-3,
             times=(0.05, 0.2, 0.5, 1.0, 2.0), T=8.0, t_end=1e-3, n_samples=360, rows=rows, heads=heads)
    run_case("digits (8x8)", tr, te, features=64, depth=0, steps=200 if q else 1500, batch_size=128, lr=1e-3,
             times=(0.05, 0.2, 0.5, 1.0, 2.0), T=8.0, t_end=1e-3, n_samples=360, rows=rows, heads=heads,
             network=UNet(image_shape=(8, 8, 1), channels=32, channel_mult=(1, 2), groups=8),
             label="U-Net 32ch (1,2)")
    notes = [
        "OU schedule (beta = 1), noise prediction, NoiseMSE weighting, log-SNR-uniform times on [1e-3, 8], EMA 0.999.",
        "score rel. L2 error: sqrt(E|s - s_exact|^2 / E|s_exact|^2) under x_t ~ p_t of the training set; "
        "gaussian_fit = the exact score of N(mean, cov) of the training set (a peer that knows only two moments).",
        "Sinkhorn divergence: ott-jax sinkhorn_divergence with PointCloud (squared Euclidean cost), epsilon = 0.05 x "
        "mean squared distance within the held-out set. Samples: probability-flow ODE (tsit5, rtol = atol = 1e-4) "
        "from N(0, I) at T = 8 to t = 1e-3. The exact score of the training set reproduces training points "
        "(median NN distance ~ 0): its divergence is the memorisation floor, comparable to the training set itself.",
        "Times on a shared 2-core CPU: absolute numbers are noisy; step/matmul is the ratio to the machine's ceiling.",
    ]
    cols = ["dataset", "n_train", "d", "network", "steps", "metric", "t", "log_snr", "learned", "gaussian_fit",
            "samples", "value", "median NN dist to train", "nfe", "final_loss", "fit_wall_s", "step_compile_s",
            "step_run_ms", "matmul_ms", "step/matmul"]
    path = H.write_results("bench_training" + ("_quick" if q else ""), rows, notes=notes, columns=cols, headline=heads)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
