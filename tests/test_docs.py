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


# ----------------------------------------------------------------------- issue 23 item 2: offline, pinned
def _hook(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_docs_hook_{name}", DOCS / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_site_loads_no_maths_renderer_or_font_from_a_network():
    """The site loaded MathJax from a CDN (and fonts from Google): maths are now typeset at build time."""
    text = _mkdocs_text()
    assert "extra_javascript" not in text and "mathjax.js" not in text.lower() and "cdn." not in text
    assert re.search(r"^\s*- docs/hooks/math\.py", text, re.M)
    assert re.search(r"^\s*font: false", text, re.M)
    assert not (DOCS / "javascripts" / "mathjax.js").exists()


def test_math_hook_typesets_every_formula_of_the_pages_and_notebooks():
    pytest.importorskip("latex2mathml")
    import json

    math = _hook("math")
    page = '<p>A <span class="arithmatex">\\(x_t = \\alpha(t)\\,x_0\\)</span> and</p>' \
           '<div class="arithmatex">\\[\\nabla \\log p_t(x) &lt; 1\\]</div>'
    out = math.render(page, dollars=False)
    assert out.count("<math") == 2 and "\\(" not in out and 'display="block"' in out
    nb = "<p>The map $T(x) = x$ and $$\\frac{a}{b}$$</p><pre>cost $5 and $6</pre><code>$x$</code>"
    out = math.render(nb, dollars=True)
    assert out.count("<math") == 2 and "<pre>cost $5 and $6</pre>" in out and "<code>$x$</code>" in out
    with pytest.raises(math.MathError, match="cannot typeset"):
        math.render('<span class="arithmatex">\\(\\left( x\\)</span>', dollars=False, where="x.md")
    # every formula the site has converts (a formula latex2mathml cannot read would fail the build)
    sources = [p.read_text() for p in DOCS.glob("*.md")]
    for nbfile in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nbfile.read_text())["cells"]
        sources += ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    count = 0
    for text in sources:
        text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)
        for m in re.finditer(r"\$\$(.+?)\$\$", text, re.S):
            math.to_mathml(m.group(1), display=True)
            count += 1
        for m in math._INLINE_DOLLARS.finditer(re.sub(r"\$\$(.+?)\$\$", "", text, flags=re.S)):
            math.to_mathml(m.group(1), display=False)
            count += 1
    assert count > 50


def test_docs_toolchain_is_pinned_from_above():
    """A new major or minor release of the docs toolchain (or ruff, which formats the signatures) must not
    break the strict build unannounced: each is bounded above."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = extras["docs"] + [r for r in extras["dev"] + extras["test"] if re.match(r"(ruff|griffelib)\b", r)]
    names = {re.match(r"[A-Za-z0-9_.\[\]-]+", r).group(0) for r in reqs}
    assert {"mkdocs", "mkdocs-material", "mkdocstrings[python]", "mkdocstrings-python", "mkdocs-jupyter", "ruff",
            "griffelib", "latex2mathml"} <= names, names
    unbounded = [r for r in reqs if "<" not in r]
    assert not unbounded, f"docs toolchain without an upper bound: {unbounded}"


def test_api_pages_show_no_private_constant_as_a_default():
    """``batch_size: int = static_field(DEFAULT_BATCH)`` showed a private name the reader cannot look up; the griffe
    extension shows its value; public constants (in an ``__all__``) stay named."""
    griffe = pytest.importorskip("griffe")
    ext = _hook("griffe_constants").PrivateConstants()
    pkg = griffe.load("jaxotdm", search_paths=[str(ROOT)], allow_inspection=False,
                      extensions=griffe.load_extensions(ext))
    field = pkg["ot.semidiscrete.solve.SemidiscreteSampling.batch_size"]  # batch_size: int = static_field(DEFAULT_BATCH)
    default = str(field.value.arguments[0])
    assert default.isdigit(), default
    from jaxotdm.ot.semidiscrete.solve import DEFAULT_BATCH

    assert int(default) == DEFAULT_BATCH
