"""Measured curves: convergence with confidence intervals, prior-error brackets, quality vs cost, training losses."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from jaxotdm.plotting._common import _TINY, _axes, _check_log, _fit_parts, _vector, _z_value, subplots


def _line_style(style: dict) -> dict:
    """The measured curve's ``Line2D`` keywords (defaults filled in); an unknown property is a ValueError."""
    from matplotlib import cbook
    from matplotlib.lines import Line2D

    for name in style:
        if name in ("label", "data") or not callable(getattr(Line2D, f"set_{name}", None)):
            raise ValueError(f"`{name}` is not a matplotlib Line2D property (a style keyword of the curve).")
    return {"marker": "o", "linestyle": "-", "markersize": 3, **cbook.normalize_kwargs(style, Line2D)}


def convergence_curve(
    x: Any,
    y: Any,
    se: Any | None = None,
    *,
    label: str | None = None,
    level: float = 0.95,
    fit: Any | None = None,
    ax: Axes | None = None,
    logy: bool = True,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    **style: Any,
) -> Axes:
    """One measured curve ``y(x)`` with a normal confidence band ``y +- z_level * se`` and an optional fit.

    Args:
        x: the abscissae (e.g. termination times or ``-log-SNR``), shape ``(k,)``.
        y: the measured values, shape ``(k,)`` (NaN entries are left out of the line).
        se: standard errors of ``y``, shape ``(k,)``, >= 0; ``None`` draws no band.
        label: legend label of the curve.
        level: confidence level of the band, in (0, 1); 0.95 draws ``+- 1.96 se``.
        fit: an exponential fit drawn dashed as ``exp(intercept - rate * x)`` over the points it used:
            a [`ExponentialFit`][jaxotdm.verify.ExponentialFit] (its ``mask`` selects the points) or a
            ``(rate, intercept)`` pair (all points). Skipped when its rate is NaN (too few points).
        ax: the axes to draw on; ``None`` makes a new figure.
        logy: logarithmic y axis (values below 1e-12 are drawn at 1e-12).
        xlabel: x-axis label (kept if ``None``).
        ylabel: y-axis label (kept if ``None``).
        title: axes title (kept if ``None``).
        **style: matplotlib ``Line2D`` properties of the measured curve (``color``, ``marker``, ``linestyle``,
            ``ms``, ``lw``...); default ``marker="o", linestyle="-", ms=3`` and the axes' next colour. The band
            and the fit take the curve's colour. An unknown property is a ``ValueError`` before anything is drawn.

    Returns:
        The axes drawn on.

    Examples:
        >>> import numpy as np
        >>> from jaxotdm.plotting import convergence_curve
        >>> s = np.arange(1.0, 6.0)
        >>> ax = convergence_curve(s, 2 * np.exp(-s), 0.01 * np.ones(5), fit=(1.0, np.log(2.0)))
        >>> len(ax.lines), len(ax.collections)    # curve and fit; the band
        (2, 1)
        >>> ax = convergence_curve(s, np.exp(-s), color="C3", marker="s", ax=ax)
        >>> ax.lines[-1].get_marker()
        's'
    """
    xs = _vector(x, "x", finite=True)
    ys = _vector(y, "y", size=xs.size)
    ses = None if se is None else _vector(se, "se", size=xs.size)
    if ses is not None and np.any(ses[np.isfinite(ses)] < 0):
        raise ValueError("`se` must be >= 0.")
    z = _z_value(level)
    _check_log(logy, "logy")
    style = _line_style(style)
    ax = _axes(ax)
    shown = np.maximum(ys, _TINY) if logy else ys
    (line,) = ax.plot(xs, shown, label=label, **style)
    if ses is not None:
        lo, hi = ys - z * ses, ys + z * ses
        if logy:
            lo, hi = np.maximum(lo, _TINY), np.maximum(hi, _TINY)
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
    if fit is not None:
        rate, intercept, mask = _fit_parts(fit, xs.size)
        if math.isfinite(rate) and math.isfinite(intercept) and mask.sum() >= 2:
            xf = xs[mask]
            ax.plot(xf, np.exp(intercept - rate * xf), "--", lw=1.0, color=line.get_color(),
                    label=None if label is None else f"{label}: fit, rate {rate:.3g}")
    if logy:
        ax.set_yscale("log")
    ax.set(**{k: v for k, v in (("xlabel", xlabel), ("ylabel", ylabel), ("title", title)) if v is not None})
    ax.grid(alpha=0.3, which="both")
    if label is not None:
        ax.legend(fontsize=7)
    return ax


