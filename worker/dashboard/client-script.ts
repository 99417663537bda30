/**
 * The dashboard's browser script, served as `/admin/dashboard/app.js`. Plain ES2020 with no
 * dependencies: charts are SVG drawn here, every value goes into the page through textContent (never
 * as HTML), and the admin token lives in sessionStorage and travels only in the Authorization header.
 *
 * It sits in a String.raw template so the worker bundles it with no build step of its own: the
 * script must contain neither backticks nor dollar-brace sequences. test/e2e/dashboard.test.ts
 * drives it in Chromium.
 */
export const DASHBOARD_JS = String.raw`(function () {
  "use strict";
  var TOKEN_KEY = "switchyard.adminToken";
  var POLL_MS = 2000;
  var HISTORY = 150;          // samples kept: 5 minutes at 2 s
  var RATE_SAMPLES = 5;       // tokens/s is averaged over this many samples (10 s)
  var MAX_TENANT_SERIES = 8;
  var COLORS = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626"];
  var SVG_NS = "http://www.w3.org/2000/svg";

  var state = newState();
  function newState() {
    return { token: null, timer: null, history: [], cum: {}, base: {}, colors: {}, selected: null, detail: null, last: null, stopped: true };
  }

  function $(id) { return document.getElementById(id); }

  /** Builds an element; children are nodes or strings (always text, never parsed as HTML). */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) return;
      if (k === "text") node.textContent = String(v);
      else if (k === "className") node.className = v;
      else if (k === "onclick") node.addEventListener("click", v);
      else node.setAttribute(k, String(v));
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  var intFmt = new Intl.NumberFormat("en-US");
  function fmtInt(n) { return n === null || n === undefined ? "–" : intFmt.format(Math.round(n)); }
  function fmtCompact(n) {
    if (n === null || n === undefined) return "–";
    var a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
    if (a >= 100 || Number.isInteger(n)) return String(Math.round(n));
    return n.toFixed(1);
  }
  function fmtBytes(b) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (i === 0 || b >= 100 ? Math.round(b) : b.toFixed(1)) + " " + units[i];
  }
  /** The agent's KV tiers in one line, e.g. "l1 82% of 4.0 GiB (60% used) · l2 40% of 64 GiB (10% used) 2/2 up", or "–". */
  function kvTiers(kv) {
    if (!kv || !kv.tiers || kv.tiers.length === 0) return "–";
    return kv.tiers.map(function (t) {
      var rate = t.hit_rate === null ? "no lookups" : fmtPct(t.hit_rate);
      var used = t.capacity_bytes > 0 ? " of " + fmtBytes(t.capacity_bytes) + " (" + fmtPct(t.bytes_used / t.capacity_bytes) + " used)" : "";
      var servers = t.servers !== undefined ? " " + t.servers_up + "/" + t.servers + " up" : "";
      return t.tier + " " + rate + used + servers;
    }).join(" · ");
  }
  function fmtPct(x) { return (x * 100).toFixed(x < 0.1 && x > 0 ? 1 : 0) + "%"; }
  function fmtAge(ms) { return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + " s"; }
  function fmtTime(iso) { return iso ? new Date(iso).toLocaleTimeString() : "–"; }
  function fmtDateTime(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }

  function meter(ratio) {
    var r = Math.max(0, Math.min(1, ratio || 0));
    var cls = "meter" + (r >= 1 ? " full" : r >= 0.8 ? " hot" : "");
    var bar = el("span");
    bar.style.width = (r * 100).toFixed(1) + "%";
    return el("span", { className: cls }, [bar]);
  }

  function colorOf(tenant) {
    if (!state.colors[tenant]) state.colors[tenant] = COLORS[Object.keys(state.colors).length % COLORS.length];
    return state.colors[tenant];
  }

  // ---- auth and polling -------------------------------------------------------------------

  function api(path) {
    return fetch(path, { headers: { authorization: "Bearer " + state.token }, cache: "no-store" }).then(function (res) {
      if (res.status === 401) { var e = new Error("The admin token was refused."); e.auth = true; throw e; }
      return res.json().then(function (body) {
        if (!res.ok) throw new Error((body && body.error && body.error.message) || ("HTTP " + res.status));
        return body;
      });
    });
  }

  function showLogin(message) {
    $("dash-view").hidden = true;
    $("logout").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
    $("updated").textContent = "";
    $("conn").className = "dot";
    $("token").focus();
  }

  function showDashboard() {
    $("login-view").hidden = true;
    $("dash-view").hidden = false;
    $("logout").hidden = false;
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (state.timer) clearTimeout(state.timer);
    state = newState();
    showLogin(message);
  }

  function start(token) {
    state = newState();
    state.token = token;
    state.stopped = false;
    showDashboard();
    poll();
  }

  function poll() {
    if (state.stopped) return;
    var jobs = [api("/admin/stats")];
    if (state.selected) jobs.push(api("/admin/stats/tenants/" + encodeURIComponent(state.selected)).catch(function (e) { return { error: e }; }));
    Promise.all(jobs).then(function (results) {
      if (state.stopped) return;
      $("banner").hidden = true;
      $("conn").className = "dot live";
      ingest(results[0]);
      if (results[1]) state.detail = results[1].error ? null : results[1];
      render();
    }).catch(function (err) {
      if (err.auth) { signOut("Signed out: the admin token was refused."); return; }
      $("conn").className = "dot down";
      $("banner").hidden = false;
      $("banner").textContent = "Stats unavailable: " + err.message + " (retrying every 2 s)";
    }).then(function () {
      if (!state.stopped) state.timer = setTimeout(poll, POLL_MS);
    });
  }

  // ---- history ----------------------------------------------------------------------------

  /** Adds one sample: totals, and each tenant's tokens served (pool counters, restart-safe). */
  function ingest(stats) {
    state.last = stats;
    var t = Date.parse(stats.generated_at) || Date.now();
    var inflight = 0, waiting = 0;
    stats.pools.forEach(function (p) {
      inflight += p.inflight;
      waiting += p.waiting;
      (p.tenants || []).forEach(function (row) {
        var key = p.pool + "\u0000" + row.tenant_id;
        var total = row.input_tokens + row.output_tokens;
        var prev = state.base[key];
        // A pool object that restarted starts its counters again: its first sample is a baseline.
        if (prev && prev.since === p.counters_since) state.cum[row.tenant_id] = (state.cum[row.tenant_id] || 0) + Math.max(0, total - prev.total);
        else if (!(row.tenant_id in state.cum)) state.cum[row.tenant_id] = 0;
        state.base[key] = { since: p.counters_since, total: total };
      });
    });
    var cum = {};
    Object.keys(state.cum).forEach(function (k) { cum[k] = state.cum[k]; });
    state.history.push({ t: t, inflight: inflight, waiting: waiting, cum: cum });
    if (state.history.length > HISTORY) state.history.shift();
  }

  /** Tokens/s of a tenant at history index i, averaged over the previous RATE_SAMPLES samples. */
  function rateAt(tenant, i) {
    var h = state.history;
    var j = Math.max(0, i - RATE_SAMPLES);
    if (j === i) return 0;
    var a = h[j].cum[tenant], b = h[i].cum[tenant];
    if (a === undefined || b === undefined) return 0;
    var dt = (h[i].t - h[j].t) / 1000;
    return dt > 0 ? (b - a) / dt : 0;
  }

  function currentRate(tenant) { return state.history.length ? rateAt(tenant, state.history.length - 1) : 0; }

  // ---- charts -----------------------------------------------------------------------------

  function niceMax(v) {
    if (v <= 1) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  /** A line chart of series [{name, color, points: [[t, v]], area}] over the last HISTORY samples. */
  function lineChart(node, series) {
    clear(node);
    var w = node.clientWidth || 560, h = node.clientHeight || 180;
    var L = 44, R = 10, T = 8, B = 20;
    node.setAttribute("viewBox", "0 0 " + w + " " + h);
    var tMax = state.history.length ? state.history[state.history.length - 1].t : Date.now();
    // The window grows with the history, from one minute up to HISTORY samples.
    var tFirst = state.history.length ? state.history[0].t : tMax;
    var tMin = tMax - Math.min((HISTORY - 1) * POLL_MS, Math.max(60000, tMax - tFirst));
    var vMax = 0;
    series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] > vMax) vMax = p[1]; }); });
    vMax = niceMax(vMax);
    var x = function (t) { return L + ((t - tMin) / (tMax - tMin || 1)) * (w - L - R); };
    var y = function (v) { return T + (1 - v / vMax) * (h - T - B); };
    for (var i = 0; i <= 4; i++) {
      var v = (vMax * i) / 4;
      node.appendChild(svg("line", { x1: L, x2: w - R, y1: y(v), y2: y(v), "class": "grid" }));
      node.appendChild(svg("text", { x: L - 6, y: y(v) + 3, "text-anchor": "end", "class": "axis" }, fmtCompact(v)));
    }
    var span = (tMax - tMin) / 1000;
    var step = span <= 60 ? 10 : span <= 180 ? 30 : 60;
    for (var sec = 0; sec <= span; sec += step) {
      var label = sec === 0 ? "now" : sec % 60 === 0 ? "-" + sec / 60 + "m" : "-" + sec + "s";
      node.appendChild(svg("text", { x: x(tMax - sec * 1000), y: h - 5, "text-anchor": sec === 0 ? "end" : "middle", "class": "axis" }, label));
    }
    series.forEach(function (s) {
      if (s.points.length === 0) return;
      var d = s.points.map(function (p, k) { return (k ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1); }).join(" ");
      if (s.area) {
        var first = s.points[0], last = s.points[s.points.length - 1];
        node.appendChild(svg("path", { d: d + " L" + x(last[0]).toFixed(1) + " " + y(0) + " L" + x(first[0]).toFixed(1) + " " + y(0) + " Z", fill: s.color, "fill-opacity": 0.1, stroke: "none" }));
      }
      node.appendChild(svg("path", { d: d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round" }));
    });
  }

  function legend(node, series) {
    clear(node);
    series.forEach(function (s) {
      var sw = el("i");
      sw.style.background = s.color;
      var last = s.points.length ? s.points[s.points.length - 1][1] : 0;
      node.appendChild(el("span", null, [sw, s.name, el("b", { text: s.format ? s.format(last) : fmtCompact(last) })]));
    });
  }

  function renderCharts() {
    var h = state.history;
    var load = [
      { name: "in flight", color: "#2563eb", area: true, points: h.map(function (s) { return [s.t, s.inflight]; }) },
      { name: "waiting", color: "#d97706", points: h.map(function (s) { return [s.t, s.waiting]; }) },
    ];
    lineChart($("chart-load"), load);
    legend($("legend-load"), load);
    // The busiest tenants over the window get a line each.
    var tenants = Object.keys(state.cum);
    var busy = tenants.map(function (t) {
      var peak = 0;
      for (var i = 0; i < h.length; i++) peak = Math.max(peak, rateAt(t, i));
      return { t: t, peak: peak };
    }).sort(function (a, b) { return b.peak - a.peak || (a.t < b.t ? -1 : 1); }).slice(0, MAX_TENANT_SERIES);
    var series = busy.map(function (b) {
      return { name: b.t, color: colorOf(b.t), points: h.map(function (s, i) { return [s.t, rateAt(b.t, i)]; }), format: function (v) { return fmtCompact(v) + "/s"; } };
    });
    lineChart($("chart-tokens"), series);
    legend($("legend-tokens"), series);
  }

  // ---- tables -----------------------------------------------------------------------------

  function tile(label, value, extra) {
    return el("div", { className: "tile" }, [el("div", { className: "label", text: label }), el("div", { className: "value", text: value }), extra ? el("div", { className: "label", text: extra }) : null]);
  }

  function renderTiles(stats) {
    var nodes = 0, healthy = 0, inflight = 0, waiting = 0, reqToday = 0, rejected = 0, rate = 0;
    stats.pools.forEach(function (p) {
      nodes += p.nodes.length;
      p.nodes.forEach(function (n) { if (n.status === "healthy") healthy++; });
      inflight += p.inflight;
      waiting += p.waiting;
    });
    stats.tenants.forEach(function (t) {
      reqToday += t.usage.today.requests;
      var lr = t.rejections.limits;
      if (lr) rejected += lr.today.requests + lr.today.tokens + lr.today.budget;
      rejected += t.rejections.pools.queue_timeouts;
    });
    Object.keys(state.cum).forEach(function (t) { rate += currentRate(t); });
    var box = $("tiles");
    clear(box);
    box.appendChild(tile("Nodes healthy", healthy + " / " + nodes, stats.pools.length + " pool" + (stats.pools.length === 1 ? "" : "s")));
    box.appendChild(tile("In flight", fmtInt(inflight)));
    box.appendChild(tile("Waiting at the edge", fmtInt(waiting)));
    box.appendChild(tile("Tokens/s", fmtCompact(rate), "10 s average"));
    box.appendChild(tile("Requests today", fmtInt(reqToday), "UTC day"));
    box.appendChild(tile("Rejected today", fmtInt(rejected), "limits (today) + queue timeouts"));
  }

  function renderPools(stats) {
    var box = $("pools");
    clear(box);
    if (stats.pools.length === 0) { box.appendChild(el("p", { className: "muted", text: "No model is configured yet." })); return; }
    stats.pools.forEach(function (p) {
      var head = el("div", { className: "pool-head" }, [
        el("strong", { text: p.pool }),
        el("span", { className: "muted", text: "models: " + p.models.map(function (m) { return m.name + " (" + m.admission_policy + ")"; }).join(", ") }),
        el("span", { text: "in flight " + fmtInt(p.inflight) }),
        el("span", { className: p.waiting > 0 ? "bad" : "", text: "waiting " + fmtInt(p.waiting) }),
        el("span", { className: "muted", text: "prefix index " + fmtCompact(p.prefix_entries) + " entries" }),
        p.error ? el("span", { className: "bad", text: "unavailable: " + p.error }) : null,
      ]);
      var rows = p.nodes.map(function (n) {
        return el("tr", { "data-node": n.node_id, "data-status": n.status }, [
          el("td", null, [el("strong", { text: n.node_id })]),
          el("td", { text: n.model }),
          el("td", { text: n.region }),
          el("td", { text: n.engine }),
          el("td", null, [el("span", { className: "pill status " + n.status, text: n.status })]),
          el("td", null, [meter(n.load), n.inflight + " / " + n.node_limit]),
          el("td", { className: "num", text: n.running + " / " + n.waiting }),
          el("td", null, [meter(n.kv_usage), fmtPct(n.kv_usage)]),
          el("td", { "data-kv-tiers": "", text: kvTiers(n.kv_cache) }),
          el("td", { className: "num", text: fmtCompact(n.prefill_backlog_tokens) }),
          el("td", { className: "num", text: fmtCompact(n.prefix_blocks) }),
          el("td", { className: "num", text: fmtAge(n.heartbeat_age_ms) }),
        ]);
      });
      var table = el("table", { "data-pool": p.pool }, [
        el("thead", null, [el("tr", null, ["Node", "Model", "Region", "Engine", "Status", "Load (in flight / limit)", "Engine run / wait", "KV cache", "KV tiers (hit rate, used)", "Prefill backlog", "Prefix blocks", "Heartbeat"].map(function (hd, i) {
          return el("th", { className: i >= 6 && i !== 7 && i !== 8 ? "num" : "", text: hd });
        }))]),
        el("tbody", null, rows.length ? rows : [el("tr", null, [el("td", { colspan: 12, className: "muted", text: "No node has sent a heartbeat for this pool." })])]),
      ]);
      box.appendChild(el("div", { className: "pool" }, [head, table]));
    });
  }

  function remaining(part) {
    if (!part || part.limit === null) return "–";
    return fmtCompact(part.remaining) + " / " + fmtCompact(part.limit);
  }

  function renderTenants(stats) {
    var body = $("tenants").tBodies[0];
    clear(body);
    stats.tenants.forEach(function (t) {
      var ls = t.limit_state;
      var lr = t.rejections.limits;
      var lim = lr ? lr.today.requests + lr.today.tokens + lr.today.budget : null;
      // One pool: the counter alone; several: each with its pool's name.
      var single = stats.pools.length === 1;
      var vtc = t.pools.filter(function (p) { return p.vtc_counter !== null; }).map(function (p) { return (single ? "" : p.pool + ": ") + fmtCompact(p.vtc_counter); }).join(", ");
      var sw = el("i");
      sw.style.cssText = "display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:6px;background:" + colorOf(t.id);
      var row = el("tr", { "data-tenant": t.id, className: "clickable" + (state.selected === t.id ? " selected" : ""), title: "Details for " + t.id, onclick: function () { select(t.id); } }, [
        el("td", null, [sw, el("strong", { text: t.id }), t.name !== t.id ? el("span", { className: "muted", text: " " + t.name }) : null, t.disabled ? el("span", { className: "bad", text: " disabled" }) : null]),
        el("td", { className: "num", text: String(t.weight) }),
        el("td", { className: "num", text: fmtInt(t.inflight) }),
        el("td", { className: "num" + (t.waiting > 0 ? " bad" : ""), text: fmtInt(t.waiting) }),
        el("td", { className: "num", text: fmtCompact(currentRate(t.id)) }),
        el("td", { className: "num", text: fmtInt(t.usage.today.requests) }),
        el("td", { className: "num", text: fmtCompact(t.usage.today.input_tokens + t.usage.today.output_tokens) }),
        el("td", { className: "num", text: fmtCompact(t.usage.month.input_tokens + t.usage.month.output_tokens) }),
        el("td", { className: "num", text: ls ? remaining(ls.requests_per_minute) : "–" }),
        el("td", { className: "num", text: ls ? remaining(ls.tokens_per_minute) : "–" }),
        el("td", { className: "num", text: ls ? remaining(ls.budget) : "–" }),
        el("td", { className: "num" + (lim ? " bad" : ""), text: lr ? lr.today.requests + " / " + lr.today.tokens + " / " + lr.today.budget : "–", title: "requests / tokens / budget" }),
        el("td", { className: "num" + (t.rejections.pools.queue_timeouts ? " bad" : ""), text: fmtInt(t.rejections.pools.queue_timeouts) }),
        el("td", { className: "num", text: fmtInt(t.rejections.pools.cancelled) }),
        el("td", { className: "wrap", text: vtc || "–" }),
      ]);
      body.appendChild(row);
    });
    var note = [];
    if (stats.tenants_truncated) note.push("Showing the " + stats.tenants.length + " most active of " + stats.tenants_total + " tenants.");
    if (stats.ledger_reads_truncated) note.push("Limit state is read for the first tenants with limits only; open a tenant for its own.");
    note.push("Limit rejections: requests / tokens / budget today. Usage: recorded requests (D1, a few seconds behind).");
    $("tenants-note").textContent = note.join(" ");
  }

  function select(id) {
    state.selected = state.selected === id ? null : id;
    state.detail = null;
    render();
    if (state.selected) api("/admin/stats/tenants/" + encodeURIComponent(id)).then(function (d) { if (state.selected === id) { state.detail = d; renderDetail(); } }).catch(function () {});
  }

  function kv(pairs) {
    var dl = el("dl", { className: "kv" });
    pairs.forEach(function (p) { dl.appendChild(el("dt", { text: p[0] })); dl.appendChild(el("dd", null, [p[1]])); });
    return dl;
  }

  function limitLine(part) {
    if (part.limit === null) return fmtInt(part.used) + " used · no limit";
    return el("span", null, [meter(part.used / part.limit), fmtInt(part.used) + " / " + fmtInt(part.limit) + " (" + fmtInt(part.remaining) + " left)"]);
  }

  function renderDetail() {
    var box = $("tenant-detail");
    var d = state.detail;
    if (!state.selected || !d) { box.hidden = true; clear(box); return; }
    box.hidden = false;
    clear(box);
    var u = d.usage, ls = d.limit_state, r = d.rejections;
    box.appendChild(el("div", { className: "detail-head" }, [
      el("h2", { text: "Tenant " + d.id + (d.name !== d.id ? " · " + d.name : "") }),
      el("button", { type: "button", text: "Close", onclick: function () { select(d.id); } }),
    ]));
    var usage = el("div", null, [el("h3", { text: "Usage (exact, from the ledger)" }), kv([
      ["Today", fmtInt(u.today.requests) + " requests · " + fmtInt(u.today.input_tokens) + " in · " + fmtInt(u.today.output_tokens) + " out"],
      ["This month", fmtInt(u.month.requests) + " requests · " + fmtInt(u.month.input_tokens) + " in · " + fmtInt(u.month.output_tokens) + " out"],
      ["Cached input (month)", fmtInt(u.month.input_cached_tokens)],
      ["Failed / estimated", fmtInt(u.month.failed_requests) + " / " + fmtInt(u.month.estimated_requests)],
    ].concat(u.month_by_model.map(function (m) { return ["  " + m.model, fmtInt(m.requests) + " req · " + fmtCompact(m.input_tokens + m.output_tokens) + " tokens"]; })))]);
    var limits = el("div", null, [el("h3", { text: "Limits now" }), kv([
      ["Requests / min", limitLine(ls.requests_per_minute)],
      ["Tokens / min", limitLine(ls.tokens_per_minute)],
      ["Budget (" + ls.budget.period + ")", limitLine(ls.budget)],
      ["Budget resets", fmtDateTime(ls.budget.resets_at)],
      ["Rejected today", r.limits.today.requests + " requests · " + r.limits.today.tokens + " tokens · " + r.limits.today.budget + " budget"],
      ["Rejected this month", r.limits.month.requests + " · " + r.limits.month.tokens + " · " + r.limits.month.budget],
      ["Last rejection", fmtDateTime(r.limits.last_at)],
    ])]);
    var pools = el("div", null, [el("h3", { text: "In the pools" }), kv([
      ["In flight / waiting", fmtInt(d.inflight) + " / " + fmtInt(d.waiting)],
      ["Queue timeouts / cancelled", fmtInt(r.pools.queue_timeouts) + " / " + fmtInt(r.pools.cancelled)],
      ["No healthy node", fmtInt(r.pools.no_healthy_node)],
    ].concat(d.pools.map(function (p) {
      return [p.pool, "VTC " + (p.vtc_counter === null ? "–" : fmtCompact(p.vtc_counter)) + " · " + fmtInt(p.requests) + " served · " + p.inflight + " in flight · " + p.waiting + " waiting"];
    })))]);
    box.appendChild(el("div", { className: "detail-grid" }, [usage, limits, pools]));
  }

  function render() {
    var stats = state.last;
    if (!stats) return;
    $("updated").textContent = "updated " + fmtTime(stats.generated_at);
    renderTiles(stats);
    renderCharts();
    renderPools(stats);
    renderTenants(stats);
    renderDetail();
  }

  // ---- start ------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", function () {
    $("login").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var token = $("token").value.trim();
      if (!token) return;
      $("login-error").textContent = "";
      state.token = token;
      api("/admin/stats").then(function () {
        sessionStorage.setItem(TOKEN_KEY, token);
        $("token").value = "";
        start(token);
      }).catch(function (err) {
        state.token = null;
        $("login-error").textContent = err.message;
      });
    });
    $("logout").addEventListener("click", function () { signOut(""); });
    window.addEventListener("resize", function () { if (state.last) renderCharts(); });
    var saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) start(saved); else showLogin("");
  });
})();
`;
