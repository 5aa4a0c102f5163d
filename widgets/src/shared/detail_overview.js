// The detail view's Overview and Stream tabs: timing bar, tokens, cost, context window fill,
// and the stream's events with a tokens-over-time sparkline.
import { h } from "./dom.js";
import { fmtInt, fmtMs, fmtUsd, fmtBytes, kvGrid, fold } from "./detail_util.js";

const SVG = "http://www.w3.org/2000/svg";

/**
 * @param {string} tag @param {Record<string, any>} attrs
 * @returns {SVGElement}
 */
function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** The request's timeline: sent → first byte → first token → last token → done. @param {any} t */
export function timingBar(t) {
  const end = Math.max(t.completed_ms ?? 0, t.last_token_ms ?? 0, t.first_token_ms ?? 0,
    t.first_byte_ms ?? 0, 1);
  const marks = [
    ["sent", 0], ["first byte", t.first_byte_ms], ["first token", t.first_token_ms],
    ["last token", t.last_token_ms], ["done", t.completed_ms],
  ].filter(([, v]) => v !== null && v !== undefined);
  const segs = [
    ["fb-seg-wait", 0, t.first_byte_ms ?? t.completed_ms, "waiting for the first byte"],
    ["fb-seg-think", t.first_byte_ms, t.first_token_ms, "first byte → first token"],
    ["fb-seg-gen", t.first_token_ms, t.last_token_ms, "generating"],
    ["fb-seg-tail", t.last_token_ms ?? t.first_token_ms, t.completed_ms, "last token → done"],
  ];
  const bar = h("div", { class: "fb-timebar", role: "img",
    "aria-label": marks.map(([n, v]) => `${n} ${fmtMs(/** @type {number} */ (v))}`).join(", ") });
  for (const [cls, a, b, title] of segs) {
    if (a === null || a === undefined || b === null || b === undefined || b <= a) continue;
    const seg = h("div", { class: `fb-seg ${cls}`, title: `${title}: ${fmtMs(b - a)}` });
    seg.style.left = `${(100 * a) / end}%`;
    seg.style.width = `${Math.max(0.5, (100 * (b - a)) / end)}%`;
    bar.append(seg);
  }
  const legend = h("div", { class: "fb-timelegend" });
  for (const [name, v] of marks) {
    legend.append(h("span", { class: "fb-timemark" }, [
      h("span", { class: "fb-timemark-name", text: String(name) }),
      h("span", { class: "fb-timemark-v", text: name === "sent" ? "0" : `+${fmtMs(/** @type {number} */ (v))}` }),
    ]));
  }
  const key = h("div", { class: "fb-timekey" }, segs.map(([cls, , , title]) =>
    h("span", { class: "fb-ctx-item" }, [h("span", { class: `fb-swatch ${cls}` }), String(title)])));
  return h("div", { class: "fb-timing" }, [bar, legend, key]);
}

/** @param {any} usage @param {string} source */
function tokensTable(usage, source) {
  if (!usage) return h("div", { class: "fb-muted", text: "No token usage (usage_source: missing)." });
  const rows = [
    ["Input", usage.input, ""],
    ["  cached (read)", usage.cache_read, "part of input"],
    ["  cache write", usage.cache_write, "part of input"],
    ["Output", usage.output, ""],
    ["  reasoning", usage.reasoning, "part of output"],
    ["Total", usage.total, ""],
  ];
  const table = h("table", { class: "fb-table fb-tokens" });
  for (const [k, v, note] of rows) {
    if (String(k).startsWith("  ") && !v) continue;
    table.append(h("tr", {}, [h("th", { text: String(k).trim(), class: String(k).startsWith("  ") ? "fb-sub" : "" }),
      h("td", { class: "fb-num", text: fmtInt(/** @type {number} */ (v)) }),
      h("td", { class: "fb-muted", text: String(note) })]));
  }
  const method = usage.details?.method ? ` · counted with ${usage.details.method}` : "";
  return h("div", {}, [table, h("div", { class: `fb-src fb-src-${source}`,
    text: `usage_source: ${source}${source === "estimated" ? method : ""}` })]);
}