def convergence_panels(
    result: Any,
    *,
    axes: Sequence[Axes] | None = None,
    label: str | None = None,
    against: str = "log_snr",
    level: float = 0.95,
) -> np.ndarray:
    """The two panels of a convergence measurement: distance to the OT map, and self-convergence.

    Left: ``l2_to_ot`` with its confidence band (and the fitted decay ``fit_to_ot`` when drawn against
    time). Right: ``self_convergence`` (distance to the flow map at the largest termination time; the
    last point, zero by definition, is left out) with its fitted exponential. Call again with the same
    ``axes`` and another ``label`` to compare schedules or datasets.

    Args:
        result: a [`ConvergenceResult`][jaxotdm.verify.ConvergenceResult], or any object with the attributes
            ``termination_times``, ``log_snr``, ``l2_to_ot``, ``l2_to_ot_se``, ``self_convergence``,
            ``self_convergence_se`` and optionally ``fit_log_snr``/``fit_time``/``fit_to_ot``.
        axes: two axes to draw on; ``None`` makes a new 1 x 2 figure.
        label: legend label (e.g. the schedule's name).
        against: ``"log_snr"`` (x = ``-log-SNR`` at the termination time, the scale on which schedules
            compare) or ``"time"`` (x = the termination time).
        level: confidence level of the bands, in (0, 1).

    Returns:
        The two axes, as an array.
    """
    needed = ("termination_times", "log_snr", "l2_to_ot", "l2_to_ot_se", "self_convergence", "self_convergence_se")
    missing = [a for a in needed if not hasattr(result, a)]
    if missing:
        raise ValueError(f"`result` must be a ConvergenceResult; it has no {', '.join(missing)}.")
    if against not in ("log_snr", "time"):
        raise ValueError(f"`against` must be 'log_snr' or 'time', got {against!r}.")
    if axes is None:
        axes = subplots(1, 2, figsize=(10, 3.8))[1]
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2 or not all(isinstance(a, Axes) for a in axes):
        raise ValueError("`axes` must be two matplotlib Axes (or None).")
    times = _vector(result.termination_times, "result.termination_times", finite=True)
    x = -_vector(result.log_snr, "result.log_snr", size=times.size) if against == "log_snr" else times
    xlabel = "-log-SNR at the termination time" if against == "log_snr" else "termination time"
    fit_to_ot = getattr(result, "fit_to_ot", None) if against == "time" else None
    first = len(axes[0].lines)
    convergence_curve(x, result.l2_to_ot, result.l2_to_ot_se, label=label, level=level, fit=fit_to_ot, ax=axes[0],
                      xlabel=xlabel, ylabel="L2 distance to the OT map",
                      title=f"flow map vs OT map (shaded: {100 * level:g}% CI)")
    color = axes[0].lines[first].get_color()
    sc = _vector(result.self_convergence, "result.self_convergence", size=times.size)
    sc_se = _vector(result.self_convergence_se, "result.self_convergence_se", size=times.size)
    fit = getattr(result, "fit_log_snr" if against == "log_snr" else "fit_time", None)
    if fit is not None:
        rate, intercept, mask = _fit_parts(fit, times.size)
        fit = SimpleNamespace(rate=rate, intercept=intercept, mask=mask[:-1])  # the last point is not drawn
    convergence_curve(x[:-1], sc[:-1], sc_se[:-1], label=label, level=level, fit=fit, ax=axes[1], color=color,
                      marker="s", xlabel=xlabel, ylabel="L2 distance to the map at the largest time",
                      title="self-convergence (dashed: fitted exponential)")
    return axes



