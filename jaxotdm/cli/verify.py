"""``jaxotdm verify``: the theorem-verification report (the main job), and the floor study.

The main job (``--study main``) runs, on the embedded default (scikit-learn digits plus 2-D point sets) or
the user's own points:

1. the backward direction per dataset and schedule: the probability-flow map from the prior at time ``s``
   against the semi-discrete OT map (the Monge-Ampere gradient) as ``s`` grows: distances with error
   bars, misrouted mass, the transport-cost gap of the flow's limit map to OT, self-convergence with a
   fitted exponential rate, and the measured floor;
2. the exact one-dimensional control (the flow's limit is the monotone rearrangement = the OT map);
3. the forward direction (Thm 3.11) on a 2-D set, with the computable part of the theorem's right side;
4. the prior error W2(p_T, q_T) against T, the end-of-sampling error of the exact flow (Thm 3.2), and the
   OT correction with the smoothing sweep (Table 2 analogue).

``--study floor`` measures how the floor scales over random point clouds (sizes x dimensions x equal or
Dirichlet weights) and digits subsets.

Writes report.md, report.json and PNG figures to --out (atomically; existing results are kept unless
--overwrite). Every option is checked before any computation. Measurements are reported as measured.
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

from jaxotdm.cli import _common as C

DEFAULT_TIMES = {
    "ou": [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0],
    "vp": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.4],
    "subvp": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.4],
    "cosine": [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.995],
    "ve": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "edm": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 80.0],
}
FORWARD_T0 = 0.5
FORWARD_TIMES = ([1.0, 2.0, 3.0, 4.0, 6.0, 8.0], [1.0, 2.0, 4.0, 8.0])  # full, quick
# --study thm311: out to s = 16, where the forward map has stopped moving (self-convergence below 1e-3 at s = 12)
THM311_TIMES = [1.0, 2.0, 4.0, 8.0, 12.0, 16.0]
FORWARD_NS = ((128, 512, 2048), (64, 256, 1024))  # the main job's Brenier-estimate resolutions: full, quick
CONTROL_TIMES = (4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0)
PRIOR_TIMES = ([0.5, 1.0, 1.5, 2.0, 3.0, 4.0], [0.5, 2.0, 3.0, 4.0])
DEFAULT_TOYS = "eight_gaussians,two_points"
BASIN_TIMES = (2.0, 12.0)  # OU termination times of the basin map (the backward grid's second and last)
BASIN_GRID = {1: (400, 200), 2: (121, 61)}  # grid points per axis: full, quick


def register(sub) -> None:
    p = sub.add_parser("verify", help="theorem-verification report (the main job)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_dataset_args(p)
    p.add_argument("--study", choices=("main", "floor", "thm311"), default="main",
                   help="'main': the verification report; 'floor': how the flow's floor scales (random clouds); "
                        "'thm311': decide Thm 3.11 (forward) from the floor against the Brenier estimate's resolution")
    p.add_argument("--toy", default=None,
                   help="comma-separated 2-D point sets to run beside the dataset ('' for none; default "
                        f"{DEFAULT_TOYS} with a built-in --dataset or --with-defaults, none with a file --dataset)")
    p.add_argument("--with-defaults", action="store_true",
                   help="with a file --dataset: also run the built-in 2-D sets and the forward (Thm 3.11) and prior-"
                        "error sections (by default a file --dataset runs only itself and the cheap 1-D control)")
    p.add_argument("--toy-points", type=int, default=32, help="points per 2-D toy set")
    p.add_argument("--schedules", default="ou,vp,subvp,cosine,ve,edm",
                   help="comma-separated subset of ou,vp,subvp,cosine,ve,edm")
    p.add_argument("--times", default=None,
                   help="comma-separated termination times for every schedule (default: per-schedule grids)")
    p.add_argument("--num-samples", type=int, default=2048, help="Monte Carlo samples per measurement")
    p.add_argument("--ot-tol", type=float, default=0.1, help="semi-discrete OT max relative mass error")
    p.add_argument("--eps", type=float, default=1e-3, help="end time of the backward flow")
    p.add_argument("--floor-ns", default="2,3,5,10,30,100,300", help="--study floor: numbers of points")
    p.add_argument("--floor-ds", default="1,2,4,8,16,64", help="--study floor: dimensions")
    p.add_argument("--floor-samples", type=int, default=2048, help="--study floor: Gaussian draws per cloud")
    p.add_argument("--thm311-ns", default="2048,8192,32768,131072",
                   help="--study thm311: resolutions n of the Brenier estimate (at least two, each >= 16)")
    p.add_argument("--thm311-sets", default="eight_gaussians,moons", help="--study thm311: the 2-D point sets")
    p.add_argument("--thm311-mc", type=int, default=64,
                   help="--study thm311: Monte Carlo draws per Laguerre cell for the barycentres")
    p.add_argument("--quick", action="store_true", help="small sizes: about a minute on 2 cores")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default="jaxotdm-out/verify", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------ validation
def _names(text: str, option: str, choices) -> list[str]:
    names = [s.strip() for s in str(text).split(",") if s.strip()]
    bad = [s for s in names if s not in choices]
    if bad:
        raise ValueError(f"`{option}` must be a comma-separated subset of {','.join(choices)}; got {text!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"`{option}` lists a name twice: {text!r}.")
    return names


def _check_times(times, option: str, sched_name: str, schedule) -> list[float]:
    if len(times) < 2 or any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError(f"`{option}` must hold at least 2 strictly increasing times, got {times}.")
    for t in times:
        try:
            C.time_option(t, option, schedule)
        except ValueError as exc:
            raise ValueError(f"{exc} (schedule {sched_name!r})") from None
    return times


def _validate(args) -> SimpleNamespace:
    """Every option, before any computation; messages name the option as typed."""
    from jaxotdm import data as D

    cfg = SimpleNamespace(study=args.study, quick=bool(args.quick), seed=C.seed(args.seed))
    cfg.num_samples = C.positive_int(args.num_samples, "--num-samples", minimum=2)
    if cfg.quick:
        cfg.num_samples = min(cfg.num_samples, 512)
    cfg.ot_tol = C.positive_float(args.ot_tol, "--ot-tol", upper=1.0)
    cfg.eps = C.positive_float(args.eps, "--eps")
    cfg.schedules = _names(args.schedules, "--schedules", tuple(C.SCHEDULE_CHOICES))
    if not cfg.schedules:
        raise ValueError("`--schedules` must name at least one schedule.")
    override = C.float_list(args.times, "--times") if args.times else None
    cfg.times = {}
    for name in cfg.schedules:  # every schedule asked for is checked, also those --quick leaves out
        sched = C.make_schedule(name)
        times = override or DEFAULT_TIMES[name]
        times = _check_times(times[::2] if cfg.quick and not override else times, "--times", name, sched)
        C.time_option(cfg.eps, "--eps", sched)
        if not cfg.eps < times[0]:
            raise ValueError(f"`--eps` must be below every termination time, got {cfg.eps} >= {times[0]} "
                             f"(schedule {name!r}).")
        cfg.times[name] = times
    if cfg.quick:
        cfg.schedules = [s for s in cfg.schedules if s in ("ou", "ve")] or cfg.schedules[:1]
    user_file = args.dataset not in ("digits", "mnist", *D.TOY_2D)
    if args.with_defaults and not (user_file and cfg.study == "main"):
        raise ValueError("`--with-defaults` applies to `--study main` with a file given to `--dataset` (a built-in "
                         f"dataset always runs with the defaults); got --study {cfg.study} --dataset {args.dataset}.")
    # a user's own file runs alone (plus the cheap 1-D control) unless --with-defaults or --toy asks for more
    cfg.defaults = not user_file or bool(args.with_defaults)
    toys = args.toy if args.toy is not None else (DEFAULT_TOYS if cfg.defaults else "")
    cfg.toys = _names(toys, "--toy", D.TOY_2D)
    cfg.toy_points = C.positive_int(args.toy_points, "--toy-points", minimum=2)
    cfg.floor_ns = C.int_list(args.floor_ns, "--floor-ns", minimum=2)
    cfg.floor_ds = C.int_list(args.floor_ds, "--floor-ds", minimum=1)
    cfg.floor_samples = C.positive_int(args.floor_samples, "--floor-samples", minimum=16)
    cfg.thm311_ns = C.int_list(args.thm311_ns, "--thm311-ns", minimum=16)
    if len(set(cfg.thm311_ns)) < 2 or len(set(cfg.thm311_ns)) != len(cfg.thm311_ns):
        raise ValueError(f"`--thm311-ns` must list at least two distinct resolutions, got {args.thm311_ns!r}.")
    cfg.thm311_sets = _names(args.thm311_sets, "--thm311-sets", D.TOY_2D)
    if not cfg.thm311_sets:
        raise ValueError("`--thm311-sets` must name at least one 2-D set.")
    cfg.thm311_mc = C.positive_int(args.thm311_mc, "--thm311-mc", minimum=4)
    cfg.progress = not args.no_progress
    default_points = {"digits": 150 if cfg.quick else 300, "mnist": 100 if cfg.quick else 300}.get(args.dataset)
    max_points = args.max_points if args.max_points is not None else default_points
    pts, _, desc = C.load_dataset(args.dataset, max_points=max_points, npz_key=args.npz_key)
    cfg.datasets = [(args.dataset, pts, desc)]
    for name in cfg.toys:
        tp, _, tdesc = C.load_dataset(name, toy_points=cfg.toy_points)
        cfg.datasets.append((name, tp, tdesc))
    if len({d[0] for d in cfg.datasets}) != len(cfg.datasets):
        raise ValueError(f"`--toy` repeats `--dataset` {args.dataset!r}.")
    if cfg.study == "thm311":
        cfg.thm311_data = [(n, C.load_dataset(n, toy_points=cfg.toy_points)[0]) for n in cfg.thm311_sets]
    files = [f"{_STEMS[cfg.study]}.md", f"{_STEMS[cfg.study]}.json"]
    cfg.out = C.prepare_output(args.out, files, overwrite=bool(args.overwrite))
    cfg.args = {k: v for k, v in vars(args).items() if k != "func"}
    return cfg


# ------------------------------------------------------------------------------------------ progress
class _Progress:
    """One bar over tasks; each running task's callback shows where it is inside (flows, OT iterations,
    batches). Tasks running at the same time (the forward task runs beside the others) share the line."""

    def __init__(self, enabled: bool, total: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, disable=not enabled, unit="task", dynamic_ncols=True)
        self.times: dict[str, float] = {}
        self.active: dict[str, str] = {}

    def _show(self):
        self.bar.set_description(" | ".join(f"{k}: {v}" for k, v in list(self.active.items())))
        self.bar.refresh()

    def task(self, label: str):
        t0 = time.perf_counter()
        self.times[label] = 0.0
        self.active[label] = "starting"

        def cb(i, n, msg):
            self.times[label] = time.perf_counter() - t0
            self.active[label] = f"{msg} ({i + 1}/{n})"
            self._show()

        cb.label, cb.t0 = label, t0
        return cb

    def done(self, cb, count: bool = True):
        self.times[cb.label] = time.perf_counter() - cb.t0
        self.active.pop(cb.label, None)
        if count:
            self.bar.update(1)
        self._show()

    def close(self):
        self.bar.close()


# ------------------------------------------------------------------------------------------ the job
def run(args: argparse.Namespace) -> int:
    from jaxotdm._io import locked

    cfg = _validate(args)
    stem = _STEMS[cfg.study]
    with locked(cfg.out, stem, option="--out"), C.Interrupts("stop", "verify"):
        C.prepare_output(args.out, [f"{stem}.md", f"{stem}.json"], overwrite=bool(args.overwrite))  # under the lock
        return {"floor": _run_floor, "thm311": _run_thm311, "main": _run_main}[cfg.study](cfg)


_STEMS = {"main": "report", "floor": "floor_study", "thm311": "thm311"}


def _run_main(cfg) -> int:
    import jax

    from jaxotdm.cli import _verify_markdown as _markdown
    from jaxotdm.cli import _verify_report as R

    t_all, load0 = time.perf_counter(), os.getloadavg()
    key = jax.random.key(cfg.seed)
    n_tasks = len(cfg.datasets) * len(cfg.schedules) + 1 + (1 + (1 if _prior_set(cfg) else 0)) * cfg.defaults
    bar = _Progress(cfg.progress, n_tasks)
    report = {"settings": {**cfg.args, "num_samples_used": cfg.num_samples, "quick": cfg.quick},
              "datasets": {n: d for n, _, d in cfg.datasets}, "convergence": [], "forward": []}
    # The forward task (one large OT solve) runs beside the others, and the prior-error task after it on the same
    # side thread: XLA:CPU runs most of this job's kernels on one core, so on a 2-core machine this overlaps the
    # two (results do not depend on the order: every task has its own key).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        forward = pool.submit(_forward, cfg, key, bar) if cfg.defaults and (os.cpu_count() or 1) > 1 else None
        prior = []  # the prior-error task joins the side thread's queue once its OT map exists

        def on_map(name, maps):
            if forward is not None and _prior_set(cfg) is not None and name == _prior_set(cfg)[0]:
                prior.append(pool.submit(_prior, cfg, key, bar, dict(maps)))

        try:
            maps = _backward(cfg, key, bar, report, on_map=on_map)
            report["control_1d"], control = _control(cfg, key, bar)
            basins = _basins(cfg, key, bar, maps, control)
            report["basins"] = [R.basin_summary(label, bm) for label, bm in basins]
            if cfg.defaults:
                report["prior"] = prior[0].result() if prior else _prior(cfg, key, bar, maps)
                study = forward.result() if forward is not None else _forward(cfg, key, bar)
                report["thm311_study"] = study
                report["forward"] = study["rows"] if study else []
            else:
                report["prior"] = {"skipped": "a file --dataset runs only itself and the 1-D control; add "
                                              "--with-defaults for the prior-error section"}
                report["skipped"] = ("the forward direction (Thm 3.11) and the prior-error section use the built-in "
                                     "2-D sets: add --with-defaults to run them beside your data")
        finally:
            for task in [forward, *prior]:
                if task is not None:
                    task.cancel()
            bar.close()
    full = cfg.out / "thm311.json"
    if full.is_file():  # a --study thm311 run in the same folder: its decision joins the verdicts
        import json

        rec = json.loads(full.read_text())
        report["thm311_full"] = {"file": full.name, "seed": rec["settings"].get("seed"), "studies": rec["studies"]}
    report["timings"] = {**bar.times, "total_seconds": time.perf_counter() - t_all}
    report["environment"] = R.environment(cfg.seed, load0, os.getloadavg())
    report["thm_3_11"] = R.thm311(report)
    report["verdicts"] = R.verdicts(report)
    _write(cfg.out, "report", report, lambda figures: _markdown.markdown(report, figures),
           lambda folder: R.figures(report, folder, basins=basins), "report.json")
    return 0


def _write(out, stem: str, record: dict, markdown, figures, what: str) -> None:
    """The report as one output set: ``<stem>.json`` and ``<stem>.md`` committed first, then the figures
    (``figures(folder) -> names``; one that fails prints a warning and costs nothing), and one line saying so."""
    from jaxotdm._io import Transaction

    with Transaction(out, stem, option="--out") as txn:
        C.write_json(txn.path(f"{stem}.json"), record)
        txn.write_text(f"{stem}.md", markdown([]))
        txn.commit()  # the results are safe before any figure is drawn
        names = []
        C.figure_or_warning("verify", "figures", lambda: names.extend(figures(txn.staging())))
        txn.write_text(f"{stem}.md", markdown(names))
        txn.commit()
    print(f"[verify] wrote {out / (stem + '.md')}, {what} and {len(names)} figures in "
          f"{record['timings']['total_seconds']:.0f} s")


def _weights_for(name, n):
    import numpy as np

    # two points get unequal weights: the OT boundary is then not fixed by symmetry
    return np.array([0.7, 0.3], np.float32) if name == "two_points" and n == 2 else None


def _backward(cfg, key, bar, report, on_map=None) -> dict:
    """Backward direction per dataset and schedule; returns the OT map of each dataset (reused later).
    ``on_map(name, maps)`` is called as soon as a dataset's map is solved (the prior-error task starts then)."""
    import jax

    import jaxotdm as jo
    from jaxotdm.cli._verify_report import summary
    from jaxotdm.ot import semidiscrete_ot
    from jaxotdm.verify import convergence_to_brenier

    maps = {}
    for di, (dname, pts, _) in enumerate(cfg.datasets):
        mu = jo.EmpiricalMeasure(pts, _weights_for(dname, len(pts)))
        cb = bar.task(f"{dname}: OT map")
        cb(0, 1, f"OT N(0, I) -> {len(pts)} points")
        # (no progress callback here: semidiscrete_ot reports one solve at a time, and the forward task's solve,
        # running beside this one, holds that slot for minutes)
        # throw=False: a map short of its tolerance warns; the report carries its certificate
        smap = semidiscrete_ot(mu.points, mu.weights, key=jax.random.fold_in(key, 1000 + di), tol=cfg.ot_tol,
                               throw=False)
        bar.done(cb, count=False)  # part of the dataset's first task
        maps[dname] = smap
        if on_map is not None:
            on_map(dname, maps)
        for si, sname in enumerate(cfg.schedules):
            cb = bar.task(f"{dname}/{sname}")
            res = convergence_to_brenier(
                mu, C.make_schedule(sname), cfg.times[sname], key=jax.random.fold_in(key, 10 * di + si),
                num_samples=cfg.num_samples, eps=cfg.eps, ot_map=smap, progress=cb,
            )
            bar.done(cb)
            report["convergence"].append(summary(dname, sname, res, bar.times[cb.label]))
    return maps


