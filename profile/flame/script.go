package flame

// script is the SVG's embedded JavaScript: details on hover, click-to-zoom,
// search with highlight and matched share. Written for initprof (not derived
// from flamegraph.pl); it only reads the data-x/-w/-y attributes render writes.
const script = `"use strict";
var svg, frames, details, matchedtxt, unzoombtn, searchbtn, total, unit, fullW, pad = 10, fontW = 12 * 0.59;
var zoomed = null, term = null;
function init(evt) {
  // Once only: inline in an HTML page (htmlreport), the page calls init
  // too, since an inline <svg> need not fire its onload there.
  if (svg) return;
  svg = document.querySelector("svg");
  frames = Array.prototype.slice.call(document.querySelectorAll("g.f"));
  details = document.getElementById("details").firstChild;
  matchedtxt = document.getElementById("matched");
  unzoombtn = document.getElementById("unzoom");
  searchbtn = document.getElementById("search");
  var g = document.getElementById("frames");
  total = +g.getAttribute("data-total");
  unit = g.getAttribute("data-unit");
  fullW = +svg.getAttribute("width") - 2 * pad;
  frames.forEach(function (f) {
    f.addEventListener("mouseover", function () { details.nodeValue = title(f); });
    f.addEventListener("mouseout", function () { details.nodeValue = " "; });
    f.addEventListener("click", function () { zoom(f); });
  });
  unzoombtn.addEventListener("click", unzoom);
  searchbtn.addEventListener("click", searchPrompt);
  window.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "f") { e.preventDefault(); searchPrompt(); }
    if (e.key === "Escape") { if (term) { search(null); } else { unzoom(); } }
  });
  var q = new URLSearchParams(window.location.search).get("s");
  if (q) search(q);
}
function title(f) { return f.querySelector("title").textContent; }
function name(f) { var t = title(f); return t.substring(0, t.lastIndexOf(" (")); }
function orig(f) { return { x: +f.getAttribute("data-x"), w: +f.getAttribute("data-w"), y: +f.getAttribute("data-y") }; }
function place(f, x, w) {
  var r = f.querySelector("rect"), t = f.querySelector("text");
  r.setAttribute("x", x.toFixed(2)); r.setAttribute("width", w.toFixed(2));
  t.setAttribute("x", (x + 3).toFixed(2));
  var n = name(f), chars = Math.floor((w - 6) / fontW);
  t.textContent = chars < 3 ? "" : (n.length <= chars ? n : n.substring(0, chars - 2) + "..");
}
function zoom(f) {
  var z = orig(f), s = fullW / z.w;
  zoomed = f;
  unzoombtn.classList.remove("hide");
  frames.forEach(function (g) {
    var o = orig(g);
    var inside = o.x >= z.x - 0.01 && o.x + o.w <= z.x + z.w + 0.01;
    if (o.y > z.y) { // below: ancestors (or their siblings)
      if (o.x <= z.x + 0.01 && o.x + o.w >= z.x + z.w - 0.01) {
        g.classList.remove("hide"); g.style.opacity = "0.6"; place(g, pad, fullW);
      } else { g.classList.add("hide"); }
    } else if (inside) {
      g.classList.remove("hide"); g.style.opacity = ""; place(g, pad + (o.x - z.x) * s, o.w * s);
    } else { g.classList.add("hide"); }
  });
  if (term) search(term);
}
function unzoom() {
  zoomed = null;
  unzoombtn.classList.add("hide");
  frames.forEach(function (g) { var o = orig(g); g.classList.remove("hide"); g.style.opacity = ""; place(g, o.x, o.w); });
  if (term) search(term);
}
function searchPrompt() {
  if (term) { search(null); return; }
  var t = prompt("Search for a function (regular expression):", "");
  if (t) search(t);
}
function search(t) {
  term = t;
  var re = null;
  if (t) { try { re = new RegExp(t); } catch (e) { matchedtxt.textContent = "bad regular expression"; return; } }
  var spans = [];
  frames.forEach(function (g) {
    var r = g.querySelector("rect");
    if (r.getAttribute("data-fill") === null) r.setAttribute("data-fill", r.getAttribute("fill"));
    if (re && re.test(name(g))) {
      r.setAttribute("fill", "rgb(230,0,230)");
      var o = orig(g); spans.push([o.x, o.x + o.w]);
    } else { r.setAttribute("fill", r.getAttribute("data-fill")); }
  });
  if (!re) { matchedtxt.textContent = " "; searchbtn.textContent = "Search"; return; }
  // Matched share: union of the matching frames' extents, so nested matches count once.
  spans.sort(function (a, b) { return a[0] - b[0]; });
  var covered = 0, end = -1;
  spans.forEach(function (s) {
    if (s[0] >= end) { covered += s[1] - s[0]; end = s[1]; }
    else if (s[1] > end) { covered += s[1] - end; end = s[1]; }
  });
  matchedtxt.textContent = "Matched: " + (100 * covered / fullW).toFixed(1) + "%";
  searchbtn.textContent = "Reset Search";
}
`
