// The dashboard page's script: plain browser JavaScript, no build step. It listens to the
// server's `snapshot` events, keeps a rolling history of them, and redraws the uPlot charts and
// the tables from it. Counters in a snapshot are totals since each replica started; rates and
// interval means come from the difference between two snapshots.
/* global document, window, EventSource, uPlot */
"use strict";

(function () {
  // 10 minutes at the default 2 s interval.
  const HISTORY = 300;
  const PALETTE = ["#2f6fdf", "#d9480f", "#2b8a3e", "#9c36b5", "#e8590c", "#0c8599", "#c2255c", "#5c940d"];
  const history = [];
  const charts = {};
  let received = 0;

  const $ = (id) => document.getElementById(id);

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  // Rows from data only through textContent: names come from config and remote services.
  function fillTable(id, rows, columns) {
    const body = $(id).tBodies[0];
    body.replaceChildren();
    if (rows.length === 0) {
      const tr = body.insertRow();
      const td = document.createElement("td");
      td.colSpan = columns.length;
      td.className = "empty";
      td.textContent = "none";
      tr.appendChild(td);
      return;
    }
    for (const r of rows) {
      const tr = body.insertRow();
      for (const [get, numeric] of columns) cell(tr, get(r), numeric ? "num" : "");
    }
  }

  function bytes(n) {
    if (!n) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  }

  function duration(ms) {
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  const ms = (v) => (v === undefined || v === null ? "–" : v.toFixed(v < 10 ? 2 : 1));

  // What the charts need of one snapshot: per-service sums, and lag per consumer.
  function reduce(s) {
    const services = {};
    for (const e of s.endpoints) {
      const t = (services[e.service] ??= { requests: 0, errors: 0, totalMs: 0 });
      t.requests += e.requests;
      t.errors += e.errors;
      t.totalMs += e.totalMs;
    }
    const lag = {};
    for (const l of s.lag) lag[`${l.stream} ${l.durable}`] = l.pending;
    return { at: s.at, services, lag, dlq: s.dlq.messages };
  }

  function keysOf(field) {
    const keys = new Set();
    for (const h of history) for (const k of Object.keys(h[field])) keys.add(k);
    return [...keys].sort();
  }

  // A per-interval value of each key (null for the first point, or where the key is missing).
  function perInterval(keys, value) {
    return keys.map((k) =>
      history.map((h, i) => {
        const prev = history[i - 1];
        if (!prev || !(k in h.services) || !(k in prev.services)) return null;
        return value(h.services[k], prev.services[k], (h.at - prev.at) / 1000);
      }),
    );
  }

  // A replica that restarted counts from zero again: a negative difference is no traffic, not negative traffic.
  const rate = (cur, prev, dt) => (dt > 0 ? Math.max(0, cur.requests - prev.requests) / dt : null);
  const meanMs = (cur, prev) => {
    const n = cur.requests - prev.requests;
    return n > 0 ? Math.max(0, cur.totalMs - prev.totalMs) / n : null;
  };

  function latest(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
    return null;
  }

  function chartWidth(el) {
    return Math.max(300, el.clientWidth - 8);
  }

  // One uPlot per chart, made again only when its set of series changes (a service or consumer appears).
  function draw(id, keys, columns, unit) {
    const el = $(id);
    const xs = history.map((h) => h.at / 1000);
    const data = [xs, ...columns];
    const sig = keys.join("\n");
    const known = charts[id];
    if (known && known.sig === sig) {
      known.plot.setData(data);
      return;
    }
    if (known) known.plot.destroy();
    const opts = {
      width: chartWidth(el),
      height: 220,
      scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(1, max * 1.1)] } },
      series: [
        { value: (_u, v, _s, idx) => (idx === null ? "latest" : new Date(v * 1000).toLocaleTimeString()) },
        ...keys.map((k, i) => ({
          label: k,
          stroke: PALETTE[i % PALETTE.length],
          width: 2,
          spanGaps: true,
          // Away from the cursor the legend shows each series' latest value, so the numbers stay live.
          value: (u, v, sidx, idx) => {
            const shown = idx === null ? latest(u.data[sidx]) : v;
            return shown === null || shown === undefined ? "–" : `${shown.toFixed(2)} ${unit}`;
          },
        })),
      ],
      axes: [{}, { size: 60 }],
    };
    charts[id] = { sig, plot: new uPlot(opts, data, el) };
  }

  function redrawCharts() {
    const services = keysOf("services");
    draw("chart-throughput", services, perInterval(services, rate), "req/s");
    draw("chart-handler", services, perInterval(services, meanMs), "ms");
    const consumers = keysOf("lag");
    draw(
      "chart-lag",
      consumers,
      consumers.map((k) => history.map((h) => (k in h.lag ? h.lag[k] : null))),
      "msgs",
    );
    draw("chart-dlq", ["dead letters"], [history.map((h) => h.dlq)], "msgs");
  }

  function showTables(s) {
    fillTable("nodes", s.nodes, [
      [(n) => n.service],
      [(n) => n.id],
      [(n) => n.hostname],
      [(n) => n.version],
      [(n) => `${n.cpuCores} cores${n.cpuPercent === undefined ? "" : `, ${n.cpuPercent.toFixed(1)} %`}`, true],
      [(n) => (n.rssBytes === undefined ? bytes(n.ramBytes) : `${bytes(n.rssBytes)} of ${bytes(n.ramBytes)}`), true],
      [(n) => duration(n.uptimeMs), true],
    ]);
    fillTable("endpoints", s.endpoints, [
      [(e) => e.service],
      [(e) => e.endpoint],
      [(e) => String(e.instances), true],
      [(e) => String(e.requests), true],
      [(e) => String(e.errors), true],
      [(e) => ms(e.meanMs), true],
      [(e) => ms(e.p99Ms), true],
    ]);
    fillTable("lag", s.lag, [
      [(l) => l.stream],
      [(l) => l.durable],
      [(l) => String(l.pending), true],
      [(l) => String(l.ackPending), true],
    ]);
    fillTable("quotas", s.quotas, [
      [(q) => q.source],
      [(q) => duration(q.windowMs)],
      [(q) => q.align],
      [(q) => String(q.used), true],
      [(q) => String(q.quota), true],
      [(q) => `${q.percent.toFixed(1)} %`, true],
    ]);
  }

  function onSnapshot(s) {
    received++;
    history.push(reduce(s));
    if (history.length > HISTORY) history.shift();
    $("snapshots").textContent = String(received);
    const updated = $("updated");
    updated.dateTime = new Date(s.at).toISOString();
    updated.textContent = new Date(s.at).toLocaleTimeString();
    $("total-requests").textContent = String(s.endpoints.reduce((n, e) => n + e.requests, 0));
    $("dlq-size").textContent = String(s.dlq.messages);
    const missing = $("unavailable");
    missing.hidden = s.unavailable.length === 0;
    missing.textContent = s.unavailable.length ? `Not read this time: ${s.unavailable.join("; ")}` : "";
    showTables(s);
    redrawCharts();
  }

  function connect() {
    const events = new EventSource("/events");
    const state = $("connection");
    events.addEventListener("open", () => {
      state.textContent = "live";
      state.className = "on";
    });
    // EventSource reconnects by itself; the page only says so meanwhile.
    events.addEventListener("error", () => {
      state.textContent = "reconnecting…";
      state.className = "off";
    });
    events.addEventListener("hello", (ev) => {
      const hello = JSON.parse(ev.data);
      $("mesh").textContent = hello.title;
      document.title = `Machina ${hello.title}`;
      $("uplot-version").textContent = `uPlot ${hello.uplotVersion}`;
    });
    events.addEventListener("snapshot", (ev) => onSnapshot(JSON.parse(ev.data)));
  }

  window.addEventListener("resize", () => {
    for (const [id, c] of Object.entries(charts)) c.plot.setSize({ width: chartWidth($(id)), height: 220 });
  });
  connect();
})();