def _control(cfg, key, bar):
    """The exact 1-D control (the flow's limit is the monotone rearrangement = the OT map)."""
    import jax

    from jaxotdm.cli._verify_report import control_summary
    from jaxotdm.verify import monotone_control

    cb = bar.task("1-D control")
    c = monotone_control(key=jax.random.fold_in(key, 3), times=CONTROL_TIMES, num_samples=2048 if cfg.quick else 4096,
                         eps=cfg.eps, progress=cb)
    bar.done(cb)
    return control_summary(c, bar.times[cb.label]), c


def _basins(cfg, key, bar, maps, control) -> list:
    """Laguerre cells vs the flow's basins (OU, at two termination times) on a grid of the prior: every 1-D or 2-D
    dataset (with the OT map of the backward section) and the 1-D control's points."""
    import jax
    import numpy as np

    import jaxotdm as jo
    from jaxotdm.verify import basin_map, monotone_map_1d

    sets = [(n, jo.EmpiricalMeasure(p, _weights_for(n, len(p))), maps[n]) for n, p, _ in cfg.datasets
            if p.shape[1] <= 2]
    sets.append((f"1-D control ({len(control.points)} points)",  # its OT map is exact (the monotone rearrangement)
                 jo.EmpiricalMeasure(np.asarray(control.points, np.float32), np.asarray(control.weights, np.float32)),
                 monotone_map_1d(control.points, control.weights)))
    out = []
    for i, (label, mu, smap) in enumerate(sets):
        cb = bar.task(f"{label}: basin map")
        cb(0, 1, f"flows from a {BASIN_GRID[mu.dim][cfg.quick]}-point grid at s = {BASIN_TIMES}")
        out.append((label, basin_map(mu, jo.OU(), BASIN_TIMES, key=jax.random.fold_in(key, 900 + i), ot_map=smap,
                                     grid_size=BASIN_GRID[mu.dim][cfg.quick], eps=cfg.eps, ot_tol=cfg.ot_tol)))
        bar.done(cb, count=False)
    return out


