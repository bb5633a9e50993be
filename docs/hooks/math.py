"""mkdocs hook: typesets the site's maths at build time, as MathML (no MathJax, no network when reading).

``pymdownx.arithmatex`` (generic mode) marks the pages' maths as ``<span class="arithmatex">\\(...\\)</span>``
and ``<div class="arithmatex">\\[...\\]</div>``; the notebooks' markdown cells (rendered by mkdocs-jupyter)
keep ``$...$`` and ``$$...$$``. This hook converts both with ``latex2mathml`` (pure Python) into MathML,
which browsers render natively, and removes the MathJax script tags that mkdocs-jupyter's notebook template
adds (they would fetch MathJax from a CDN). A formula latex2mathml cannot convert fails the build, naming
the page and the formula.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_ARITHMATEX = re.compile(
    r'<(span|div) class="arithmatex">\s*(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<display>.*?)\\\])\s*</\1>', re.S
)
# Regions of a notebook page whose text is not markdown: code, preformatted output, scripts, styles, maths
# already converted.
_SKIP = re.compile(r"(<(pre|code|script|style|math|textarea)\b.*?</\2>)", re.S | re.I)
_DISPLAY_DOLLARS = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_DOLLARS = re.compile(r"(?<![\\$\w])\$(?!\s)([^$<>]+?)(?<![\s\\])\$(?![\w$])")
_MATHJAX_SCRIPTS = re.compile(
    r'<script[^>]*(?:src="https://[^"]*mathjax[^"]*"|type="text/x-mathjax-config")[^>]*>.*?</script>\s*',
    re.S | re.I,
)


class MathError(ValueError):
    pass


def to_mathml(tex: str, *, display: bool, where: str = "") -> str:
    """One formula (as it appears in the HTML: entities escaped) as MathML."""
    source = html.unescape(tex).strip()
    try:
        return convert(source, display="block" if display else "inline")
    except Exception as exc:  # latex2mathml raises several types for unsupported input
        raise MathError(f"{where}: cannot typeset {source!r}: {type(exc).__name__}: {exc}") from exc


def render(content: str, *, dollars: bool, where: str = "") -> str:
    """``content`` with its arithmatex spans (and, if ``dollars``, its ``$``-delimited maths outside code)
    replaced by MathML."""

    def arithmatex(m):
        display = m.group("display") is not None
        mathml = to_mathml(m.group("display") if display else m.group("inline"), display=display, where=where)
        return f'<{m.group(1)} class="arithmatex">{mathml}</{m.group(1)}>'

    content = _ARITHMATEX.sub(arithmatex, content)
    if not dollars:
        return content
    parts = _SKIP.split(content)
    out = []
    i = 0
    while i < len(parts):
        text = parts[i]
        text = _DISPLAY_DOLLARS.sub(lambda m: to_mathml(m.group(1), display=True, where=where), text)
        text = _INLINE_DOLLARS.sub(lambda m: to_mathml(m.group(1), display=False, where=where), text)
        out.append(text)
        if i + 1 < len(parts):
            out.append(parts[i + 1])  # a skipped region, unchanged
        i += 3  # split() yields text, the whole match, the tag-name group
    return "".join(out)


def _is_notebook(page) -> bool:
    return str(getattr(page.file, "src_uri", "")).endswith(".ipynb")


def on_page_content(html_text: str, page, config, files) -> str:
    return render(html_text, dollars=_is_notebook(page), where=page.file.src_uri)


def on_post_page(output: str, page, config) -> str:
    if _is_notebook(page):
        output = _MATHJAX_SCRIPTS.sub("", output)
    return output
