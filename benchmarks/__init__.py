"""The benchmark scripts, a package so that they import their shared harness without ``sys.path`` edits.

Run each from the repository root as a module, e.g. ``python -m benchmarks.bench_flow --quick``, or all of
them with ``python -m benchmarks.run_all`` (``python3 .ci/dev.py bench``). Results go to
``benchmarks/results/<machine>/``. Not part of the installed package.
"""
