"""The documentation site's sources: every public module has an API page that shows every public name,
every notebook is in the navigation, the science page stands on its own, and the getting-started page
runs as written. (The site itself is built by ``python3 .ci/dev.py docs``, which CI runs.)"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLIC_MODULES = ("schedules", "measures", "scores", "flow", "ot", "samplers", "metrics", "verify", "studies", "networks",
                  "training", "data", "plotting", "sharding")
NOT_DOCUMENTED = {"cli"}  # the command line is documented by its --help, not as an API


def _mkdocs_text() -> str:
    return (ROOT / "mkdocs.yml").read_text()


def test_public_modules_are_the_packages_top_level_modules():
    """A new public module (top-level, not starting with ``_``) must get an API page too."""
    found = {p.stem for p in (ROOT / "jaxotdm").glob("*.py") if not p.stem.startswith("_")}
    found |= {p.parent.name for p in (ROOT / "jaxotdm").glob("*/__init__.py") if not p.parent.name.startswith("_")}
    assert found - NOT_DOCUMENTED == set(PUBLIC_MODULES)


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_api_page_per_public_module(module):
    page = DOCS / "api" / f"{module}.md"
    assert page.is_file(), f"missing {page.relative_to(ROOT)}"
    assert re.search(rf"^::: jaxotdm\.{module}\s*$", page.read_text(), re.M)
    assert f"api/{module}.md" in _mkdocs_text()


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_api_page_shows_every_public_name(module):
    """mkdocstrings reads ``__all__`` statically (griffe): a name added to ``__all__`` at run time (e.g.
    ``__all__ += ...``) or an export that does not resolve would silently vanish from the reference."""
    griffe = pytest.importorskip("griffe")
    static = griffe.load(f"jaxotdm.{module}", search_paths=[str(ROOT)], allow_inspection=False)
    runtime = importlib.import_module(f"jaxotdm.{module}")
    assert static.docstring is not None, f"jaxotdm.{module} has no module docstring (the page's introduction)"
    names = set(getattr(runtime, "__all__", []))
    assert names, f"jaxotdm.{module} has no __all__"
    exported = static.exports
    assert exported is not None, f"jaxotdm.{module}.__all__ is not a literal list"
    assert names == {str(n) for n in exported}, "static and runtime __all__ differ"
    for name in sorted(names):
        member = static[name]
        target = member.final_target if member.is_alias else member
        assert target is not None and target.path.startswith("jaxotdm."), f"{name} does not resolve"


def test_every_notebook_is_in_the_nav():
    text = _mkdocs_text()
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for name in notebooks:
        assert f"notebooks/{name}" in text, f"notebooks/{name} is not in mkdocs.yml's nav"


def test_nav_pages_exist():
    text = _mkdocs_text()
    nav = text[text.index("\nnav:"):]
    for target in re.findall(r":\s*([\w./-]+\.md)\s*$|^\s*-\s*([\w./-]+\.md)\s*$", nav, re.M):
        path = target[0] or target[1]
        assert (DOCS / path).is_file(), f"nav entry {path} has no page"


def test_science_page_stands_alone():
    text = (DOCS / "theory.md").read_text()
    assert "science.md" not in text  # no reference to a file outside the repository
    assert "2410.13431" in text
    for heading in ("The exact score", "Prior error", "Semi-discrete", "Algorithm 2", "What jaxotdm measured",
                    "References"):
        assert heading in text, heading
    # the round-2 markers were replaced by this round's numbers: no placeholder may remain
    assert "<!-- update after round 2 -->" not in text and "being re-measured" not in text
    assert "ott-jax" in text and r"\tau = \frac{\varepsilon}{2}" in text and "g_j" in text


def test_benchmark_page_includes_the_summary():
    text = (DOCS / "benchmarks.md").read_text()
    assert '--8<-- "benchmarks/results/cpu-x86_64-SUMMARY.md' in text
    assert (ROOT / "benchmarks" / "results" / "cpu-x86_64-SUMMARY.md").is_file()


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.M | re.S)


def test_getting_started_runs(capsys):
    """The page's code blocks, in order, as one script (small sizes: a few seconds after compilation)."""
    blocks = _python_blocks(DOCS / "getting-started.md")
    assert len(blocks) >= 8
    namespace: dict = {"__name__": "getting_started"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"getting-started.md block {i}", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # pragma: no cover - the message says which block broke
            raise AssertionError(f"docs/getting-started.md block {i} failed: {exc!r}\n{block}") from exc
    out = capsys.readouterr().out
    assert "W2 to held-out" in out
    assert int(namespace["fast"].nfe) == 10 and int(namespace["ddim"].nfe) == 20
