// The flow table's columns: what each shows, how it formats, and which store column sorts it.
// Cells are set as text (never HTML): previews are captured content.

const LIVE = new Set(["streaming", "intercepted", "pending"]);

/** @param {number | null | undefined} ms */
export function formatMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60_000)}m ${String(Math.round((ms % 60_000) / 1000)).padStart(2, "0")}s`;
}

/** @param {number | null | undefined} n */
export function formatInt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "";
  return Math.round(n).toLocaleString("en-US");
}

/** Unknown cost is blank, never $0. @param {number | null | undefined} usd */
export function formatCost(usd) {
  if (usd === null || usd === undefined || Number.isNaN(usd)) return "";
  if (usd === 0) return "$0";
  if (usd < 0.0001) return "<$0.0001";
  return usd < 1 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

/** @param {number | null | undefined} ms epoch milliseconds */
export function formatTime(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  const p = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** @param {string | null | undefined} state */
export const isLive = (state) => LIVE.has(String(state || ""));

/**
 * @typedef {{ key: string, label: string, sort: string | null, width: number,
 *   align?: "right" | "center", text: (row: any) => string, title?: (row: any) => string,
 *   cls?: (row: any) => string }} Column
 */

/** @type {Column[]} */
export const COLUMNS = [
  { key: "time", label: "Time", sort: "timestamp", width: 78,
    text: (r) => formatTime(r.time_ms),
    title: (r) => (r.time_ms ? new Date(r.time_ms).toISOString() : "") },
  { key: "provider", label: "Provider", sort: "provider", width: 80, text: (r) => r.provider || "" },
  { key: "model", label: "Model", sort: "model", width: 150, text: (r) => r.model || "",
    title: (r) => `${r.model || ""} · ${r.api || ""}` },
  { key: "state", label: "State", sort: "state", width: 100, text: (r) => r.state || "",
    cls: (r) => `fbt-state fbt-state-${r.state || "unknown"}${isLive(r.state) ? " fbt-live" : ""}`,
    title: (r) => (r.error ? `${r.state}: ${r.error}` : r.state || "") },
  { key: "status", label: "Status", sort: "status_code", width: 60, align: "right",
    text: (r) => (r.status === null || r.status === undefined ? "" : String(r.status)),
    cls: (r) => (r.status >= 400 ? "fbt-bad" : "") },
  { key: "latency", label: "Latency", sort: "latency_ms", width: 80, align: "right",
    text: (r) => formatMs(r.latency_ms) },
  { key: "ttft", label: "TTFT", sort: "ttft_ms", width: 72, align: "right",
    text: (r) => formatMs(r.ttft_ms) },
  { key: "tokens_in", label: "In", sort: "input_tokens", width: 70, align: "right",
    text: (r) => formatInt(r.tokens_in), title: () => "input tokens" },
  { key: "tokens_out", label: "Out", sort: "output_tokens", width: 64, align: "right",
    text: (r) => formatInt(r.tokens_out), title: () => "output tokens" },
  { key: "cost", label: "Cost", sort: "cost_usd", width: 76, align: "right",
    text: (r) => formatCost(r.cost_usd),
    title: (r) => (r.cost_usd === null || r.cost_usd === undefined ? "price unknown" : "") },
  { key: "preview", label: "Preview", sort: "preview", width: 260, text: (r) => r.preview || "",
    title: (r) => r.preview || "" },
  { key: "bookmark", label: "★", sort: "bookmarked", width: 32, align: "center",
    text: (r) => (r.bookmarked ? "★" : "☆"), cls: (r) => (r.bookmarked ? "fbt-star fbt-on" : "fbt-star"),
    title: (r) => (r.bookmarked ? "bookmarked (B)" : "bookmark (B)") },
];
