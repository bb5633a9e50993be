"""``jaxotdm sample``: the analogue of Table 3 of arXiv 2410.13431 (NFE vs quality, with memorisation).

Splits the dataset into training and held-out parts, uses the *exact* score of the training split (the
ground truth for that training set; no network), and compares: ancestral DDPM (1000 steps), DDIM, Heun
and DPM-Solver-2 at the requested NFEs from the prior at ``T``, and OT-accelerated sampling (one
semi-discrete OT step to ``T'``, then a short reverse chain) over ``T'`` and ``tau``, unconditional and
(with labels) class-conditional. Beside every quality figure (Sinkhorn divergence and W2 to held-out
data, k-NN precision/recall, mode-mixture ratio, classifier Frechet distance -- *not* FID) it reports
memorisation (median nearest-train / nearest-held-out distance ratio, near-copy fraction). Writes
``table3.md``, ``table3.json`` and one PNG grid per row (image data) into ``--out``.

With the exact score of a finite training set every converged sampler reproduces the training points;
the memorisation columns show how far each row has gone that way.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm.cli import _common as C

BASELINES = ("ddpm", "ddim", "heun", "dpm2")
OT_SAMPLERS = ("em", "ddpm", "ddim")


def _floats(s: str, name: str) -> list[float]:
    try:
        out = [float(v) for v in s.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"`{name}` must be a comma-separated list of numbers, got {s!r}.") from exc
    if not out:
        raise ValueError(f"`{name}` must not be empty.")
    return out


def _ints(s: str, name: str) -> list[int]:
    try:
        out = [int(v) for v in s.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"`{name}` must be a comma-separated list of integers, got {s!r}.") from exc
    if any(v < 1 for v in out):
        raise ValueError(f"`{name}` values must be >= 1, got {out}.")
    return out


def register(sub) -> None:
    p = sub.add_parser("sample", help="Table 3 analogue: samplers vs OT-accelerated sampling", description=__doc__)
    C.add_dataset_args(p)
    p.add_argument("--labels", default=None, help="labels file (.npy/.npz/.csv) for --dataset PATH (conditional)")
    p.add_argument("--train-size", type=int, default=300,
                   help="training points used (stratified equally over classes when labelled; 0 = all)")
    p.add_argument("--num-samples", type=int, default=300)
    p.add_argument("--T", type=float, default=1.0, help="start time of the baselines (VP schedule)")
    p.add_argument("--t-end", type=float, default=1e-3)
    p.add_argument("--samplers", default="ddpm,ddim,heun,dpm2", help=f"baselines among {BASELINES}")
    p.add_argument("--nfe", default="10,20,50", help="NFE list for DDIM/Heun/DPM-Solver")
    p.add_argument("--ddpm-steps", type=int, default=1000)
    p.add_argument("--t-prime", default="0.05,0.2", help="OT times T' (DDPM time units: 0.05 = step 50)")
    p.add_argument("--tau", default="0,0.5", help="OT smoothing list (0 = hard map)")
    p.add_argument("--ot-nfe", default="10,20", help="reverse steps after the OT step")
    p.add_argument("--ot-sampler", default="ddpm", choices=OT_SAMPLERS)
    p.add_argument("--ot-tol", type=float, default=0.25, help="OT max relative cell-mass error")
    p.add_argument("--conditional", default="on", choices=("on", "off"))
    p.add_argument("--guidance", type=float, default=0.0)
    p.add_argument("--classifier-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="jaxotdm-out/sample")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _method(name: str):
    from jaxotdm import samplers as SM

    return {"ddpm": SM.AncestralDDPM(), "ddim": SM.DDIM(), "heun": SM.Heun(), "dpm2": SM.DPMSolver2(),
            "em": SM.EulerMaruyama()}[name]


# ------------------------------------------------------------------------------------------- evaluation
def evaluate(samples, train, heldout, *, classifier=None, requested=None) -> dict:
    """Quality (vs held-out) and memorisation (vs train) of ``samples``; host floats."""
    from jaxotdm import metrics as M

    s = jnp.asarray(samples)
    out = {}
    sd = M.sinkhorn_divergence(s, heldout)
    out["sinkhorn"] = float(sd.divergence)
    out["w2"] = float(M.wasserstein2(s, heldout))
    k = min(3, len(s) - 1, len(heldout) - 1)
    pr = M.precision_recall(s, heldout, k=k)
    out["precision"], out["recall"] = float(pr.precision), float(pr.recall)
    mem = M.memorisation(s, train, heldout)
    out["mem_median_ratio"] = float(mem.median_ratio)
    out["near_copy_fraction"] = float(mem.near_copy_fraction)
    if classifier is not None:
        probs = classifier.probabilities(s)
        out["mode_mixture"] = float(M.mode_mixture_ratio(probs))
        out["classifier_frechet"] = float(M.classifier_frechet_distance(classifier, s, heldout))
        if requested is not None:
            out["class_accuracy"] = float(jnp.mean(jnp.argmax(probs, -1) == jnp.asarray(requested)))
    return out


def stratified_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` points of every class (equal class sizes keep one compiled OT solver)."""
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.nonzero(labels == c)[0])[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(idx))


