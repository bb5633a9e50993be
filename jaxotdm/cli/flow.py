"""``jaxotdm flow``: generate with the exact probability flow and check where the samples land.

Draws prior samples at the termination time T, runs the exact-score probability flow back to a
small time eps, and reports how well the samples land on the data: the fraction within a tolerance
of a data point, the mass per data point against the weights, and the NFE; writes a PNG.

Every option is checked before any work (the flow runs backward, so --t-end must be below --T; both are
times of the schedule), and an existing result in --out is only replaced with --overwrite. Files are
written atomically. Exit status: 0 when the solver succeeded, 1 when it did not (the report says why).
"""

from __future__ import annotations

import argparse

import numpy as np

from jaxotdm.cli import _common as C

OUTPUTS = ("flow.json", "samples.png")


def register(sub) -> None:
    p = sub.add_parser("flow", help="exact probability flow from the prior to the data", description=__doc__)
    C.add_dataset_args(p)
    p.add_argument("--schedule", default="ou", choices=tuple(C.SCHEDULE_CHOICES),
                   help="forward schedule (ou: the theorem's constant-beta clock)")
    p.add_argument("--T", type=float, default=10.0, help="start time of the flow (default 10; <1 for cosine)")
    p.add_argument("--t-end", dest="eps", type=float, default=1e-3, help="end time of the flow, below --T")
    p.add_argument("--num-samples", type=int, default=512, help="number of samples")
    p.add_argument("--rtol", type=float, default=1e-5, help="relative and absolute tolerance of the ODE solver")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--out", default="jaxotdm-out/flow", help="output folder")
    C.add_overwrite_arg(p)
    p.set_defaults(func=run)


def check_options(args: argparse.Namespace):
    """Validates every option before any work; returns the schedule. Messages name the option."""
    schedule = C.make_schedule(args.schedule)
    T = C.time_option(args.T, "--T", schedule)
    eps = C.time_option(args.eps, "--t-end", schedule)
    if not eps < T:
        raise ValueError(
            f"`--t-end` ({args.eps:g}) must be below `--T` ({args.T:g}): the flow runs backward from the prior "
            "at --T to the data at --t-end."
        )
    C.positive_int(args.num_samples, "--num-samples")
    C.positive_float(args.rtol, "--rtol", upper=1.0)
    C.seed(args.seed)
    if args.max_points is not None:
        C.positive_int(args.max_points, "--max-points")
    return schedule


def landing_report(points: np.ndarray, weights: np.ndarray, samples: np.ndarray, alpha: float, sigma: float):
    """Nearest data point of each sample, and landing statistics (host-side, chunked)."""
    target = alpha * points
    nearest = np.empty(len(samples), np.int64)
    dist = np.empty(len(samples))
    t2 = (target**2).sum(1)
    for i in range(0, len(samples), 1024):
        s = samples[i : i + 1024]
        d2 = (s**2).sum(1)[:, None] - 2 * s @ target.T + t2[None, :]
        nearest[i : i + 1024] = d2.argmin(1)
        dist[i : i + 1024] = np.sqrt(np.maximum(d2.min(1), 0.0))
    d = points.shape[1]
    tol = 3.0 * sigma * np.sqrt(d)  # p_eps is a mixture of N(alpha y_i, sigma^2 I): |noise| ~ sigma sqrt(d)
    counts = np.bincount(nearest, minlength=len(points))
    freq = counts / len(samples)
    se = np.sqrt(weights * (1 - weights) / len(samples))
    return {
        "tolerance": float(tol),
        "fraction_within_tolerance": float(np.mean(dist <= tol)),
        "median_distance_to_nearest": float(np.median(dist)),
        "total_variation_mass_vs_weights": float(0.5 * np.abs(freq - weights).sum()),
        "max_abs_z_mass": float(np.max(np.abs(freq - weights) / np.maximum(se, 1e-300))),
        "distinct_points_hit": int((counts > 0).sum()),
        "nearest": nearest,
    }


def run(args: argparse.Namespace) -> int:
    from jaxotdm._io import locked

    timer = C.Timer()
    schedule = check_options(args)
    outdir = C.prepare_output(args.out, OUTPUTS, overwrite=args.overwrite)
    with locked(outdir, "flow", option="--out"), C.Interrupts("stop", "flow"):  # one writer per --out
        C.prepare_output(args.out, OUTPUTS, overwrite=args.overwrite)  # again, under the lock
        return _run(args, timer, schedule, outdir)


def _run(args, timer, schedule, outdir) -> int:
    from jaxotdm._io import Transaction
    points, shape, desc = C.load_dataset(args.dataset, max_points=args.max_points, npz_key=args.npz_key)

    import jax

    import jaxotdm as jo

    mu = jo.EmpiricalMeasure(points)
    score = jo.exact_score(mu, schedule)
    key = jax.random.key(args.seed)
    z = schedule.sample_prior(key, args.T, (args.num_samples, mu.dim))
    print(f"[flow] {desc}; schedule {args.schedule}; T = {args.T} -> t_end = {args.eps}; {args.num_samples} samples")
    out = jo.flow_map(score, schedule, z, args.T, args.eps, ode=jo.ODESettings(rtol=args.rtol, atol=args.rtol),
                      throw=False)
    samples = np.asarray(jax.block_until_ready(out.points))
    from jaxotdm._status import Status

    status = Status(int(out.status))
    rep = landing_report(
        points.astype(np.float64), np.asarray(mu.weights, np.float64), samples.astype(np.float64),
        float(schedule.alpha(args.eps)), float(schedule.sigma(args.eps)),
    )
    nearest = rep.pop("nearest")
    rep.update(
        dataset=desc, schedule=args.schedule, T=args.T, eps=args.eps, num_samples=args.num_samples,
        nfe=int(out.nfe), solver_success=bool(out.success), solver_status=status.name, seconds=timer(),
    )
    with Transaction(outdir, "flow", option="--out") as txn:  # one output set: the report, then the figure
        C.write_json(txn.path("flow.json"), rep)
        txn.commit()
        png = txn.path("samples.png")
        if shape is not None:
            draw = lambda: C.image_grid(samples[:64] / float(schedule.alpha(args.eps)), shape, png,  # noqa: E731
                                        title=f"exact probability flow, T = {args.T}, NFE = {int(out.nfe)}")
        else:
            draw = lambda: _scatter(points, samples, nearest, png)  # noqa: E731
        if C.figure_or_warning("flow", "samples.png", draw):
            txn.commit()
    print(
        f"[flow] NFE {rep['nfe']}; {100 * rep['fraction_within_tolerance']:.1f}% of samples within "
        f"{rep['tolerance']:.3g} of a data point; TV(mass, weights) = {rep['total_variation_mass_vs_weights']:.3f}; "
        f"{rep['distinct_points_hit']} distinct points; {rep['seconds']:.1f} s -> {outdir}"
    )
    if status != Status.SUCCESS:
        print(f"[flow] the ODE solver did not succeed: {status.message}; the report above describes an "
              "unfinished flow (raise --rtol, or check --T/--t-end).")
    return 0 if status == Status.SUCCESS else 1


def _scatter(points, samples, nearest, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(samples[:, 0], samples[:, 1], s=3, c=nearest % 10, cmap="tab10", alpha=0.6)
    ax.scatter(points[:, 0], points[:, 1], s=25, marker="x", c="k")
    ax.set_title("probability-flow samples (dots) and data (x)", fontsize=8)
    C.save_figure(fig, path)
    plt.close(fig)
