/* The insights dashboard (docs/INSIGHTS.md, "Dashboard"). Plain JavaScript, no build step.
 *
 * The key lives in this script's memory and in sessionStorage (this tab, this origin): it is sent
 * as an Authorization header, never put in a URL, a cookie or localStorage. Live updates come from
 * GET /api/v1/insights/stream, read with fetch() (EventSource cannot send a header): the parser
 * below keeps the last event id and reconnects with Last-Event-ID, backing off on failures.
 */
(function () {
  "use strict";

  var STORE = "bastion.dashboard.key";
  var API = "/api/v1/insights";
  var COLORS = ["#2f5bd3", "#b3261e", "#1f7a4d", "#b26b00", "#7b3fb3", "#0f7c8c", "#8c5a0f", "#c2185b"];

  var KEEP_IDS = 256;

  var state = {
    key: null, lastEventId: null, stream: null, backoff: 1000, charts: {}, refresh: null, gen: 0,
    received: [], connections: 0,
  };

  function $(id) { return document.getElementById(id); }

  // -- formatting -------------------------------------------------------------------------------
  function num(v) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"); }
  function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(2) + " %"; }
  function ms(v) { return v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US") + " ms"; }
  function usd(v) { return v === null || v === undefined ? "–" : "$" + Number(v).toFixed(4); }
  function short(v) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumSignificantDigits: 3 }); }
  function hhmm(iso) {
    var d = new Date(iso);
    return d.toISOString().slice(5, 16).replace("T", " ");
  }

  // -- HTTP ---------------------------------------------------------------------------------------
  function headers(extra) {
    var h = { Authorization: "Bearer " + state.key, Accept: "application/json" };
    for (var name in extra || {}) { h[name] = extra[name]; }
    return h;
  }

  function request(path, extra) {
    return fetch(path, {
      headers: headers(extra), cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
    });
  }

  function get(path) {
    return request(path).then(function (response) {
      if (!response.ok) {
        var error = new Error("HTTP " + response.status);
        error.status = response.status;
        throw error;
      }
      return response.json();
    });
  }

  function windowQuery() {
    var hours = Number($("range").value || 24);
    var to = new Date();
    var from = new Date(to.getTime() - hours * 3600 * 1000);
    return "from=" + encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString());
  }

  // -- login --------------------------------------------------------------------------------------
  function showError(message) {
    var el = $("login-error");
    el.textContent = message;
    el.hidden = !message;
  }

  function signOut(message) {
    state.gen += 1;
    state.key = null;
    state.lastEventId = null;
    state.received = []; // another key may read another tenant's stream, with its own ids
    sessionStorage.removeItem(STORE);
    stopStream();
    $("dashboard").hidden = true;
    $("logout").hidden = true;
    $("range").parentElement.hidden = true;
    $("login").hidden = false;
    setStatus("offline");
    clearData();
    showError(message || "");
  }

  function open(key) {
    state.key = key;
    showError("");
    return get(API + "/summary?" + windowQuery()).then(function (summary) {
      sessionStorage.setItem(STORE, key);
      $("login").hidden = true;
      $("dashboard").hidden = false;
      $("logout").hidden = false;
      $("range").parentElement.hidden = false;
      renderSummary(summary);
      loadPanels();
      startStream();
    }, function (error) {
      var reason = error.status === 401 ? "The key was not accepted."
        : error.status === 403 ? "This key may not read insights (it needs usage:read: viewer or higher)."
        : error.status === 404 ? "Insights are switched off on this gateway."
        : "The gateway could not be reached (" + error.message + ").";
      signOut(reason);
    });
  }

  // -- panels -------------------------------------------------------------------------------------
  function clearData() {
    ["kpi-requests", "kpi-errors", "kpi-blocked", "kpi-p95", "kpi-tokens", "kpi-cost"].forEach(function (id) {
      $(id).textContent = "–";
    });
    ["top-models", "top-keys", "redteam", "experiments"].forEach(function (id) { fillTable(id, []); });
    $("alert-list").replaceChildren();
    Object.keys(state.charts).forEach(function (name) { state.charts[name].destroy(); });
    state.charts = {};
  }

  function renderSummary(s) {
    $("kpi-requests").textContent = num(s.requests);
    $("kpi-errors").textContent = pct(s.error_rate);
    $("kpi-blocked").textContent = pct(s.block_rate);
    $("kpi-p95").textContent = ms(s.latency_ms.p95);
    $("kpi-tokens").textContent = num(s.tokens.total);
    $("kpi-cost").textContent = usd(s.cost_usd);
    var waste = s.metrics.cognitive_waste;
    $("waste-value").textContent = waste === null || waste === undefined ? "–" : waste.toFixed(2);
    gauge("chart-waste", waste === null || waste === undefined ? 0 : waste, Number($("waste-limit").textContent) * 2);
  }

  function chart(id, config) {
    if (typeof Chart === "undefined") { return; }
    var existing = state.charts[id];
    if (existing) {
      existing.data = config.data;
      existing.update("none");
      return;
    }
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
    state.charts[id] = new Chart($(id), config);
  }

  function line(id, labels, series) {
    chart(id, {
      type: "line",
      data: {
        labels: labels,
        datasets: series.map(function (s, i) {
          return { label: s.label, data: s.data, borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length], pointRadius: 1, spanGaps: true };
        }),
      },
      options: { scales: { y: { beginAtZero: true } } },
    });
  }

  function gauge(id, value, max) {
    var shown = Math.min(value, max);
    chart(id, {
      type: "doughnut",
      data: { labels: ["waste", ""], datasets: [{ data: [shown, Math.max(max - shown, 0)], backgroundColor: [value > max / 2 ? "#b3261e" : "#2f5bd3", "#dde1e7"], borderWidth: 0 }] },
      options: { rotation: -90, circumference: 180, cutout: "70%", plugins: { legend: { display: false }, tooltip: { enabled: false } } },
    });
  }

  function renderTimeseries(t) {
    var labels = t.data.map(function (p) { return hhmm(p.bucket); });
    function pick(f) { return t.data.map(f); }
    line("chart-requests", labels, [
      { label: "requests", data: pick(function (p) { return p.requests; }) },
      { label: "errors", data: pick(function (p) { return p.errors; }) },
      { label: "blocked", data: pick(function (p) { return p.blocked; }) },
    ]);
    line("chart-latency", labels, ["p50", "p95", "p99"].map(function (q) {
      return { label: q, data: pick(function (p) { return p.latency_ms[q]; }) };
    }));
    line("chart-ttft", labels, ["p50", "p95", "p99"].map(function (q) {
      return { label: q, data: pick(function (p) { return p.ttft_ms[q]; }) };
    }));
    line("chart-tokens", labels, [
      { label: "prompt", data: pick(function (p) { return p.prompt_tokens; }) },
      { label: "completion", data: pick(function (p) { return p.completion_tokens; }) },
    ]);
    line("chart-cost", labels, [{ label: "cost (USD)", data: pick(function (p) { return p.cost_usd; }) }]);
  }

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function fillTable(id, rows) {
    var body = $(id).querySelector("tbody");
    body.replaceChildren.apply(body, rows.map(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (c) { tr.appendChild(cell(c)); });
      return tr;
    }));
  }

  function renderTop(id, field, top) {
    fillTable(id, top.data.map(function (r) { return [r[field] || "(none)", num(r.requests), num(r.tokens), usd(r.cost_usd)]; }));
  }

  function renderGuard(g) {
    var categories = {};
    g.series.forEach(function (p) { Object.keys(p.categories).forEach(function (c) { categories[c] = true; }); });
    var names = Object.keys(categories).sort();
    $("guard-empty").hidden = names.length > 0;
    chart("chart-guard", {
      type: "bar",
      data: {
        labels: g.series.map(function (p) { return hhmm(p.bucket); }),
        datasets: names.map(function (c, i) {
          return { label: c, data: g.series.map(function (p) { return p.categories[c] || 0; }), backgroundColor: COLORS[i % COLORS.length] };
        }),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
  }

  function renderEfficiency(m) {
    chart("chart-efficiency", {
      type: "scatter",
      data: {
        datasets: m.data.map(function (r, i) {
          return { label: r.model || "(none)", data: [{ x: r.tokens.total, y: r.metrics.token_efficiency }], backgroundColor: COLORS[i % COLORS.length], pointRadius: 5 };
        }),
      },
      options: { scales: { x: { title: { display: true, text: "tokens" } }, y: { title: { display: true, text: "useful output tokens per token" }, beginAtZero: true } } },
    });
  }

  function loadDrift(gen) {
    // The drift of six consecutive slices of the window, each against its default baseline.
    var hours = Number($("range").value || 24);
    var end = Date.now();
    var step = hours * 3600 * 1000 / 6;
    var slices = [0, 1, 2, 3, 4, 5].map(function (i) { return [end - (6 - i) * step, end - (5 - i) * step]; });
    return Promise.all(slices.map(function (s) {
      var q = "from=" + encodeURIComponent(new Date(s[0]).toISOString()) + "&to=" + encodeURIComponent(new Date(s[1]).toISOString());
      return get(API + "/drift?" + q).catch(function () { return { drift: null, threshold: null }; });
    })).then(function (reports) {
      if (gen !== state.gen) { return; }
      $("drift-empty").hidden = reports.some(function (r) { return r.drift !== null; });
      line("chart-drift", slices.map(function (s) { return hhmm(new Date(s[1]).toISOString()); }), [
        { label: "drift", data: reports.map(function (r) { return r.drift; }) },
        { label: "threshold", data: reports.map(function (r) { return r.threshold; }) },
      ]);
    });
  }

  function renderRedteam(body) {
    var runs = body && body.runs ? body.runs : [];
    $("redteam-empty").hidden = runs.length > 0;
    $("redteam").hidden = runs.length === 0;
    fillTable("redteam", runs.map(function (r) {
      var cats = Object.keys(r.by_category || {}).sort().map(function (c) { return c + " " + pct(r.by_category[c].rate); }).join(", ");
      return [hhmm(r.created_at), r.target, r.status, r.guard ? "on" : "off", num(r.attempts), pct(r.success_rate),
        r.fragility === null || r.fragility === undefined ? "–" : r.fragility.toFixed(2), cats];
    }));
  }

  function renderExperiments(e) {
    $("experiments-empty").hidden = e.data.length > 0;
    $("experiments").hidden = e.data.length === 0;
    fillTable("experiments", e.data.map(function (r) {
      return [r.experiment_id, r.variant, num(r.requests), pct(r.error_rate), ms(r.p95_latency_ms), num(r.tokens), usd(r.cost_usd)];
    }));
  }

  function renderAlerts(a) {
    var firing = a.data.filter(function (x) { return x.firing; });
    var list = $("alert-list");
    if (firing.length === 0) {
      var none = document.createElement("li");
      none.textContent = "No active alerts.";
      list.replaceChildren(none);
      return;
    }
    list.replaceChildren.apply(list, firing.map(function (x) {
      var li = document.createElement("li");
      li.className = x.severity;
      li.textContent = x.severity + ": " + x.alert.replace(/_/g, " ") + " (" + short(x.value) + " > " + short(x.threshold) + ")";
      return li;
    }));
  }

  function panel(gen, promise, render) {
    return promise.then(function (body) { if (gen === state.gen) { render(body); } }, function (error) {
      if (gen !== state.gen) { return; }
      if (error.status === 401) { signOut("The key is no longer accepted."); return; }
      var el = $("panel-error");
      el.textContent = "Some panels could not be loaded (" + error.message + ").";
      el.hidden = false;
    });
  }

  function loadPanels() {
    var gen = state.gen;
    var q = windowQuery();
    $("panel-error").hidden = true;
    return Promise.all([
      panel(gen, get(API + "/summary?" + q), renderSummary),
      panel(gen, get(API + "/timeseries?" + q), renderTimeseries),
      panel(gen, get(API + "/top?by=model&order=cost&limit=10&" + q), function (t) { renderTop("top-models", "model", t); }),
      panel(gen, get(API + "/top?by=key&order=cost&limit=10&" + q), function (t) { renderTop("top-keys", "key", t); }),
      panel(gen, get(API + "/guard?" + q), renderGuard),
      panel(gen, get(API + "/metrics?by=model&" + q), renderEfficiency),
      panel(gen, get(API + "/experiments?" + q), renderExperiments),
      panel(gen, get(API + "/alerts"), renderAlerts),
      panel(gen, get(API + "/redteam?limit=10").catch(function (error) {
        if (error.status === 404) { return { runs: [] }; }
        throw error;
      }), renderRedteam),
      loadDrift(gen),
    ]).then(function () {
      if (gen === state.gen) { document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1); }
    });
  }

  function scheduleRefresh(what) {
    // Events may come in bursts (one per tenant and run): one refetch for a burst.
    if (state.refresh) { return; }
    state.refresh = setTimeout(function () {
      state.refresh = null;
      if (!state.key) { return; }
      if (what === "alerts") { panel(state.gen, get(API + "/alerts"), renderAlerts); } else { loadPanels(); }
    }, 250);
  }

  // -- live stream --------------------------------------------------------------------------------
  function setStatus(name) {
    var el = $("live-status");
    el.dataset.state = name;
    el.textContent = name;
  }

  function stopStream() {
    if (state.stream) { state.stream.abort(); state.stream = null; }
  }

  function dispatch(event) {
    if (event.id !== null) {
      state.lastEventId = event.id;
      document.body.dataset.lastEventId = event.id;
      state.received.push(event.id);
      if (state.received.length > KEEP_IDS) { state.received.shift(); }
    }
    if (event.type === "rollup") { scheduleRefresh("all"); }
    if (event.type === "alert") { scheduleRefresh("alerts"); }
  }

  function parse(text, pending) {
    // Server-sent events: lines; a blank line ends an event; a line starting with ':' is a comment.
    var lines = (pending.rest + text).split(/\r\n|\r|\n/);
    pending.rest = lines.pop();
    lines.forEach(function (raw) {
      if (raw === "") {
        if (pending.data.length) {
          var data = null;
          try { data = JSON.parse(pending.data.join("\n")); } catch (e) { data = null; }
          dispatch({ id: pending.id, type: pending.type || "message", data: data });
        }
        pending.data = []; pending.type = null; pending.id = null;
        return;
      }
      if (raw.charAt(0) === ":") { document.body.dataset.keepalive = String(Date.now()); return; }
      var colon = raw.indexOf(":");
      var field = colon < 0 ? raw : raw.slice(0, colon);
      var value = colon < 0 ? "" : raw.slice(colon + 1).replace(/^ /, "");
      if (field === "data") { pending.data.push(value); }
      else if (field === "event") { pending.type = value; }
      else if (field === "id") { pending.id = value; }
    });
  }

  function startStream() {
    stopStream();
    var gen = state.gen;
    var controller = new AbortController();
    state.stream = controller;
    var extra = { Accept: "text/event-stream" };
    if (state.lastEventId !== null) { extra["Last-Event-ID"] = state.lastEventId; }
    fetch(API + "/stream", { headers: headers(extra), cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer", signal: controller.signal })
      .then(function (response) {
        if (response.status === 401) { signOut("The key is no longer accepted."); return null; }
        if (!response.ok || !response.body) { throw new Error("HTTP " + response.status); }
        setStatus("live");
        state.backoff = 1000;
        state.connections += 1;
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var pending = { rest: "", data: [], type: null, id: null };
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) { return; }
            parse(decoder.decode(chunk.value, { stream: true }), pending);
            return pump();
          });
        }
        return pump();
      })
      .then(function () { reconnect(gen, false); }, function () { reconnect(gen, true); });
  }

  function reconnect(gen, failed) {
    if (gen !== state.gen || !state.key) { return; }
    setStatus("reconnecting");
    var wait = failed ? state.backoff : 250;
    if (failed) { state.backoff = Math.min(state.backoff * 2, 30000); }
    setTimeout(function () {
      if (gen !== state.gen || !state.key) { return; }
      startStream();
      loadPanels(); // whatever happened while away (beyond the replay buffer) shows up
    }, wait);
  }

  // -- a read-only view of the stream, for debugging (and the browser tests) -------------------
  // The ids of the last events received, in order, and how many stream connections were opened.
  window.bastionDashboard = Object.freeze({
    eventIds: function () { return state.received.slice(); },
    connections: function () { return state.connections; },
  });

  // -- start --------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    $("login-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var input = $("api-key");
      var key = input.value.trim();
      input.value = "";
      if (key) { state.gen += 1; open(key); }
    });
    $("logout").addEventListener("click", function () { signOut(""); });
    $("range").addEventListener("change", function () { loadPanels(); });
    var saved = sessionStorage.getItem(STORE);
    if (saved) { state.gen += 1; open(saved); }
  });
})();