def _prior_set(cfg):
    toys = [(n, p) for n, p, _ in cfg.datasets if p.shape[1] == 2 and n != "two_points"]
    return toys[0] if toys else None


def _prior(cfg, key, bar, maps) -> dict:
    """Prior error against T (Thm 3.2 at the first T) and the OT correction (Table 2 analogue) on the first
    2-D set; the map N(0, I) -> data of the backward section is reused (it does not depend on T)."""
    import jax

    import jaxotdm as jo
    from jaxotdm.cli._verify_report import prior_summary
    from jaxotdm.verify import PriorEstimators, ot_correction, prior_error_curve

    chosen = _prior_set(cfg)
    if chosen is None:
        return {"skipped": "needs a 2-D point set other than two_points (--toy)"}
    name, pts = chosen
    mu, sched = jo.EmpiricalMeasure(pts), jo.OU()
    times = PRIOR_TIMES[1] if cfg.quick else PRIOR_TIMES[0]
    cb = bar.task(f"{name}: prior error")
    t0 = time.perf_counter()
    rows = prior_error_curve(mu, sched, times, key=jax.random.fold_in(key, 500), end_of_sampling_at=[times[0]],
                             num_samples=1024 if cfg.quick else 2048, eps=cfg.eps, ot_tol=cfg.ot_tol, ot_map=maps[name],
                             estimators=PriorEstimators(num_kl_samples=2**12 if cfg.quick else 2**14,
                                                        skip_uninformative=True, corrected=False),
                             progress=cb)
    cb(len(times) - 1, len(times), "OT correction and smoothing sweep (Table 2 analogue)")
    oc = ot_correction(mu, sched, 1.0, key=jax.random.fold_in(key, 600), tau_scale=10.0,
                       tolerances=(0.5, 0.2, 0.1) if cfg.quick else (0.5, 0.2, 0.1, 0.05),
                       num_samples=2**16 if cfg.quick else 2**18, num_tau_samples=1024 if cfg.quick else 2048,
                       prior_kwargs={"estimators": PriorEstimators(num_kl_samples=2**12, sample_points=0),
                                     "ot_map": maps[name]})
    bar.done(cb)
    return prior_summary(name, rows, oc, time.perf_counter() - t0)