def prior_error_brackets(
    x: Any,
    lower: Any | None = None,
    upper: Any | None = None,
    estimate: Any | None = None,
    *,
    against: str = "T",
    reference: Any | None = None,
    reference_label: str = "alpha(T) rate",
    ax: Axes | None = None,
    label: str = "W2(p_T, q_T)",
    logy: bool = True,
    logx: bool = False,
) -> Axes:
    """The prior error ``W2(p_T, q_T)`` as a shaded bracket ``[lower, upper]`` with its point estimate.

    Args:
        x: the abscissae (termination times or ``alpha_T``), shape ``(k,)``; or a sequence of
            [`PriorErrorResult`][jaxotdm.verify.PriorErrorResult] (then ``lower``, ``upper`` and ``estimate`` are
            read from their ``lower``, ``upper`` and ``w2`` fields and must not be given).
        lower: lower bounds, shape ``(k,)``.
        upper: upper bounds, shape ``(k,)`` (NaN allowed: no bracket there). Estimated upper bounds can
            fall below an exact lower bound by their Monte Carlo error; they are drawn as given.
        estimate: point estimates, shape ``(k,)``, or ``None``.
        against: with results, the abscissa: ``"T"`` (termination time) or ``"alpha"`` (``alpha_T``).
        reference: values of a reference rate (e.g. ``alpha_T``), shape ``(k,)``; drawn as a dashed line
            through the first lower bound, ``lower[0] * reference / reference[0]``. With results and
            ``reference=None`` nothing is drawn; pass ``"alpha"`` to use the results' ``alpha``.
        reference_label: legend label of the reference line.
        ax: the axes to draw on; ``None`` makes a new figure.
        label: legend label of the bracket.
        logy: logarithmic y axis.
        logx: logarithmic x axis.

    Returns:
        The axes drawn on.

    Examples:
        >>> import numpy as np
        >>> from jaxotdm.plotting import prior_error_brackets
        >>> T = np.array([1.0, 2.0, 3.0]); alpha = np.exp(-T / 2)
        >>> ax = prior_error_brackets(T, 0.9 * alpha, 1.2 * alpha, alpha, reference=alpha)
        >>> len(ax.collections), len(ax.lines)    # the bracket; estimate and reference
        (1, 2)
    """
    if against not in ("T", "alpha"):
        raise ValueError(f"`against` must be 'T' or 'alpha', got {against!r}.")
    results = None
    if isinstance(x, Sequence) and len(x) > 0 and all(hasattr(r, "bracket") for r in x):
        if lower is not None or upper is not None or estimate is not None:
            raise ValueError("`lower`, `upper` and `estimate` are read from the results; do not pass them too.")
        results = x
        x = [float(getattr(r, against)) for r in results]
        lower = [float(r.bracket.lower) for r in results]
        upper = [float(r.bracket.upper) for r in results]
        estimate = [float(r.bracket.w2) for r in results]
        if isinstance(reference, str):
            if reference != "alpha":
                raise ValueError(f"`reference` must be an array, None or 'alpha', got {reference!r}.")
            reference = [float(r.alpha) for r in results]
    elif isinstance(reference, str):
        raise ValueError("`reference`='alpha' needs PriorErrorResult inputs; pass an array of values instead.")
    if lower is None or upper is None:
        raise ValueError("`lower` and `upper` are required with array inputs.")
    xs = _vector(x, "x", finite=True)
    lo = _vector(lower, "lower", size=xs.size)
    up = _vector(upper, "upper", size=xs.size)
    both = np.isfinite(lo) & np.isfinite(up)  # Monte Carlo upper bounds may dip below an exact lower one
    _check_log(logy, "logy")
    _check_log(logx, "logx")
    ax = _axes(ax)
    ax.fill_between(xs, lo, up, alpha=0.25, label=f"{label} bracket", where=both)
    if estimate is not None:
        ax.plot(xs, _vector(estimate, "estimate", size=xs.size), "o-", ms=3, label=f"{label} estimate")
    if reference is not None:
        ref = _vector(reference, "reference", size=xs.size, finite=True)
        if ref[0] == 0 or not np.isfinite(lo[0]):
            raise ValueError("`reference[0]` and `lower[0]` must be finite and non-zero to anchor the line.")
        ax.plot(xs, lo[0] * ref / ref[0], "k--", lw=0.8, label=reference_label)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    xlabel = "alpha_T" if results is not None and against == "alpha" else "termination time T"
    ax.set(xlabel=xlabel, ylabel="prior error")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax



def _series_from_rows(rows: Sequence[Mapping], metric: str, group_by: str | Callable, x: str):
    series: dict[str, tuple[list, list]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"`series` rows must be mappings; row {i} is {type(row).__name__}.")
        for key in (metric, x) + ((group_by,) if isinstance(group_by, str) else ()):
            if key not in row:
                raise ValueError(f"`series` row {i} has no {key!r} (metric={metric!r}, x={x!r}, group_by={group_by!r}).")
        name = str(group_by(row) if callable(group_by) else row[group_by])
        xs, ys = series.setdefault(name, ([], []))
        xs.append(float(row[x]))
        ys.append(float(row[metric]))
    return {k: (np.asarray(a), np.asarray(b)) for k, (a, b) in series.items()}


def quality_vs_nfe(
    series: Mapping[str, Any] | Sequence[Mapping],
    *,
    controls: Mapping[str, float] | None = None,
    metric: str = "w2",
    group_by: str | Callable[[Mapping], str] = "method",
    x: str = "nfe",
    ax: Axes | None = None,
    logx: bool = True,
    logy: bool = False,
    xlabel: str = "NFE (score evaluations)",
    ylabel: str | None = None,
    title: str | None = None,
) -> Axes:
    """A quality metric against cost (NFE, or any parameter) per method, with horizontal control lines.

    Args:
        series: either a mapping ``label -> (x, values)`` or ``label -> (x, values, errors)`` (arrays of
            one length; errors drawn as bars), or table rows (a sequence of dicts such as the sampling
            table's), grouped into one line per ``group_by`` value with ``x`` and ``metric`` read from
            each row.
        controls: horizontal reference lines, ``label -> value`` (e.g. ``{"DDPM, 1000 steps": 3.07,
            "held-out vs train": 2.9}``); values must be finite.
        metric: with rows, the key of the plotted value.
        group_by: with rows, the key (or a function of the row) naming each line.
        x: with rows, the key of the abscissa.
        ax: the axes to draw on; ``None`` makes a new figure.
        logx: logarithmic x axis.
        logy: logarithmic y axis.
        xlabel: x-axis label.
        ylabel: y-axis label; default ``metric``.
        title: axes title.

    Returns:
        The axes drawn on.

    Examples:
        >>> from jaxotdm.plotting import quality_vs_nfe
        >>> rows = [{"method": "ddpm", "nfe": 10, "w2": 4.1}, {"method": "ddpm", "nfe": 100, "w2": 3.2},
        ...         {"method": "OT + ddpm", "nfe": 10, "w2": 3.1}]
        >>> ax = quality_vs_nfe(rows, controls={"held-out floor": 2.9})
        >>> len(ax.lines)    # two methods and one control line
        3
    """
    if isinstance(series, Mapping):
        items = {}
        for name, value in series.items():
            if not (isinstance(value, (tuple, list)) and len(value) in (2, 3)):
                raise ValueError(f"`series[{name!r}]` must be (x, values) or (x, values, errors).")
            xs = _vector(value[0], f"series[{name!r}] x", finite=True)
            ys = _vector(value[1], f"series[{name!r}] values", size=xs.size)
            es = None if len(value) == 2 else _vector(value[2], f"series[{name!r}] errors", size=xs.size)
            items[str(name)] = (xs, ys, es)
    elif isinstance(series, Sequence) and not isinstance(series, (str, bytes)):
        if len(series) == 0:
            raise ValueError("`series` is empty.")
        items = {k: (a, b, None) for k, (a, b) in _series_from_rows(series, metric, group_by, x).items()}
    else:
        raise ValueError(f"`series` must be a mapping label -> (x, values) or a list of rows, got {type(series).__name__}.")
    if not items:
        raise ValueError("`series` is empty.")
    ctrl = {}
    for name, v in (controls or {}).items():
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v))):
            raise ValueError(f"`controls[{name!r}]` must be a finite number, got {v!r}.")
        ctrl[str(name)] = float(v)
    _check_log(logx, "logx")
    _check_log(logy, "logy")
    if logx and any(np.any(xs <= 0) for xs, _, _ in items.values()):
        raise ValueError("`series` x values must be > 0 on a log x axis (pass logx=False).")
    ax = _axes(ax)
    for name, (xs, ys, es) in items.items():
        order = np.argsort(xs, kind="stable")
        if es is None:
            ax.plot(xs[order], ys[order], "o-", ms=4, label=name)
        else:
            ax.errorbar(xs[order], ys[order], yerr=es[order], fmt="o-", ms=4, capsize=3, label=name)
    styles = ["--", ":", "-.", (0, (5, 1, 1, 1))]
    for i, (name, v) in enumerate(ctrl.items()):
        ax.axhline(v, color=f"{0.2 + 0.15 * (i % 4):.2f}", lw=1.0, ls=styles[i % len(styles)], label=name)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel if ylabel is not None else metric)
    if title is not None:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


