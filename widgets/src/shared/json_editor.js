// A structured JSON editor: objects and arrays become labelled fields, strings become text
// areas, numbers and booleans get their own inputs, and chat messages and tools are shown as
// readable cards. A "Raw JSON" view edits the same value as text, with validation. Used by the
// intercept panel; the detail and diff widgets can reuse it read-only.
import { autosize, h } from "./dom.js";

const MAX_DEPTH = 4; // deeper values are edited as JSON text

/**
 * @typedef {{ value: any, valid: boolean, error: string }} EditorState
 * @param {any} initial the JSON value to edit (not mutated)
 * @param {{ onChange?: (s: EditorState) => void, onFocus?: () => void }} [hooks]
 */
export function jsonEditor(initial, hooks = {}) {
  /** @type {any} */
  let value = structuredClone(initial);
  let mode = "structured";
  let error = "";
  const root = h("div", { class: "fb-json" });
  const tabs = h("div", { class: "fb-json-tabs" });
  const body = h("div", { class: "fb-json-body" });
  const errorLine = h("div", { class: "fb-json-error", role: "alert" });
  root.append(tabs, body, errorLine);
  root.addEventListener("focusin", () => hooks.onFocus?.());

  const changed = () => {
    errorLine.textContent = error;
    root.classList.toggle("fb-invalid", Boolean(error));
    hooks.onChange?.({ value, valid: !error, error });
  };

  /** @param {string} m */
  const setMode = (m) => {
    if (m === "structured" && error) return; // fix the raw JSON first
    mode = m;
    draw();
  };

  function draw() {
    tabs.replaceChildren(
      h("button", { class: mode === "structured" ? "fb-tab fb-active" : "fb-tab",
        text: "Structured", onclick: () => setMode("structured") }),
      h("button", { class: mode === "raw" ? "fb-tab fb-active" : "fb-tab", text: "Raw JSON",
        onclick: () => setMode("raw") }),
    );
    body.replaceChildren(mode === "raw" ? rawView() : field(value, [], 0, (v) => { value = v; }));
  }

  function rawView() {
    const ta = /** @type {HTMLTextAreaElement} */ (h("textarea", {
      class: "fb-raw", spellcheck: "false", value: JSON.stringify(value, null, 2),
    }));
    ta.addEventListener("input", () => {
      try {
        value = JSON.parse(ta.value);
        error = "";
      } catch (e) {
        error = `Invalid JSON: ${/** @type {Error} */ (e).message}`;
      }
      changed();
    });
    queueMicrotask(() => autosize(ta));
    return ta;
  }

  /**
   * One value as an editable field.
   * @param {any} v @param {(string|number)[]} path @param {number} depth
   * @param {(v: any) => void} set
   * @returns {HTMLElement}
   */
  function field(v, path, depth, set) {
    if (typeof v === "string") {
      const ta = /** @type {HTMLTextAreaElement} */ (h("textarea", { class: "fb-str", value: v,
        rows: 1, "data-path": path.join(".") }));
      ta.addEventListener("input", () => { set(ta.value); autosize(ta); changed(); });
      queueMicrotask(() => autosize(ta));
      return ta;
    }
    if (typeof v === "number") {
      const inp = /** @type {HTMLInputElement} */ (h("input", { type: "number", step: "any",
        value: String(v), "data-path": path.join(".") }));
      inp.addEventListener("input", () => {
        const n = Number(inp.value);
        error = inp.value === "" || Number.isNaN(n) ? `${path.join(".")}: not a number` : "";
        if (!error) set(n);
        changed();
      });
      return inp;
    }
    if (typeof v === "boolean") {
      const cb = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", checked: v,
        "data-path": path.join(".") }));
      cb.addEventListener("change", () => { set(cb.checked); changed(); });
      return cb;
    }
    if (v === null || depth >= MAX_DEPTH) return jsonText(v, path, set);
    if (Array.isArray(v)) {
      const list = h("div", { class: "fb-list" });
      v.forEach((item, i) => {
        const label = cardLabel(item, path, i);
        list.append(h("div", { class: label.cls }, [
          h("div", { class: "fb-card-head", text: label.text }),
          field(item, [...path, i], depth + 1, (nv) => { v[i] = nv; }),
        ]));
      });
      return list;
    }
    const obj = h("div", { class: "fb-obj" });
    for (const key of Object.keys(v)) {
      const child = v[key];
      const row = h("div", { class: "fb-row" }, [
        h("label", { class: "fb-key", text: key }),
        field(child, [...path, key], depth + 1, (nv) => { v[key] = nv; }),
      ]);
      if (key === "tools" || key === "parameters" || key === "input_schema") {
        const det = h("details", { class: "fb-fold" }, [
          h("summary", { text: `${key} (${summaryOf(child)})` }), row]);
        obj.append(det);
      } else {
        obj.append(row);
      }
    }
    return obj;
  }

  /** @param {any} v @param {(string|number)[]} path @param {(v: any) => void} set */
  function jsonText(v, path, set) {
    const ta = /** @type {HTMLTextAreaElement} */ (h("textarea", { class: "fb-str fb-mono",
      value: JSON.stringify(v, null, 2), "data-path": path.join(".") }));
    ta.addEventListener("input", () => {
      try {
        set(JSON.parse(ta.value));
        error = "";
      } catch (e) {
        error = `${path.join(".") || "value"}: invalid JSON (${/** @type {Error} */ (e).message})`;
      }
      autosize(ta);
      changed();
    });
    queueMicrotask(() => autosize(ta));
    return ta;
  }

  draw();
  return {
    el: root,
    get value() { return value; },
    get valid() { return !error; },
  };
}

/** Readable headings for chat messages, parts and tools. @returns {{text: string, cls: string}} */
function cardLabel(/** @type {any} */ item, /** @type {(string|number)[]} */ path, i = 0) {
  const parent = String(path[path.length - 1] ?? "");
  if (item && typeof item === "object" && !Array.isArray(item)) {
    if (item.role) return { text: `${item.role}`, cls: `fb-card fb-role-${item.role}` };
    if (parent === "tools") {
      const name = item.name || item.function?.name || item.functionDeclarations?.[0]?.name;
      return { text: `tool ${name ?? i}`, cls: "fb-card fb-tool" };
    }
    if (item.type) return { text: `${item.type}`, cls: "fb-card" };
  }
  return { text: `[${i}]`, cls: "fb-card" };
}

/** @param {any} v */
function summaryOf(v) {
  if (Array.isArray(v)) return `${v.length} item${v.length === 1 ? "" : "s"}`;
  if (v && typeof v === "object") return `${Object.keys(v).length} fields`;
  return typeof v;
}
