// The script of attention/inspection/views.py: a head view and a model view of attention
// weights, drawn from the JSON that lies beside it in the same root element. Plain ES5-level
// DOM code with no library and no network, so that it runs wherever HTML output may run a
// script: a saved file, JupyterLab, Notebook, VS Code, Colab, a Sphinx page.
(function () {
  "use strict";
  // The root is found from this script element, not by id: JupyterLab runs output scripts
  // before it attaches them to the page, where getElementById would find nothing.
  var script = document.currentScript;
  var root = script && script.closest ? script.closest(".attnview") : null;
  if (!root) {
    var waiting = document.querySelectorAll(".attnview:not([data-ready])");
    root = waiting[waiting.length - 1];
  }
  if (!root || root.getAttribute("data-ready")) { return; }
  var data = JSON.parse(root.querySelector("script.av-data").textContent);
  root.setAttribute("data-ready", "1");

  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#843c39",
    "#7b4173"];
  var LINES_WIDTH = 240;  // px between the two token columns of the head view

  function decode(b64) {
    var text = atob(b64), bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
    return bytes;
  }
  var sections = data.sections.map(function (s) {
    s.levels = decode(s.levels);      // [L, N, T, S] row-major, round(255 w)
    s.allowed = decode(s.allowed);    // [T, S], 1 where query t may attend key s
    s.keyPad = [];                    // keys no query may see (padding): always hatched
    s.queryPad = [];                  // queries that see no key
    for (var k = 0; k < s.S; k++) {
      var any = 0;
      for (var q = 0; q < s.T; q++) { any |= s.allowed[q * s.S + k]; }
      s.keyPad.push(!any);
    }
    for (var t = 0; t < s.T; t++) {
      var seen = 0;
      for (var j = 0; j < s.S; j++) { seen |= s.allowed[t * s.S + j]; }
      s.queryPad.push(!seen);
    }
    return s;
  });
  var state = { section: 0, view: data.view, layer: 0, heads: [], hover: null, zoom: null };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function color(n) { return COLORS[n % COLORS.length]; }
  function current() { return sections[state.section]; }
  function level(s, l, n, t, k) { return s.levels[((l * s.N + n) * s.T + t) * s.S + k]; }
  function selectedHeads() {
    var out = [];
    state.heads.forEach(function (on, n) { if (on) { out.push(n); } });
    return out;
  }
  function labelStep(count, rowHeight) {
    // every k-th label: at most maxLabels per column, and never closer than 12 px
    return Math.max(1, Math.ceil(count / data.maxLabels), Math.ceil(12 / rowHeight));
  }

  // --- the page's skeleton --------------------------------------------------------------
  var controls = el("div", "av-controls");
  var sectionGroup = el("div", "av-group av-sections");
  var viewGroup = el("div", "av-group av-views");
  var layerLabel = el("label", "av-group", "layer ");
  var layerSelect = el("select", "av-layer");
  var headGroup = el("div", "av-group av-heads");
  var info = el("div", "av-info");
  var headView = el("div", "av-head-view");
  var modelView = el("div", "av-model-view");
  layerLabel.appendChild(layerSelect);
  controls.appendChild(sectionGroup);
  controls.appendChild(viewGroup);
  controls.appendChild(layerLabel);
  controls.appendChild(headGroup);
  root.appendChild(controls);
  root.appendChild(info);
  root.appendChild(headView);
  root.appendChild(modelView);

  sections.forEach(function (s, i) {
    var button = el("button", "av-section", s.name);
    button.type = "button";
    button.setAttribute("data-section", i);
    button.addEventListener("click", function () { setSection(i); });
    sectionGroup.appendChild(button);
  });
  if (sections.length < 2) { sectionGroup.classList.add("av-hidden"); }
  [["head", "head view"], ["model", "model view"]].forEach(function (pair) {
    var button = el("button", "av-view", pair[1]);
    button.type = "button";
    button.setAttribute("data-view", pair[0]);
    button.addEventListener("click", function () { state.view = pair[0]; state.hover = null; render(); });
    viewGroup.appendChild(button);
  });
  layerSelect.addEventListener("change", function () {
    state.layer = Number(layerSelect.value);
    state.hover = null;
    render();
  });

  function setSection(i) {
    var s = sections[i];
    state.section = i;
    state.layer = Math.min(state.layer, s.L - 1);
    state.heads = [];
    for (var n = 0; n < s.N; n++) { state.heads.push(true); }
    state.hover = null;
    state.zoom = null;
    build();
  }

  // --- controls that depend on the section ----------------------------------------------
  function build() {
    var s = current();
    layerSelect.innerHTML = "";
    for (var l = 0; l < s.L; l++) {
      var option = el("option", "", String(l));
      option.value = String(l);
      layerSelect.appendChild(option);
    }
    headGroup.innerHTML = "";
    headGroup.appendChild(el("span", "", "heads"));
    for (var n = 0; n < s.N; n++) {
      (function (n) {
        var button = el("button", "av-head", String(n));
        button.type = "button";
        button.title = "head " + n + ": click to show or hide, double-click to show only it";
        button.setAttribute("data-head", n);
        button.style.borderColor = color(n);
        button.style.background = color(n);
        button.addEventListener("click", function () { state.heads[n] = !state.heads[n]; render(); });
        button.addEventListener("dblclick", function () {
          state.heads = state.heads.map(function (_, m) { return m === n; });
          render();
        });
        headGroup.appendChild(button);
      })(n);
    }
    buildHeadView();
    buildModelView();
    render();
  }

  // --- head view --------------------------------------------------------------------------
  var hv = {};
  function buildHeadView() {
    var s = current();
    headView.innerHTML = "";
    var rowHeight = Math.max(5, Math.min(22, Math.floor(720 / Math.max(s.T, s.S))));
    hv.rowHeight = rowHeight;
    var titles = el("div", "av-col-titles");
    var columns = el("div", "av-columns");
    hv.query = el("div", "av-tokens av-query");
    hv.key = el("div", "av-tokens av-key");
    hv.svg = document.createElementNS(SVG, "svg");
    hv.svg.setAttribute("class", "av-lines");
    hv.svg.setAttribute("width", LINES_WIDTH);
    hv.svg.setAttribute("height", Math.max(s.T, s.S) * rowHeight);
    hv.queryTokens = fillTokens(hv.query, s.queryTokens, "query", s.queryPad, rowHeight);
    hv.keyTokens = fillTokens(hv.key, s.keyTokens, "key", s.keyPad, rowHeight);
    columns.appendChild(hv.query);
    columns.appendChild(hv.svg);
    columns.appendChild(hv.key);
    headView.appendChild(titles);
    headView.appendChild(columns);
    // the column titles line up with the columns once these have their widths
    var left = el("div", "", "queries (" + s.T + ")");
    var right = el("div", "", "keys (" + s.S + ")");
    titles.appendChild(left);
    titles.appendChild(right);
    hv.titles = [left, right];
  }

  function fillTokens(column, tokens, side, pad, rowHeight) {
    var step = labelStep(tokens.length, rowHeight);
    column.style.setProperty("--av-font", Math.min(13, Math.max(10, rowHeight - 3)) + "px");
    return tokens.map(function (token, i) {
      var node = el("div", "av-token");
      node.setAttribute("data-side", side);
      node.setAttribute("data-index", i);
      node.style.height = rowHeight + "px";
      node.title = side + " " + i + ": " + token;
      node.appendChild(el("span", "av-bar"));
      node.appendChild(el("span", "av-label", token));
      if (i % step !== 0) { node.classList.add("av-thin"); }
      if (pad[i]) { node.classList.add("av-pad"); }
      node.addEventListener("mouseenter", function () { state.hover = { side: side, index: i }; drawHeadView(); });
      node.addEventListener("mouseleave", function () { state.hover = null; drawHeadView(); });
      column.appendChild(node);
      return node;
    });
  }

  function drawHeadView() {
    var s = current(), l = state.layer, heads = selectedHeads(), hover = state.hover;
    var h = hv.rowHeight, fragment = document.createDocumentFragment();
    // Without a hover every query's lines are drawn, fainter ones left out (data.minLevel);
    // a hovered token's lines are all drawn, however faint.
    var minLevel = hover ? 1 : data.minLevel;
    var queries = [], keys = [], t, k;
    for (t = 0; t < s.T; t++) { if (!hover || hover.side !== "query" || hover.index === t) { queries.push(t); } }
    for (k = 0; k < s.S; k++) { if (!hover || hover.side !== "key" || hover.index === k) { keys.push(k); } }
    heads.forEach(function (n) {
      queries.forEach(function (t) {
        keys.forEach(function (k) {
          if (!s.allowed[t * s.S + k]) { return; }
          var v = level(s, l, n, t, k);
          if (v < minLevel) { return; }
          var line = document.createElementNS(SVG, "line");
          line.setAttribute("class", "av-line");
          line.setAttribute("x1", 0);
          line.setAttribute("y1", (t + 0.5) * h);
          line.setAttribute("x2", LINES_WIDTH);
          line.setAttribute("y2", (k + 0.5) * h);
          line.setAttribute("stroke", color(n));
          line.setAttribute("stroke-width", hover ? 2 : 1.5);
          line.setAttribute("stroke-opacity", (v / 255).toFixed(3));
          line.setAttribute("data-head", n);
          line.setAttribute("data-query", t);
          line.setAttribute("data-key", k);
          fragment.appendChild(line);
        });
      });
    });
    while (hv.svg.firstChild) { hv.svg.removeChild(hv.svg.firstChild); }
    hv.svg.appendChild(fragment);

    // tokens: the hovered one, the other side's bars (mean weight of the selected heads)
    // and the tokens the hovered one may not attend (or be attended by)
    var others = hover ? (hover.side === "query" ? hv.keyTokens : hv.queryTokens) : [];
    hv.queryTokens.concat(hv.keyTokens).forEach(function (node) {
      node.classList.remove("av-active", "av-masked");
      node.firstChild.style.width = "0";
    });
    var ranked = [];
    if (hover) {
      (hover.side === "query" ? hv.queryTokens : hv.keyTokens)[hover.index].classList.add("av-active");
      others.forEach(function (node, j) {
        var tq = hover.side === "query" ? hover.index : j, kk = hover.side === "query" ? j : hover.index;
        if (!s.allowed[tq * s.S + kk]) { node.classList.add("av-masked"); return; }
        var sum = 0;
        heads.forEach(function (n) { sum += level(s, l, n, tq, kk); });
        var mean = heads.length ? sum / heads.length / 255 : 0;
        node.firstChild.style.width = (100 * mean).toFixed(1) + "%";
        ranked.push([mean, j]);
      });
    }
    hv.titles[0].style.width = hv.query.offsetWidth + LINES_WIDTH + "px";
    if (!hover) {
      info.textContent = "layer " + l + ", heads " + (heads.length ? heads.join(", ") : "none") +
        ": hover a token to see only its lines; click a head to show or hide it, " +
        "double-click to show only it.";
      return;
    }
    ranked.sort(function (a, b) { return b[0] - a[0]; });
    var names = hover.side === "query" ? s.keyTokens : s.queryTokens;
    var own = (hover.side === "query" ? s.queryTokens : s.keyTokens)[hover.index];
    info.textContent = hover.side + " " + hover.index + " \u201c" + own + "\u201d " +
      (hover.side === "query" ? "attends" : "is attended by") + " (mean of heads " +
      heads.join(", ") + "): " + ranked.slice(0, 3).map(function (r) {
        return "\u201c" + names[r[1]] + "\u201d " + r[0].toFixed(2);
      }).join(", ");
  }

  // --- model view -------------------------------------------------------------------------
  var mv = {};
  function heatmap(canvas, s, l, n) {
    // white to dark blue by weight; masked entries hatched grey
    canvas.width = s.S;
    canvas.height = s.T;
    var context = canvas.getContext("2d"), image = context.createImageData(s.S, s.T);
    for (var t = 0; t < s.T; t++) {
      for (var k = 0; k < s.S; k++) {
        var p = 4 * (t * s.S + k), r, g, b;
        if (!s.allowed[t * s.S + k]) {
          r = g = b = (t + k) % 2 === 0 ? 190 : 235;
        } else {
          var w = level(s, l, n, t, k) / 255;
          r = Math.round(255 - w * 247);
          g = Math.round(255 - w * 207);
          b = Math.round(255 - w * 148);
        }
        image.data[p] = r; image.data[p + 1] = g; image.data[p + 2] = b; image.data[p + 3] = 255;
      }
    }
    context.putImageData(image, 0, 0);
  }

  function buildModelView() {
    var s = current();
    modelView.innerHTML = "";
    var longest = Math.max(s.T, s.S);
    var cell = Math.max(28, Math.min(72, Math.floor(900 / s.N) - 6));
    var grid = el("div", "av-grid");
    grid.style.gridTemplateColumns = "auto repeat(" + s.N + ", " + cell + "px)";
    grid.appendChild(el("span", "av-axis", "layer \\ head"));
    for (var n = 0; n < s.N; n++) { grid.appendChild(el("span", "av-axis", String(n))); }
    mv.cells = [];
    for (var l = 0; l < s.L; l++) {
      grid.appendChild(el("span", "av-axis", String(l)));
      for (n = 0; n < s.N; n++) {
        (function (l, n) {
          var canvas = el("canvas", "av-cell");
          canvas.setAttribute("data-layer", l);
          canvas.setAttribute("data-head", n);
          canvas.title = "layer " + l + ", head " + n + ": click to enlarge";
          canvas.style.width = Math.round(cell * s.S / longest) + "px";
          canvas.style.height = Math.round(cell * s.T / longest) + "px";
          heatmap(canvas, s, l, n);
          canvas.addEventListener("click", function () { state.zoom = { layer: l, head: n }; render(); });
          grid.appendChild(canvas);
          mv.cells.push(canvas);
        })(l, n);
      }
    }
    modelView.appendChild(grid);
    modelView.appendChild(mv.zoom = el("div", "av-zoom av-hidden"));
  }

  function drawZoom() {
    var s = current(), z = state.zoom;
    mv.cells.forEach(function (canvas) {
      var on = z && Number(canvas.getAttribute("data-layer")) === z.layer &&
        Number(canvas.getAttribute("data-head")) === z.head;
      canvas.classList.toggle("av-selected", !!on);
    });
    mv.zoom.innerHTML = "";
    mv.zoom.classList.toggle("av-hidden", !z);
    if (!z) {
      info.textContent = s.name + ": " + s.L + " layer(s) by " + s.N + " head(s); click a map to enlarge it.";
      return;
    }
    var cellPx = Math.max(3, Math.min(22, Math.floor(480 / Math.max(s.T, s.S))));
    var header = el("div", "av-controls");
    header.appendChild(el("b", "av-zoom-title", s.name + ", layer " + z.layer + ", head " + z.head));
    var open = el("button", "av-open-head", "open in head view");
    open.type = "button";
    open.addEventListener("click", function () {
      state.view = "head";
      state.layer = z.layer;
      state.heads = state.heads.map(function (_, m) { return m === z.head; });
      render();
    });
    header.appendChild(open);
    var body = el("div", "av-zoom-body");
    var rows = el("div", "av-zoom-rows"), cols = el("div", "av-zoom-cols");
    var canvas = el("canvas", "av-zoom-canvas");
    canvas.style.width = s.S * cellPx + "px";
    canvas.style.height = s.T * cellPx + "px";
    heatmap(canvas, s, z.layer, z.head);
    var rowStep = labelStep(s.T, cellPx), colStep = labelStep(s.S, cellPx);
    s.queryTokens.forEach(function (token, t) {
      var tick = el("div", "av-tick", t % rowStep === 0 ? token : "");
      tick.style.height = cellPx + "px";
      tick.style.lineHeight = cellPx + "px";
      rows.appendChild(tick);
    });
    s.keyTokens.forEach(function (token, k) {
      var tick = el("div", "av-tick", k % colStep === 0 ? token : "");
      tick.style.width = cellPx + "px";
      cols.appendChild(tick);
    });
    canvas.addEventListener("mousemove", function (event) {
      var box = canvas.getBoundingClientRect();
      var k = Math.min(s.S - 1, Math.floor((event.clientX - box.left) / box.width * s.S));
      var t = Math.min(s.T - 1, Math.floor((event.clientY - box.top) / box.height * s.T));
      var what = s.allowed[t * s.S + k] ? (level(s, z.layer, z.head, t, k) / 255).toFixed(3) : "masked";
      info.textContent = "query " + t + " \u201c" + s.queryTokens[t] + "\u201d \u2192 key " + k +
        " \u201c" + s.keyTokens[k] + "\u201d: " + what;
    });
    body.appendChild(rows);
    body.appendChild(canvas);
    body.appendChild(cols);
    mv.zoom.appendChild(header);
    mv.zoom.appendChild(body);
    info.textContent = s.name + ", layer " + z.layer + ", head " + z.head +
      ": rows are queries, columns keys; point at a cell to read its weight.";
  }

  // --- everything that follows the state --------------------------------------------------
  function render() {
    sectionGroup.querySelectorAll("button").forEach(function (b, i) {
      b.setAttribute("aria-pressed", String(i === state.section));
    });
    viewGroup.querySelectorAll("button").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-view") === state.view));
    });
    headGroup.querySelectorAll("button").forEach(function (b, n) {
      b.setAttribute("aria-pressed", String(!!state.heads[n]));
    });
    layerSelect.value = String(state.layer);
    var head = state.view === "head";
    headView.classList.toggle("av-hidden", !head);
    modelView.classList.toggle("av-hidden", head);
    layerLabel.classList.toggle("av-hidden", !head);
    headGroup.classList.toggle("av-hidden", !head);
    if (head) { drawHeadView(); } else { drawZoom(); }
  }

  setSection(0);
})();