def run_table3(
    train: np.ndarray,
    heldout: np.ndarray,
    *,
    train_labels: np.ndarray | None = None,
    heldout_labels: np.ndarray | None = None,
    num_samples: int = 300,
    T: float = 1.0,
    t_end: float = 1e-3,
    samplers: Sequence[str] = BASELINES,
    nfe: Sequence[int] = (10, 20, 50),
    ddpm_steps: int = 1000,
    t_primes: Sequence[float] = (0.05, 0.2),
    taus: Sequence[float] = (0.0, 0.5),
    ot_nfe: Sequence[int] = (10, 20),
    ot_sampler: str = "ddpm",
    ot_tol: float = 0.25,
    conditional: bool = True,
    guidance: float = 0.0,
    classifier_steps: int = 1000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[dict], dict]:
    """Runs the Table 3 analogue with the exact score of ``train``; returns ``(rows, samples_by_row)``.

    Each row: ``method``, ``nfe``, ``T_prime``, ``tau``, ``conditional``, the metrics of :func:`evaluate`
    and ``seconds`` (wall time of sampling, excluding the OT preparation, reported in ``ot_seconds``).
    """
    import jaxotdm as jo
    from jaxotdm import metrics as M
    from jaxotdm import samplers as SM
    from jaxotdm.samplers import ot_accelerated as OA

    for name in samplers:
        if name not in BASELINES:
            raise ValueError(f"`--samplers` entries must be among {BASELINES}, got {name!r}.")
    if ot_sampler not in OT_SAMPLERS:
        raise ValueError(f"`--ot-sampler` must be one of {OT_SAMPLERS}, got {ot_sampler!r}.")
    say = progress or (lambda _msg: None)
    schedule = jo.VPLinear()
    xtr, xte = jnp.asarray(train), jnp.asarray(heldout)
    score = jo.exact_score(jo.EmpiricalMeasure(xtr), schedule)
    key = jax.random.key(seed)
    clf = None
    if train_labels is not None and heldout_labels is not None and len(np.unique(train_labels)) >= 2:
        say("classifier")
        clf = M.train_classifier(np.concatenate([train, heldout]), np.concatenate([train_labels, heldout_labels]),
                                 key=jax.random.fold_in(key, 999), num_steps=classifier_steps)
    rows, pics = [], {}

    def record(row, pts, requested=None):
        row |= evaluate(pts, xtr, xte, classifier=clf, requested=requested)
        rows.append(row)
        pics[_row_name(row)] = np.asarray(pts)
        say(_row_name(row))

    # ---- baselines from the prior at T
    for i, name in enumerate(samplers):
        budgets = [ddpm_steps] if name == "ddpm" else list(nfe)
        for b in budgets:
            m = _method(name)
            if name != "ddpm" and b % m.evals_per_step:
                continue
            kwargs = {"num_steps": b, "grid": "uniform"} if name == "ddpm" else {"nfe": b, "grid": "log_snr"}
            t0 = time.perf_counter()
            out = SM.sample(m, score, schedule, t_start=T, t_end=t_end, key=jax.random.fold_in(key, 100 * i + b),
                            shape=(num_samples, xtr.shape[1]), **kwargs)
            jax.block_until_ready(out.points)
            record({"method": name, "nfe": int(out.nfe), "T_prime": None, "tau": None, "conditional": False,
                    "seconds": time.perf_counter() - t0}, out.points)
    # ---- OT-accelerated, unconditional
    chain = _method(ot_sampler)
    for j, tp in enumerate(t_primes):
        t0 = time.perf_counter()
        prior = OA.prepare_ot_prior(schedule, xtr, key=jax.random.fold_in(key, 7000 + j), t_prime=tp, ot_tol=ot_tol)
        jax.block_until_ready(prior.ot_map.heights)
        ot_sec = time.perf_counter() - t0
        cert = float(prior.certificate.max_relative_error)
        for tau in taus:
            for b in ot_nfe:
                t0 = time.perf_counter()
                out = OA.ot_accelerated_sample(score, schedule, None, key=jax.random.fold_in(key, 9000 + j), t_prime=tp,
                                               num_samples=num_samples, sampler=chain, nfe=b, t_end=t_end, tau=tau,
                                               grid="log_snr", ot_map=prior)
                record({"method": f"OT+{ot_sampler}", "nfe": int(out.nfe), "T_prime": tp, "tau": tau,
                        "conditional": False, "seconds": time.perf_counter() - t0, "ot_seconds": ot_sec,
                        "ot_certificate": cert}, out.points)
    # ---- conditional
    if conditional and train_labels is not None:
        classes = [int(c) for c in np.unique(train_labels)]
        per = max(1, num_samples // len(classes))
        requested = np.repeat(classes, per)
        cs = OA.ExactClassScores.from_data(xtr, train_labels, schedule)
        t0 = time.perf_counter()
        pts = []
        for c in classes:
            o = SM.sample(SM.DDIM(), cs.for_class(c, guidance), schedule, t_start=T, t_end=t_end, nfe=max(nfe),
                          grid="log_snr", key=jax.random.fold_in(key, 500 + c), shape=(per, xtr.shape[1]))
            pts.append(o.points)
        record({"method": "ddim", "nfe": int(o.nfe), "T_prime": None, "tau": None, "conditional": True,
                "guidance": guidance, "seconds": time.perf_counter() - t0}, jnp.concatenate(pts), requested)
        tp = t_primes[0]
        t0 = time.perf_counter()
        cprior = OA.prepare_conditional_ot_prior(schedule, xtr, train_labels, key=jax.random.fold_in(key, 8000),
                                                 t_prime=tp, ot_tol=ot_tol)
        ot_sec = time.perf_counter() - t0
        cert = max(float(p.certificate.max_relative_error) for p in cprior.priors)
        for tau in taus:
            t0 = time.perf_counter()
            pts = []
            for c in classes:
                o = OA.ot_accelerated_conditional_sample(cs, schedule, None, None, label=c, key=jax.random.fold_in(key, 600 + c),
                                                         t_prime=tp, num_samples=per, guidance=guidance, sampler=chain,
                                                         nfe=ot_nfe[-1], t_end=t_end, tau=tau,
                                                         grid="log_snr", ot_map=cprior)
                pts.append(o.points)
            record({"method": f"OT+{ot_sampler}", "nfe": int(o.nfe), "T_prime": tp, "tau": tau, "conditional": True,
                    "guidance": guidance, "seconds": time.perf_counter() - t0, "ot_seconds": ot_sec,
                    "ot_certificate": cert}, jnp.concatenate(pts), requested)
    return rows, pics


def _row_name(r: dict) -> str:
    s = f"{r['method']}_nfe{r['nfe']}"
    if r.get("T_prime") is not None:
        s += f"_Tp{r['T_prime']:g}_tau{r['tau']:g}"
    return s + ("_cond" if r.get("conditional") else "")


COLUMNS = [("method", "method"), ("nfe", "NFE"), ("T_prime", "T'"), ("tau", "tau"), ("conditional", "cond"),
           ("sinkhorn", "Sinkhorn div"), ("w2", "W2"), ("precision", "prec"), ("recall", "recall"),
           ("mode_mixture", "mode mix"), ("classifier_frechet", "clf Frechet"), ("class_accuracy", "class acc"),
           ("mem_median_ratio", "NN ratio (train/held)"), ("near_copy_fraction", "near-copy frac"),
           ("seconds", "s")]


def markdown_table(rows: list[dict]) -> str:
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    head = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    sep = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(fmt(r.get(k)) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def run(args: argparse.Namespace) -> int:
    from jaxotdm import data as D

    timer = C.Timer()
    nfe, ot_nfe = _ints(args.nfe, "--nfe"), _ints(args.ot_nfe, "--ot-nfe")
    t_primes, taus = _floats(args.t_prime, "--t-prime"), _floats(args.tau, "--tau")
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    if args.num_samples < 4:
        raise ValueError(f"`--num-samples` must be >= 4, got {args.num_samples}.")
    x, shape, desc = C.load_dataset(args.dataset, max_points=args.max_points, npz_key=args.npz_key)
    labels = None
    if args.dataset == "digits":
        labels = D.load_digits(return_labels=True)[1]
    elif args.dataset == "mnist":
        labels = D.load_mnist_subset(return_labels=True)[1]
    elif args.labels is not None:
        labels = D.load_labels(args.labels, num_points=None)
    if labels is not None:
        labels = np.asarray(labels)[: len(x)]
        if len(labels) != len(x):
            raise ValueError(f"`--labels` holds {len(labels)} labels for {len(x)} points.")
        xtr, xte, ytr, yte = D.train_test_split(x, labels, test_fraction=0.2, seed=args.seed)
    else:
        xtr, xte = D.train_test_split(x, test_fraction=0.2, seed=args.seed)
        ytr = yte = None
    if args.train_size:
        if ytr is not None:
            idx = stratified_subset(ytr, max(1, args.train_size // len(np.unique(ytr))), args.seed)
            xtr, ytr = xtr[idx], ytr[idx]
        else:
            xtr = xtr[: args.train_size]
    progress = None
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="jaxotdm sample", unit="row")
        progress = lambda msg: (bar.set_postfix_str(msg), bar.update(1))  # noqa: E731
    try:
        rows, pics = run_table3(
            xtr, xte, train_labels=ytr, heldout_labels=yte, num_samples=args.num_samples, T=args.T,
            t_end=args.t_end, samplers=samplers, nfe=nfe, ddpm_steps=args.ddpm_steps, t_primes=t_primes, taus=taus,
            ot_nfe=ot_nfe, ot_sampler=args.ot_sampler, ot_tol=args.ot_tol, conditional=args.conditional == "on",
            guidance=args.guidance, classifier_steps=args.classifier_steps, seed=args.seed, progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    out = C.output_dir(args.out)
    config = {k: v for k, v in vars(args).items() if k != "func"}
    C.write_json(out / "table3.json", {"dataset": desc, "train_points": len(xtr), "heldout_points": len(xte),
                                       "score": "exact score of the training split", "config": config,
                                       "rows": rows, "total_seconds": timer()})
    md = [f"# Table 3 analogue ({desc})", "",
          f"Exact score of {len(xtr)} training points; metrics against {len(xte)} held-out points; "
          f"{args.num_samples} samples per row; VP-linear schedule, t_end = {args.t_end}. "
          "NFE counts score evaluations (the OT step costs none). 'clf Frechet' is a Frechet distance in a "
          "small classifier's features, not FID. NN ratio = median nearest-train / nearest-held-out "
          "distance; near-copy = fraction with ratio < 1/3. With the exact score of a finite training set "
          "a converged sampler reproduces training points (NN ratio -> 0).", "", markdown_table(rows), ""]
    (out / "table3.md").write_text("\n".join(md))
    if shape is not None:
        for name, pts in pics.items():
            C.image_grid(np.clip(pts[:64], -1, 1), shape, out / f"{name}.png", title=name)
    print(f"wrote {out / 'table3.md'} ({len(rows)} rows, {timer():.1f} s)")
    return 0