def _forward(cfg, key, bar) -> dict | None:
    """Forward direction (Thm 3.11) on the first 2-D set, OU: the floor against the Brenier estimate at three
    resolutions n (each a quarter of the next; :func:`jaxotdm.verify.thm311_study`, the code of ``--study
    thm311`` at smaller n)."""
    import jax

    import jaxotdm as jo
    from jaxotdm.cli._verify_report import thm311_summary
    from jaxotdm.verify import thm311_study

    fwd = [(n, p) for n, p, _ in cfg.datasets if p.shape[1] == 2]
    if not fwd:
        return None
    name, pts = fwd[0]
    times = FORWARD_TIMES[1] if cfg.quick else FORWARD_TIMES[0]
    ns = FORWARD_NS[1] if cfg.quick else FORWARD_NS[0]
    cb = bar.task(f"{name}/ou forward")
    st = thm311_study(jo.EmpiricalMeasure(pts), jo.OU(), ns, times, key=jax.random.fold_in(key, 7), T0=FORWARD_T0,
                      ot_tol=cfg.ot_tol, ot_mc_per_point=64 if cfg.quick else 256, progress=cb)
    bar.done(cb)
    return thm311_summary(name, st, bar.times[cb.label])


# ------------------------------------------------------------------------------------------ Thm 3.11 study
def _run_thm311(cfg) -> int:
    import jax
    import numpy as np

    import jaxotdm as jo
    from jaxotdm.cli import _verify_markdown as _markdown
    from jaxotdm.cli import _verify_report as R
    from jaxotdm.verify import thm311_study

    # float64 throughout: at n = 131,072 float32 heights cannot hold the OT map (the cells' masses move by up to
    # 100% under float32 rounding of the heights); the exact planar solver then reaches ~1e-8
    jax.config.update("jax_enable_x64", True)
    t_all, load0 = time.perf_counter(), os.getloadavg()
    key = jax.random.key(cfg.seed)
    bar = _Progress(cfg.progress, len(cfg.thm311_data))
    studies = []
    try:
        for i, (name, pts) in enumerate(cfg.thm311_data):
            cb = bar.task(f"{name}: Thm 3.11")
            st = thm311_study(jo.EmpiricalMeasure(np.asarray(pts, np.float64)), jo.OU(), cfg.thm311_ns, THM311_TIMES,
                              key=jax.random.fold_in(key, 7 + i), T0=FORWARD_T0, ot_tol=cfg.ot_tol,
                              ot_mc_per_point=cfg.thm311_mc, progress=cb)
            bar.done(cb)
            studies.append(R.thm311_summary(name, st, bar.times[cb.label]))
    finally:
        bar.close()
    record = {"studies": studies, "settings": {**cfg.args, "seed": cfg.seed},
              "timings": {**bar.times, "total_seconds": time.perf_counter() - t_all},
              "environment": R.environment(cfg.seed, load0, os.getloadavg())}
    record["verdicts"] = [R.thm311_verdict_row(st, "this study") for st in studies]
    _write(cfg.out, "thm311", record, lambda figures: _markdown.thm311_markdown(record, figures),
           lambda folder: R.thm311_figures(record, folder), "thm311.json")
    return 0