/** @param {any} c context fill from the kernel */
function contextBlock(c) {
  const box = h("div", { class: "fb-context" });
  const total = c.window || Math.max(c.used, 1);
  const bar = h("div", { class: "fb-ctxbar" });
  const scale = c.parts_total ? c.used / c.parts_total : 1; // parts are estimates: fit them to the used count
  for (const p of c.parts) {
    if (!p.tokens) continue;
    const w = (100 * p.tokens * scale) / total;
    const seg = h("div", { class: `fb-ctx fb-ctx-${p.key}`,
      title: `${p.label}: ~${fmtInt(p.tokens)} tokens (estimated)` });
    seg.style.width = `${Math.min(100, Math.max(0.4, w))}%`;
    bar.append(seg);
  }
  const pct = c.pct === null || c.pct === undefined ? null : c.pct;
  const head = c.window
    ? `${fmtInt(c.used)} of ${fmtInt(c.window)} tokens` + (pct !== null ? ` (${pct < 1 ? pct.toFixed(2) : pct.toFixed(1)}%)` : "")
    : `${fmtInt(c.used)} tokens used · window size unknown`;
  box.append(h("div", { class: "fb-ctx-head" }, [h("strong", { text: head }),
    h("span", { class: "fb-muted", text: ` · used: ${c.used_source} · window: ${c.window_source}` })]), bar);
  const legend = h("div", { class: "fb-ctx-legend" });
  for (const p of c.parts) {
    legend.append(h("span", { class: "fb-ctx-item" }, [h("span", { class: `fb-swatch fb-ctx-${p.key}` }),
      `${p.label} ~${fmtInt(p.tokens)}`]));
  }
  box.append(legend, h("div", { class: "fb-muted fb-small",
    text: `Parts estimated (${c.parts_method}); they sum to ~${fmtInt(c.parts_total)} tokens.` }));
  return box;
}

/** @param {any} p payload */
export function overviewTab(p) {
  const o = p.overview;
  const cost = o.cost || {};
  const root = h("div", { class: "fb-overview" });
  root.append(h("h4", { text: "Timing" }), timingBar(o.timing),
    kvGrid([["Latency", fmtMs(o.timing.latency_ms)], ["TTFT", fmtMs(o.timing.ttft_ms)],
      ["Output speed", o.timing.output_tokens_per_s ? `${o.timing.output_tokens_per_s} tokens/s` : null],
      ["Started", new Date(o.timing.created * 1000).toISOString().replace("T", " ").slice(0, 23) + " UTC"]]));
  if (o.error) {
    root.append(h("div", { class: "fb-error", role: "alert" }, [
      h("strong", { text: `${o.error.type}${o.error.status ? ` (HTTP ${o.error.status})` : ""}: ` }),
      o.error.message, o.error.retryable ? " · retryable" : ""]));
  }
  const cols = h("div", { class: "fb-cols" });
  cols.append(
    h("section", {}, [h("h4", { text: "Tokens" }), tokensTable(o.usage, o.usage_source)]),
    h("section", {}, [h("h4", { text: "Cost" }),
      h("div", { class: "fb-cost", text: fmtUsd(cost.usd) }),
      h("div", { class: "fb-muted fb-small", text: cost.how || "" }),
      cost.rates ? h("div", { class: "fb-muted fb-small", text: `rates: ${cost.rates}` }) : null,
      cost.credits !== null && cost.credits !== undefined
        ? h("div", { class: "fb-small", text: `Kiro credits: ${cost.credits}` }) : null]),
  );
  root.append(cols, h("h4", { text: "Context window" }), contextBlock(o.context));
  root.append(h("h4", { text: "Request" }), kvGrid([
    ["URL", `${o.method} ${o.url}`], ["Status", o.status ? `${o.status} ${o.reason || ""}` : p.state],
    ["Stop reason", o.stop_reason], ["Client", o.client], ["User agent", o.user_agent],
    ["Session", o.session], ["Sizes", `request ${fmtBytes(o.request_bytes || 0)}` +
      (o.response_bytes !== null ? ` · response ${fmtBytes(o.response_bytes)}` : "")],
    ["Flow id", p.id],
  ]));
  if (o.parse_errors?.length) {
    root.append(fold(`Parse problems (${o.parse_errors.length})`,
      o.parse_errors.map((/** @type {string} */ e) => h("div", { class: "fb-small", text: e }))));
  }
  return root;
}

