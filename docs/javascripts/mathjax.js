// MathJax configuration: pymdownx.arithmatex (generic mode) on the pages, and the $...$ / $$...$$ math in
// the notebooks' markdown cells rendered by mkdocs-jupyter.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    // The whole page is scanned (the notebooks' markdown has no marker class on its paragraphs); code and
    // pre blocks are skipped by MathJax's defaults.
    ignoreHtmlClass: "tex2jax_ignore|mathjax_ignore",
    processHtmlClass: "tex2jax_process|mathjax_process|arithmatex",
  },
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
