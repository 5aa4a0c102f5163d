// Small pieces the detail view's tabs share: copy buttons, number formats, folds, key/value grids.
import { h } from "./dom.js";

/**
 * Copy text to the clipboard (the async API where allowed, else a hidden textarea).
 * @param {string} text
 * @returns {Promise<boolean>}
 */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the textarea way (permissions denied in some embeddings)
  }
  const ta = /** @type {HTMLTextAreaElement} */ (h("textarea", { class: "fb-offscreen" }));
  ta.value = text;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

/**
 * A "Copy" button; the label briefly says whether it worked.
 * @param {string} label what is copied (tooltip and callback)
 * @param {() => string} getText
 * @param {(what: string, text: string) => void} [onCopy]
 */
export function copyButton(label, getText, onCopy) {
  const btn = h("button", { class: "fb-btn fb-copy", title: `Copy ${label}`, text: "Copy",
    "data-copy": label });
  btn.addEventListener("click", async (ev) => {
    ev.stopPropagation();
    const text = getText();
    const ok = await copyText(text);
    btn.textContent = ok ? "Copied" : "Copy failed";
    onCopy?.(label, text);
    setTimeout(() => { btn.textContent = "Copy"; }, 1200);
  });
  return btn;
}

/** @param {number | null | undefined} n */
export const fmtInt = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString());

/** @param {number | null | undefined} ms */
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** @param {number | null | undefined} usd */
export function fmtUsd(usd) {
  if (usd === null || usd === undefined || Number.isNaN(usd)) return "unknown";
  if (usd === 0) return "$0";
  return usd < 0.01 ? `$${usd.toPrecision(3)}` : `$${usd.toFixed(4)}`;
}

/** @param {number} bytes */
export function fmtBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * A collapsible block.
 * @param {string} title @param {(Node|string)[]} children @param {boolean} [open]
 */
export function fold(title, children, open = false) {
  const d = h("details", { class: "fb-fold" }, [h("summary", { text: title }), ...children]);
  if (open) /** @type {HTMLDetailsElement} */ (d).open = true;
  return d;
}

/**
 * A two-column grid of labels and values (values as text unless they are nodes).
 * @param {[string, any][]} rows
 */
export function kvGrid(rows) {
  const grid = h("div", { class: "fb-kv" });
  for (const [k, v] of rows) {
    if (v === null || v === undefined || v === "") continue;
    grid.append(h("div", { class: "fb-kv-k", text: k }),
      v instanceof Node ? h("div", { class: "fb-kv-v" }, [v])
        : h("div", { class: "fb-kv-v", text: String(v) }));
  }
  return grid;
}

/**
 * Preformatted text with a copy button and an optional "cut" note.
 * @param {string} text @param {{label?: string, note?: string, onCopy?: any, cls?: string}} [o]
 */
export function preBlock(text, o = {}) {
  const box = h("div", { class: "fb-preblock" });
  const bar = h("div", { class: "fb-prebar" });
  if (o.note) bar.append(h("span", { class: "fb-note", text: o.note }));
  bar.append(copyButton(o.label || "text", () => text, o.onCopy));
  box.append(bar, h("pre", { class: `fb-pre ${o.cls || ""}`, text }));
  return box;
}
