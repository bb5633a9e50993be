"""Studies built on jaxotdm's public API: measurements that turn the library into verdicts.

* :mod:`~jaxotdm.studies.paired`: paired Student-t intervals over repetitions and the verdict they allow
  ("better", "worse", "not resolvable at this size").
* :mod:`~jaxotdm.studies.metric_validity`: known-defect control rows (shrunk, locally averaged, blurred,
  Gaussian-fitted, half-the-classes, noisy, memorised samples built from the data split) and the test of
  which metric ranks real held-out data above every defect at a given sample size.
* :mod:`~jaxotdm.studies.table3`: the analogue of the paper's Table 3 (long chains against one OT step plus
  a short chain) with repetitions, paired intervals, sanity rows and the validity table: the one
  implementation that ``jaxotdm sample``, the benchmark and the notebooks render.
"""

from jaxotdm.studies.metric_validity import (
    ControlSettings,
    MetricValidity,
    QualityMetric,
    control_rows,
    default_quality_metrics,
    metric_validity,
    validity_markdown,
)
from jaxotdm.studies.paired import PairedInterval, paired_interval, verdict
from jaxotdm.studies.table3 import (
    Baseline,
    Table3Result,
    Table3Row,
    Table3Settings,
    default_baselines,
    plot_table3,
    run_table3,
    table3_from_json,
    table3_json,
    table3_markdown,
)

__all__ = [
    "PairedInterval",
    "paired_interval",
    "verdict",
    "QualityMetric",
    "default_quality_metrics",
    "ControlSettings",
    "control_rows",
    "MetricValidity",
    "metric_validity",
    "validity_markdown",
    "Baseline",
    "default_baselines",
    "Table3Settings",
    "Table3Row",
    "Table3Result",
    "run_table3",
    "table3_markdown",
    "table3_json",
    "table3_from_json",
    "plot_table3",
]