/**
 * Cumulative tokens over time as an SVG polyline, sized to its box (a ResizeObserver redraws).
 * @param {number[][]} series [offset_ms, cumulative tokens]
 */
export function sparkline(series) {
  const box = h("div", { class: "fb-spark" });
  const draw = () => {
    const w = Math.max(120, box.clientWidth || 600);
    const hgt = 64;
    const maxT = Math.max(1, ...series.map((s) => s[0]));
    const maxY = Math.max(1, ...series.map((s) => s[1]));
    const pts = series.map(([t, y]) => `${((t / maxT) * (w - 4) + 2).toFixed(1)},${(hgt - 2 - (y / maxY) * (hgt - 4)).toFixed(1)}`);
    const s = svg("svg", { width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, class: "fb-spark-svg" });
    s.append(svg("polyline", { points: pts.join(" "), fill: "none", class: "fb-spark-line" }));
    for (const [t, y] of series) {
      s.append(svg("circle", { cx: ((t / maxT) * (w - 4) + 2).toFixed(1),
        cy: (hgt - 2 - (y / maxY) * (hgt - 4)).toFixed(1), r: 1.5, class: "fb-spark-dot" }));
    }
    const axis = h("div", { class: "fb-spark-axis" }, [h("span", { text: "0" }),
      h("span", { text: `${fmtInt(maxY)} tokens at +${fmtMs(maxT)}` })]);
    box.replaceChildren(s, axis);
  };
  const ro = new ResizeObserver(() => draw());
  ro.observe(box);
  /** @type {any} */ (box)._ro = ro;
  draw();
  return box;
}

/** @param {any} p payload */
export function streamTab(p) {
  const s = p.stream_events;
  const root = h("div", { class: "fb-stream" });
  if (!s.total) {
    root.append(h("div", { class: "fb-muted", text: p.stream ? "No stream events recorded yet."
      : "Not a streamed response: the body arrived in one piece (see Raw)." }));
    return root;
  }
  root.append(h("div", { class: "fb-small" }, [
    `${fmtInt(s.total)} events · ~${fmtInt(s.tokens)} tokens (estimated from each event's text)`,
    s.longest_gap_ms !== null ? ` · longest gap ${fmtMs(s.longest_gap_ms)} (from +${fmtMs(s.longest_gap_at_ms)})` : "",
  ]), sparkline(s.series), h("div", { class: "fb-muted fb-small", text: "tokens over time (x: arrival offset from the request, y: cumulative tokens)" }));
  const table = h("table", { class: "fb-table fb-events" });
  table.append(h("thead", {}, [h("tr", {}, ["#", "offset", "gap", "event", "tokens", "data"].map((t) => h("th", { text: t })))]));
  const body = h("tbody");
  // A stall is a gap well above the stream's usual pace: mark it so it stands out.
  const gaps = s.events.map((/** @type {any} */ ev, /** @type {number} */ i) => i ? ev.offset_ms - s.events[i - 1].offset_ms : 0);
  const sorted = [...gaps].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] || 0;
  s.events.forEach((/** @type {any} */ ev, /** @type {number} */ i) => {
    const gap = gaps[i];
    const stall = i > 0 && gap >= 250 && gap >= 5 * median;
    const data = h("td", { class: "fb-mono fb-evdata", text: ev.data, title: "click to expand" });
    data.addEventListener("click", () => data.classList.toggle("fb-open"));
    body.append(h("tr", { class: stall ? "fb-stall" : "" }, [h("td", { class: "fb-num", text: String(ev.i) }),
      h("td", { class: "fb-num", text: `+${fmtMs(ev.offset_ms)}` }),
      h("td", { class: "fb-num", text: i ? `${stall ? "⚠ " : ""}${fmtMs(gap)}` : "" }),
      h("td", { class: "fb-evname", text: ev.event || "" }), h("td", { class: "fb-num", text: ev.tokens ? String(ev.tokens) : "" }),
      data]));
  });
  table.append(body);
  root.append(table);
  if (s.shown < s.total) root.append(h("div", { class: "fb-muted", text: `First ${fmtInt(s.shown)} of ${fmtInt(s.total)} events listed (the chart covers all).` }));
  return root;
}
