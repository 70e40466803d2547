// Typeset the math of pymdownx.arithmatex (generic mode) with the KaTeX shipped in
// assets/katex/ — no network, so the site works offline (file:// included).
(function () {
  var delimiters = [
    { left: "\\(", right: "\\)", display: false },
    { left: "\\[", right: "\\]", display: true },
  ];
  function render(root) {
    var nodes = root.querySelectorAll(".arithmatex");
    for (var i = 0; i < nodes.length; i++) {
      // throwOnError: false keeps a bad formula visible (as .katex-error) instead of
      // aborting the page; the docs tests assert there are none.
      renderMathInElement(nodes[i], { delimiters: delimiters, throwOnError: false });
    }
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(function () { render(document.body); });
  } else {
    document.addEventListener("DOMContentLoaded", function () { render(document.body); });
  }
})();