# ------------------------------------------------------------------------------------------ floor study
def _run_floor(cfg) -> int:
    import jax
    import numpy as np

    from jaxotdm.cli import _floor_report as F
    from jaxotdm.cli import _verify_report as R
    from jaxotdm.verify import Cloud, floor_study, random_clouds

    t_all, load0 = time.perf_counter(), os.getloadavg()
    key = jax.random.key(cfg.seed)
    clouds = random_clouds(cfg.floor_ns, cfg.floor_ds, key=jax.random.fold_in(key, 1))
    dname, pts, _ = cfg.datasets[0]
    if pts.shape[1] > 2:  # data subsets (the default: digits)
        for n in [n for n in (10, 30, 100, 300) if n <= len(pts)]:
            sub = np.asarray(pts[:n], np.float64)
            clouds.append(Cloud(f"{dname} n={n}", sub, np.full(n, 1.0 / n), dname))
    bar = _Progress(cfg.progress, len(clouds))
    rows = []
    try:
        for i, cloud in enumerate(clouds):
            cb = bar.task(cloud.label)
            cb(i, len(clouds), "OT solve and flow")
            rows += floor_study([cloud], key=jax.random.fold_in(jax.random.fold_in(key, 2), i),
                                num_samples=cfg.floor_samples, ot_tol=cfg.ot_tol, eps=cfg.eps)
            bar.done(cb)
    finally:
        bar.close()
    study = F.floor_summary(rows, bar.times)
    study["timings"] = {"total_seconds": time.perf_counter() - t_all}
    study["environment"] = R.environment(cfg.seed, load0, os.getloadavg())
    study["settings"] = cfg.args
    _write(cfg.out, "floor_study", study, lambda figures: F.floor_markdown(study, figures),
           lambda folder: F.floor_figures(study, folder), f"floor_study.json ({len(rows)} clouds)")
    return 0


__all__ = ["register", "run"]
