// Injected by tests/docs/test_browser.py into a copy of every page of the built site: after
// the page's own scripts ran (Material wraps tables, KaTeX typesets), it measures images,
// tables and glyphs at the window size Chromium was given and appends the results to the
// DOM as JSON in a pre element with id tess-probe, which `chromium --dump-dom` prints.
(function () {
  // Characters drawn as the missing-glyph box: on a canvas, in the font family of the element
  // that shows them, a character renders exactly like an unassigned code point (U+10FFFD)
  // only when no font in that family list (nor the system fallback) has a glyph for it.
  function missingGlyphs() {
    var c = document.createElement("canvas"); c.width = 48; c.height = 48;
    var ctx = c.getContext("2d", {willReadFrequently: true});
    function draw(ch, font) {
      ctx.clearRect(0, 0, 48, 48); ctx.font = "32px " + font; ctx.fillStyle = "#000"; ctx.textBaseline = "top";
      ctx.fillText(ch, 4, 4);
      return Array.prototype.join.call(ctx.getImageData(0, 0, 48, 48).data, ",");
    }
    function ignorable(cp) {  // ASCII, spaces, zero-width and variation selectors draw nothing
      return cp <= 0x7e || cp === 0xa0 || cp === 0xad || (cp >= 0x2000 && cp <= 0x200f) ||
             (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x2060 && cp <= 0x206f) || (cp >= 0xfe00 && cp <= 0xfe0f);
    }
    var byFont = {};
    var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      var el = node.parentElement;
      if (!el || el.closest("script, style, noscript, #tess-probe")) continue;
      if (!el.getClientRects().length) continue;  // not rendered
      var font = getComputedStyle(el).fontFamily;
      var set = byFont[font] || (byFont[font] = {});
      Array.from(node.nodeValue).forEach(function (ch) { if (!ignorable(ch.codePointAt(0))) set[ch] = true; });
    }
    var out = [];
    Object.keys(byFont).forEach(function (font) {
      var tofu = draw(String.fromCodePoint(0x10fffd), font);
      Object.keys(byFont[font]).forEach(function (ch) {
        if (draw(ch, font) === tofu) out.push({ch: ch, cp: ch.codePointAt(0).toString(16), font: font});
      });
    });
    return out;
  }
  function probe() {
    var col = document.querySelector(".md-content") || document.body;
    var inner = document.querySelector(".md-content__inner") || col;
    var cr = inner.getBoundingClientRect();
    var out = {viewport: window.innerWidth, column: {left: cr.left, right: cr.right, width: cr.width},
               images: [], tables: [], glyphs: []};
    document.querySelectorAll("img").forEach(function (img) {
      out.images.push({src: img.getAttribute("src"), complete: img.complete, w: img.naturalWidth, h: img.naturalHeight,
                       shown: img.getBoundingClientRect().width});
    });
    inner.querySelectorAll("table").forEach(function (t, i) {
      var r = t.getBoundingClientRect(), wrap = t.closest(".md-typeset__scrollwrap") || t.parentElement;
      var first = t.rows && t.rows[0] ? t.rows[0].innerText.replace(/\s+/g, " ").slice(0, 80) : "";
      out.tables.push({index: i, head: first, width: r.width, left: r.left, right: r.right,
                       scrollWidth: t.scrollWidth, clientWidth: t.clientWidth,
                       wrapScroll: wrap.scrollWidth, wrapClient: wrap.clientWidth});
    });
    out.glyphs = missingGlyphs();
    var pre = document.createElement("pre"); pre.id = "tess-probe"; pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  window.addEventListener("load", function () { setTimeout(probe, 300); });
})();