def loss_curve(
    losses: Any,
    *,
    eval_steps: Any | None = None,
    eval_values: Any | None = None,
    eval_label: str = "held-out",
    smooth: int | None = None,
    ax: Axes | None = None,
    logy: bool = True,
    title: str | None = None,
) -> Axes:
    """A training loss per step, its moving average, and optional held-out evaluations.

    Args:
        losses: the loss at steps ``1 ... k``, shape ``(k,)``.
        eval_steps: steps of the held-out evaluations, shape ``(e,)``, or ``None``.
        eval_values: the evaluations, shape ``(e,)`` (required with ``eval_steps``).
        eval_label: legend label of the evaluations.
        smooth: moving-average window (>= 1); default ``k // 50`` (drawn when ``k >= 10``).
        ax: the axes to draw on; ``None`` makes a new figure.
        logy: logarithmic y axis.
        title: axes title.

    Returns:
        The axes drawn on.

    Examples:
        >>> import numpy as np
        >>> from jaxotdm.plotting import loss_curve
        >>> ax = loss_curve(1 / np.arange(1, 101), eval_steps=[50, 100], eval_values=[0.02, 0.01])
        >>> len(ax.lines)    # loss, moving average, evaluations
        3
    """
    loss = _vector(losses, "losses")
    if (eval_steps is None) != (eval_values is None):
        raise ValueError("`eval_steps` and `eval_values` must be given together.")
    if smooth is not None and not (isinstance(smooth, (int, np.integer)) and 1 <= smooth <= loss.size):
        raise ValueError(f"`smooth` must be an integer in [1, len(losses)], got {smooth!r}.")
    _check_log(logy, "logy")
    ax = _axes(ax)
    steps = np.arange(1, loss.size + 1)
    ax.plot(steps, loss, lw=0.5, alpha=0.4, label="loss")
    w = smooth if smooth is not None else (max(1, loss.size // 50) if loss.size >= 10 else None)
    if w is not None:
        ax.plot(steps[w - 1 :], np.convolve(loss, np.ones(w) / w, mode="valid"), lw=1.5,
                label=f"moving average ({w})")
    if eval_steps is not None:
        es = _vector(eval_steps, "eval_steps", finite=True)
        ev = _vector(eval_values, "eval_values", size=es.size)
        ax.plot(es, ev, "o-", ms=3, label=eval_label)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss")
    if title is not None:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax
