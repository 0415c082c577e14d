// fstmatch map explorer: plain JS, no dependencies, works from file:// (data arrive as <script> files).
// Everything taken from the data reaches the page through textContent or data-* attributes only.
"use strict";

(function () {
  const S = {
    index: null, frames: {}, waiting: {}, list: [], shown: 0, pos: -1, model: null, comp: "raw",
    t: 0, img: {}, detModel: null, timing: { firstView: null, switches: [] },
  };
  const PAGE = 240;
  const $ = (id) => document.getElementById(id);

  function el(tag, opts, text) {
    const e = document.createElement(tag);
    if (opts) for (const [k, v] of Object.entries(opts)) {
      if (k === "class") e.className = v; else if (k === "data") Object.assign(e.dataset, v); else e.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmt(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return "n/a";
    if (x === 0) return "0";
    const a = Math.abs(x);
    return a >= 1e-3 && a < 1e5 ? x.toPrecision(4) : x.toExponential(3);
  }

  function decode(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  // ---------------------------------------------------------------- metrics (as fstmatch.hypotheses)
  function unit(v) {
    let n = 0;
    for (const x of v) n += x * x;
    n = Math.sqrt(n);
    const out = new Float64Array(v.length);
    if (n > 0) for (let i = 0; i < v.length; i++) out[i] = v[i] / n;
    return out;
  }

  // The reference's rule (metrics.top_mask): tau = sorted(relu(u))[floor(G^2 t)], keep u > tau.
  function topMask(u, t) {
    const cells = u.length;
    const k = Math.min(Math.floor(cells * t + 1e-9), cells - 1);
    const ranked = Array.from(u, (x) => Math.max(x, 0)).sort((a, b) => a - b);
    const tau = ranked[k];
    return Array.from(u, (x) => x > tau);
  }

  function unionMask(s, t, th) {
    const us = unit(s), ut = unit(t);
    return topMask(us.map((x, i) => Math.max(x, ut[i])), th);
  }

  // ---------------------------------------------------------------- loading
  window.FSTX = {
    index(data) { S.index = data; start(); },
    frame(args) {
      const [k, data] = args;
      const maps = {};
      for (const [m, comps] of Object.entries(data.maps)) {
        maps[m] = {};
        for (const [c, pair] of Object.entries(comps)) maps[m][c] = { v: decode(pair[0]), e: decode(pair[1]) };
      }
      const fr = data.fractions ? Object.fromEntries(Object.entries(data.fractions).map(([r, b]) => [r, decode(b)])) : null;
      S.frames[k] = { maps, fractions: fr };
      (S.waiting[k] || []).forEach((f) => f[0](S.frames[k]));
      delete S.waiting[k];
    },
    state: S,
    open: (pos) => openFrame(pos),  // for scripted checks (tests, benchmarks/explorer_bench.py)
    unionMask, topMask,
  };

  function loadFrame(k) {
    if (S.frames[k]) return Promise.resolve(S.frames[k]);
    return new Promise((resolve, reject) => {
      const first = !S.waiting[k];
      (S.waiting[k] = S.waiting[k] || []).push([resolve, reject]);
      if (!first) return;
      const tag = el("script", { src: `data/f/${k}.js` });
      tag.onerror = () => { (S.waiting[k] || []).forEach((f) => f[1](new Error(`frame ${k}: data missing`))); delete S.waiting[k]; };
      document.head.appendChild(tag);
    });
  }

  function image(src) {
    if (!S.img[src]) {
      const im = new Image();
      im.src = src;
      S.img[src] = im.decode().then(() => im, () => null);
    }
    return S.img[src];
  }

  window.addEventListener("error", (e) => {
    if (e.target && e.target.id === "index-script") $("status").textContent = "data/index.js could not be loaded";
  }, true);

  // ---------------------------------------------------------------- gallery
  const SORTS = [
    ["order", "run order"], ["q", "per-image Q (H1)"], ["h2", "paired − unpaired Q (H2)"],
    ["delta", "δ of the model (H3)"], ["score", "detector score"], ["lift", "ground-truth lift of the model"],
  ];

  function fill(select, values, labels) {
    select.replaceChildren(...values.map((v, i) => el("option", { value: v }, labels ? labels[i] : v)));
  }

  function start() {
    const ix = S.index;
    $("run").textContent = `${ix.title}: ${ix.frames.length} frames, ${ix.models.length} models, grid ${ix.grid}×${ix.grid}`;
    S.detModel = ix.models.includes("det") ? "det" : (ix.models.find((m) => m.startsWith("det")) || null);
    S.model = S.detModel || ix.models[0];
    const uniq = (f) => [...new Set(ix.frames.map(f).filter((x) => x !== null && x !== undefined))].sort();
    fill($("f-method"), ["", ...uniq((f) => f.method)], ["all", ...uniq((f) => f.method)]);
    const comps = ix.compressions.filter((c) => ix.frames.some((f) => f.v[c]));
    fill($("f-comp"), [...comps, ""], [...comps, "all"]);
    fill($("f-split"), ["", ...uniq((f) => f.split)], ["all", ...uniq((f) => f.split)]);
    fill($("f-model"), ix.models);
    $("f-model").value = S.model;
    fill($("f-sort"), SORTS.map((s) => s[0]), SORTS.map((s) => s[1]));
    for (const id of ["f-method", "f-comp", "f-split", "f-model", "f-smin", "f-smax", "f-sort", "f-desc"]) {
      $(id).addEventListener("change", applyFilters);
    }
    $("more").addEventListener("click", () => renderGallery(S.shown + PAGE));
    const t = $("o-t");
    t.max = String(ix.thresholds.length - 1);
    const def = ix.thresholds.findIndex((x) => Math.abs(x - 0.8) < 1e-9);
    S.t = def >= 0 ? def : 0;
    t.value = String(S.t);
    t.addEventListener("input", () => { S.t = Number(t.value); drawFrame(); });
    for (const id of ["o-grid", "o-union", "o-detonly", "o-donor", "o-trace", "o-scale"]) $(id).addEventListener("change", drawFrame);
    $("back").addEventListener("click", showGallery);
    $("prev").addEventListener("click", () => step(-1));
    $("next").addEventListener("click", () => step(1));
    document.addEventListener("keydown", onKey);
    const main = $("main");
    main.addEventListener("mousemove", onHover);
    main.addEventListener("mouseleave", () => { $("tip").hidden = true; });
    drawColorbar();
    applyFilters();
    requestAnimationFrame(() => {
      S.timing.firstView = performance.now();
      $("status").textContent = `ready in ${Math.round(S.timing.firstView)} ms`;
    });
  }

  function sortValue(item, key, model) {
    const f = S.index.frames[item.k], v = f.v[item.comp];
    switch (key) {
      case "q": return v.q;
      case "h2": return item.comp === "raw" ? f.h2 : null;
      case "delta": return f.delta[model];
      case "score": return S.detModel && v.score[S.detModel] ? v.score[S.detModel][0] : null;
      case "lift": return v.lift[model];
      default: return null;
    }
  }

  function applyFilters() {
    const ix = S.index;
    const method = $("f-method").value, comp = $("f-comp").value, split = $("f-split").value;
    const lo = Number($("f-smin").value), hi = Number($("f-smax").value), model = $("f-model").value;
    const scoreFilter = lo > 0 || hi < 1;
    const items = [];
    ix.frames.forEach((f, k) => {
      if ((method && f.method !== method) || (split && f.split !== split)) return;
      for (const c of ix.compressions) {
        const v = f.v[c];
        if (!v || (comp && c !== comp)) continue;
        const s = v.score[model];
        if (scoreFilter && (!s || s[0] < lo || s[0] > hi)) continue;
        items.push({ k, comp: c });
      }
    });
    const key = $("f-sort").value, sign = $("f-desc").checked ? -1 : 1;
    if (key !== "order") {
      for (const it of items) it.sv = sortValue(it, key, model);
      items.sort((a, b) => (a.sv === null || a.sv === undefined) - (b.sv === null || b.sv === undefined)
        || sign * ((a.sv ?? 0) - (b.sv ?? 0)) || a.k - b.k);
    }
    S.list = items;
    S.sortKey = key;
    const frames = new Set(items.map((i) => i.k)).size;
    const counts = $("counts");
    counts.textContent = `${items.length} maps shown (${frames} of ${ix.frames.length} frames)`;
    counts.dataset.items = String(items.length);
    counts.dataset.frames = String(frames);
    renderGallery(PAGE);
  }

  function renderGallery(n) {
    const g = $("gallery");
    const upto = Math.min(n, S.list.length);
    if (upto < S.shown || S.shown === 0 || n === PAGE) { g.replaceChildren(); S.shown = 0; }
    const frag = document.createDocumentFragment();
    for (let i = S.shown; i < upto; i++) {
      const it = S.list[i], f = S.index.frames[it.k];
      const card = el("div", { class: "card", tabindex: "0", data: { pos: String(i), k: String(it.k), comp: it.comp } });
      card.appendChild(el("img", { src: `img/${it.k}_${it.comp === "raw" ? "t" : it.comp}.jpg`, loading: "lazy", alt: "" }));
      card.appendChild(el("div", { class: "id" }, `${f.method} ${f.video} #${f.frame} · ${it.comp}`));
      const sv = S.sortKey !== "order" ? it.sv : f.v[it.comp].q;
      card.appendChild(el("div", { class: "metric" }, `${S.sortKey !== "order" ? S.sortKey : "q"} ${fmt(sv)}`));
      card.addEventListener("click", () => openFrame(i, true));
      card.addEventListener("keydown", (e) => { if (e.key === "Enter") openFrame(i, true); });
      frag.appendChild(card);
    }
    g.appendChild(frag);
    S.shown = upto;
    $("more").hidden = S.shown >= S.list.length;
  }

  function showGallery() {
    $("frame-view").hidden = true;
    $("gallery-view").hidden = false;
    $("tip").hidden = true;
  }

  // ---------------------------------------------------------------- frame view
  // fromGallery: start with the gallery's model; otherwise keep the frame view's.
  async function openFrame(pos, fromGallery) {
    if (pos < 0 || pos >= S.list.length) return;
    const t0 = performance.now();
    if (fromGallery) { S.model = $("f-model").value; S.overlayOff = false; }
    S.pos = pos;
    const it = S.list[pos];
    S.comp = it.comp;
    $("gallery-view").hidden = true;
    $("frame-view").hidden = false;
    try {
      await loadFrame(it.k);
    } catch (err) {
      $("status").textContent = err.message;
      return;
    }
    if (S.pos !== pos) return;  // the user moved on meanwhile
    await drawFrame();
    S.timing.switches.push(performance.now() - t0);
    document.body.dataset.frame = String(it.k);
    document.body.dataset.comp = S.comp;
    for (const d of [-1, 1]) {  // prefetch the neighbours
      const nb = S.list[pos + d];
      if (nb) loadFrame(nb.k).then(() => image(`img/${nb.k}_${nb.comp}.jpg`), () => {});
    }
  }

  function step(d) { if (!$("frame-view").hidden) openFrame(Math.max(0, Math.min(S.list.length - 1, S.pos + d))); }

  function cycle(list, cur, d) { return list[(list.indexOf(cur) + d + list.length) % list.length]; }

  function onKey(e) {
    if ($("frame-view").hidden || e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    const cur = current();
    if (e.key === "ArrowRight") step(1);
    else if (e.key === "ArrowLeft") step(-1);
    else if (e.key === "Escape") showGallery();
    else if (e.key === "m" || e.key === "M") { S.overlayOff = false; S.model = cycle(cur.v.models, S.model, e.key === "m" ? 1 : -1); drawFrame(); }
    else if (e.key === "c") { S.comp = cycle(Object.keys(cur.f.v), S.comp, 1); drawFrame(); }
    else return;
    e.preventDefault();
  }

  function current() {
    const it = S.list[S.pos], f = S.index.frames[it.k];
    return { it, f, v: f.v[S.comp], data: S.frames[it.k] };
  }

  function sharedScale(data) {
    let m = 0;
    for (const comps of Object.values(data.maps)) for (const mp of Object.values(comps)) for (const x of mp.v) m = Math.max(m, Math.abs(x));
    return m;
  }

  function scaleOf(map, data) {
    if ($("o-scale").value === "shared") return sharedScale(data);
    let m = 0;
    for (const x of map.v) m = Math.max(m, Math.abs(x));
    return m;
  }

  // Diverging map centred at 0: blue (negative) - transparent - red (positive).
  function cellColour(x, scale) {
    const a = scale > 0 ? Math.min(1, Math.abs(x) / scale) : 0;
    const [r, g, b] = x >= 0 ? [200, 20, 30] : [20, 80, 200];
    return `rgba(${r},${g},${b},${(0.75 * a).toFixed(3)})`;
  }

  function drawColorbar() {
    const c = $("colorbar"), ctx = c.getContext("2d");
    for (let i = 0; i < c.width; i++) {
      const x = (i / (c.width - 1)) * 2 - 1;
      ctx.fillStyle = "#fff";
      ctx.fillRect(i, 0, 1, c.height);
      ctx.fillStyle = cellColour(x, 1);
      ctx.fillRect(i, 0, 1, c.height);
    }
  }

  async function paint(canvas, k, comp, map, scale, opts) {
    const ctx = canvas.getContext("2d"), W = canvas.width, G = S.index.grid, cell = W / G;
    const face = await image(`img/${k}_${comp}.jpg`);
    ctx.clearRect(0, 0, W, W);
    if (face) ctx.drawImage(face, 0, 0, W, W);
    if (map) {
      for (let i = 0; i < G; i++) for (let j = 0; j < G; j++) {
        ctx.fillStyle = cellColour(map.v[i * G + j], scale);
        ctx.fillRect(j * cell, i * cell, cell, cell);
      }
    }
    for (const region of ["donor", "trace"]) {  // above the map, so they show on any colour
      if (opts[region]) {
        const m = await image(`img/${k}_${region}.png`);
        if (m) ctx.drawImage(m, 0, 0, W, W);
      }
    }
    if (opts.grid) {
      ctx.strokeStyle = "rgba(255,255,255,0.35)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let i = 1; i < G; i++) { ctx.moveTo(i * cell, 0); ctx.lineTo(i * cell, W); ctx.moveTo(0, i * cell); ctx.lineTo(W, i * cell); }
      ctx.stroke();
    }
    const outline = (mask, colour, dash) => {
      ctx.strokeStyle = colour;
      ctx.lineWidth = Math.max(1.5, cell / 12);
      ctx.setLineDash(dash);
      mask.forEach((on, idx) => { if (on) ctx.strokeRect((idx % G) * cell + 1.5, Math.floor(idx / G) * cell + 1.5, cell - 3, cell - 3); });
      ctx.setLineDash([]);
    };
    if (opts.union) outline(opts.union, "#00e676", []);
    if (opts.detonly) outline(opts.detonly, "#ff00ff", [4, 3]);
  }

  function masksAt(data, comp, th) {
    const mp = (m) => data.maps[m] && data.maps[m][comp];
    if (!mp("source") || !mp("target")) return null;
    const union = unionMask(mp("source").v, mp("target").v, th);
    const det = S.model !== "source" && S.model !== "target" && mp(S.model) ? S.model : S.detModel;
    const detonly = det && mp(det) ? topMask(unit(mp(det).v), th).map((on, i) => on && !union[i]) : null;
    return { union, detonly, det };
  }

  async function drawFrame() {
    if (S.pos < 0) return;
    const { it, f, v, data } = current();
    if (!data) return;
    if (!v.models.includes(S.model)) S.model = v.models.includes(S.detModel) ? S.detModel : v.models[0];
    const th = S.index.thresholds[S.t];
    $("o-t-val").textContent = th.toFixed(2);
    $("pos").textContent = `${S.pos + 1} / ${S.list.length}`;
    $("frame-title").textContent = `${v.id}`;
    // model buttons
    const mb = $("model-buttons");
    mb.replaceChildren(el("span", { class: "hint" }, "overlay:"), ...["", ...v.models].map((m) => {
      const b = el("button", { type: "button", data: { model: m } }, m || "off");
      if (m === (S.overlayOff ? "" : S.model)) b.className = "on";
      b.addEventListener("click", () => { S.overlayOff = !m; if (m) S.model = m; drawFrame(); });
      return b;
    }));
    const masks = masksAt(data, S.comp, th);
    const uc = $("union-count");
    if (masks) {
      const nu = masks.union.filter(Boolean).length, nd = masks.detonly ? masks.detonly.filter(Boolean).length : 0;
      uc.textContent = `top-t union ${nu} cells · ${masks.det || "det"}-only ${nd} cells`;
      uc.dataset.union = String(nu);
      uc.dataset.detonly = String(nd);
    } else {
      uc.textContent = "no source/target maps at this compression";
      uc.dataset.union = "";
      uc.dataset.detonly = "";
    }
    const map = S.overlayOff ? null : data.maps[S.model][S.comp];
    const scale = map ? scaleOf(map, data) : 0;
    $("scale-lo").textContent = fmt(-scale);
    $("scale-hi").textContent = fmt(scale);
    const opts = {
      grid: $("o-grid").checked, donor: f.truth && $("o-donor").checked, trace: f.truth && $("o-trace").checked,
      union: masks && $("o-union").checked ? masks.union : null,
      detonly: masks && masks.detonly && $("o-detonly").checked ? masks.detonly : null,
    };
    $("o-donor").disabled = $("o-trace").disabled = !f.truth;
    renderNumbers(f, v, th);
    const jobs = [paint($("main"), it.k, S.comp, map, scale, opts)];
    // raw / c23 / c40 of the selected model
    const cs = $("comp-strip");
    cs.replaceChildren();
    for (const c of S.index.compressions) {
      const mp = data.maps[S.model] && data.maps[S.model][c];
      if (!mp) continue;
      const fig = el("figure", { class: c === S.comp ? "on" : "", data: { comp: c } });
      const cv = el("canvas", { width: "168", height: "168" });
      const cos = f.v[c] && f.v[c].cos[S.model];
      fig.append(cv, el("figcaption", {}, c === "raw" ? `raw · ${S.model}` : `${c} · cos ${fmt(cos)}`));
      fig.addEventListener("click", () => { S.comp = c; drawFrame(); });
      cs.appendChild(fig);
      jobs.push(paint(cv, it.k, c, mp, scaleOf(mp, data), { grid: false }));
    }
    const ms = $("model-strip");
    ms.replaceChildren();
    for (const m of v.models) {
      const mp = data.maps[m][S.comp];
      const fig = el("figure", { class: m === S.model ? "on" : "", data: { model: m } });
      const cv = el("canvas", { width: "112", height: "112" });
      fig.append(cv, el("figcaption", {}, m));
      fig.addEventListener("click", () => { S.model = m; S.overlayOff = false; drawFrame(); });
      ms.appendChild(fig);
      jobs.push(paint(cv, it.k, S.comp, mp, scaleOf(mp, data), { grid: false }));
    }
    await Promise.all(jobs);
  }

  function renderNumbers(f, v, th) {
    const rows = [];
    const add = (k, val) => rows.push(el("tr", {}, null)) && rows[rows.length - 1].append(el("th", {}, k), el("td", {}, val));
    add("frame", v.id);
    add("method · label", `${f.method} · ${f.label === 1 ? "fake (1)" : f.label === 0 ? "real (0)" : "?"}`);
    add("split · source → target", `${f.split} · ${f.source} → ${f.target}`);
    add(`Q_t at t = ${th.toFixed(2)} (H1)`, fmt(v.qt ? v.qt[S.t] : null));
    add("Q, mean over t", fmt(v.q));
    if (S.comp === "raw") add("paired − unpaired Q (H2)", fmt(f.h2));
    const t = $("numbers");
    t.replaceChildren(...rows);
    const mt = $("model-numbers");
    const head = el("tr", { class: "head" });
    head.append(...["model", "score", "logit", "δ (H3)", "cos raw", "lift"].map((h) => el("th", {}, h)));
    mt.replaceChildren(head);
    for (const m of v.models) {
      const s = v.score[m];
      const tr = el("tr", { data: { model: m } });
      tr.append(el("th", {}, m), el("td", {}, fmt(s ? s[0] : null)), el("td", {}, fmt(s ? s[1] : null)),
        el("td", {}, fmt(f.delta[m])), el("td", {}, S.comp === "raw" ? "1" : fmt(v.cos[m])), el("td", {}, fmt(v.lift[m])));
      mt.appendChild(tr);
    }
  }

  function onHover(e) {
    if (S.pos < 0) return;
    const { v, data } = current();
    if (!data) return;
    const canvas = $("main"), rect = canvas.getBoundingClientRect(), G = S.index.grid;
    const col = Math.floor(((e.clientX - rect.left) / rect.width) * G), row = Math.floor(((e.clientY - rect.top) / rect.height) * G);
    if (row < 0 || col < 0 || row >= G || col >= G) return;
    const idx = row * G + col;
    const tip = $("tip");
    const table = el("table");
    table.appendChild(el("tr", {}, null)).appendChild(el("th", { colspan: "2" }, `cell (${row}, ${col}) · ${S.comp}`));
    for (const m of v.models) {
      const mp = data.maps[m][S.comp];
      const tr = el("tr", { class: "val", data: { model: m, value: String(mp.v[idx]), stderr: String(mp.e[idx]) } });
      tr.append(el("td", {}, m), el("td", {}, `${fmt(mp.v[idx])} ± ${fmt(mp.e[idx])}`));
      table.appendChild(tr);
    }
    if (data.fractions) {
      for (const r of ["trace", "donor", "rest"]) {
        const tr = el("tr", { class: "gt", data: { region: r } });
        tr.append(el("td", {}, `${r} fraction`), el("td", {}, fmt(data.fractions[r][idx])));
        table.appendChild(tr);
      }
    }
    tip.replaceChildren(table);
    tip.dataset.row = String(row);
    tip.dataset.col = String(col);
    tip.hidden = false;
    const x = e.clientX - rect.left, y = e.clientY - rect.top;
    tip.style.left = `${x + 14 + 220 > rect.width ? x - 230 : x + 14}px`;
    tip.style.top = `${Math.min(y + 14, rect.height - 40)}px`;
  }
})();
