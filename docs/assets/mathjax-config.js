// MathJax 3 for pymdownx.arithmatex (generic mode): \( … \) inline, \[ … \] display.
window.MathJax = {
  tex: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true },
  options: { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex" },
};
document$.subscribe(() => {  // Material's instant navigation: typeset each new page
  if (window.MathJax && MathJax.typesetPromise) { MathJax.typesetPromise(); }
});
