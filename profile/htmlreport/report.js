"use strict";
// report.js draws what is not static: the waterfall of the run the reader
// picks, and the flamegraph picker. Every figure it shows comes from the
// JSON block the Go side wrote (profile/htmlreport); it fetches nothing.
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);

  function color(name) { // FNV-1a, as colorOf in htmlreport.go
    var h = 2166136261;
    for (var i = 0; i < name.length; i++) { h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0; }
    return "hsl(" + (h % 360) + ",60%,62%)";
  }
  function fmt(ns) { // profile.FormatDuration
    var a = Math.abs(ns);
    if (a < 1e3) return ns.toFixed(0) + " ns";
    if (a < 1e6) return (ns / 1e3).toFixed(1) + " µs";
    if (a < 1e9) return (ns / 1e6).toFixed(2) + " ms";
    return (ns / 1e9).toFixed(3) + " s";
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function niceStep(span) {
    var raw = span / 6, p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
  }

  // One scale for every build's waterfall, so side-by-side builds compare
  // by eye: the longest run end over all builds.
  var scaleNs = 1;
  data.builds.forEach(function (b) {
    (b.runs || []).forEach(function (r) {
      scaleNs = Math.max(scaleNs, r.init || 0);
      r.procs.forEach(function (p) { p.spans.forEach(function (s) { scaleNs = Math.max(scaleNs, s[1] + s[2]); }); });
    });
  });

  function drawRun(bi, ri) {
    var box = document.getElementById("wf-" + bi);
    var r = data.builds[bi].runs[ri];
    box.textContent = "";
    if (!r) { box.appendChild(el("p", "muted", "no runs")); return; }
    var pc = function (ns) { return (100 * ns / scaleNs).toFixed(3) + "%"; };
    r.procs.forEach(function (p) {
      var row = el("div", "row"), track = el("div", "track");
      row.appendChild(el("div", "name", p.name + (p.role === "runtime" ? " (runtime)" : "")));
      var crit = {};
      (p.crit || []).forEach(function (i) { crit[i] = true; });
      p.spans.forEach(function (s, i) {
        var d = el("div", "span" + (crit[i] ? " crit" : ""));
        d.style.left = pc(s[1]);
        d.style.width = pc(s[2]);
        d.style.background = color(s[0]);
        d.title = p.name + " · " + s[0] + ": " + fmt(s[2]) + " (at +" + fmt(s[1]) + ")" + (crit[i] ? " · critical path" : "");
        if (s[2] / scaleNs > 0.06) d.textContent = s[0];
        track.appendChild(d);
      });
      if (r.gate > 0) {
        var g = el("div", "gate");
        g.style.left = pc(r.gate);
        g.title = "last register: " + r.gateBy + " at +" + fmt(r.gate) + "; the runtime starts after it";
        track.appendChild(g);
      }
      row.appendChild(track);
      box.appendChild(row);
    });
    var axis = el("div", "axis"), step = niceStep(scaleNs);
    for (var t = 0; t <= scaleNs * 1.0001; t += step) {
      var s = el("span", "", fmt(t));
      s.style.left = pc(t);
      axis.appendChild(s);
    }
    box.appendChild(axis);
    var cap = "run " + r.i + ": Init Duration " + (r.init ? fmt(r.init) : "n/a") + ", ended by " + (r.ended || "?");
    if (r.gateBy) cap += "; last to register: " + r.gateBy + " at +" + fmt(r.gate);
    if (r.host || r.arch) cap += "; " + [r.host, r.arch].filter(Boolean).join(", ");
    box.appendChild(el("div", "cap", cap));
  }

  Array.prototype.forEach.call(document.querySelectorAll("select.wf-run"), function (sel) {
    var bi = +sel.getAttribute("data-build"), b = data.builds[bi];
    (b.runs || []).forEach(function (r, ri) {
      var o = el("option", "", "run " + r.i + " — " + (r.init ? fmt(r.init) : "n/a") + (ri === b.median ? " (median)" : ""));
      o.value = ri;
      sel.appendChild(o);
    });
    sel.value = b.median;
    sel.addEventListener("change", function () { drawRun(bi, +sel.value); });
    drawRun(bi, b.median);
  });

  // Flamegraphs: each SVG (as profile/flame wrote it, with its own zoom
  // and search script) is shown inline in an iframe's srcdoc, which shares
  // this page's origin even when it is opened from file:// (a blob: or
  // data: URL would not), so the search box can call the graph's search().
  var pick = document.getElementById("flame-pick");
  if (!pick) return;
  var frame = document.getElementById("flame-frame"), box = document.getElementById("flame-search");
  var matched = document.getElementById("flame-matched"), graphs = [];
  data.builds.forEach(function (b) {
    (b.flames || []).forEach(function (f) { graphs.push({ label: (data.builds.length > 1 ? b.name + ": " : "") + f.name, svg: f.svg }); });
  });
  (data.diffs || []).forEach(function (f) { graphs.push({ label: "diff " + f.name, svg: f.svg }); });
  graphs.forEach(function (g, i) { var o = el("option", "", g.label); o.value = i; pick.appendChild(o); });
  function search() {
    try {
      var w = frame.contentWindow;
      if (w && typeof w.search === "function") {
        w.search(box.value || null);
        var m = w.document.getElementById("matched");
        matched.textContent = m ? m.textContent : "";
      }
    } catch (e) {
      matched.textContent = "search inside the graph (its Search button): " + e.message;
    }
  }
  function show(i) {
    frame.srcdoc = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{margin:0}</style></head><body>" +
      graphs[i].svg + "<script>init();<\/script></body></html>";
  }
  frame.addEventListener("load", function () { if (box.value) search(); });
  pick.addEventListener("change", function () { show(+pick.value); });
  box.addEventListener("input", search);
  if (graphs.length) show(0);
})();
