// The flow detail view, shared by the standalone widget (fb.show) and the table's split pane.
//
//   const view = mountDetail(container, payload, {
//     onAnnotate: async ({ bookmarked, tags, comment }) => ({ ok: true } | { ok: false, error }),
//     onCopy: (what, text) => {},          // optional: a copy button was used
//     onCode: async ({ format, sdk }) => ({ ok: true, code } | { ok: false, error }),
//                                          // optional: the Code tab (shown when given)
//   });
//   view.update(newPayload);   // same flow refreshed (streaming) or another flow
//   view.destroy();
//
// `payload` is flowbook.ui.detail_payload.detail_payload(flow). The view fills its container
// (give the container a height); the active tab and scroll position survive updates of the same
// flow. Colours come from JupyterLab's --jp-* (or VS Code's --vscode-*) variables.
import { h } from "./dom.js";
import { overviewTab, streamTab } from "./detail_overview.js";
import { conversationTab, responseTab, rawTab, interceptTab } from "./detail_conversation.js";
import { fmtMs, fmtInt, fmtUsd, preBlock } from "./detail_util.js";

const TABS = [
  ["overview", "Overview", overviewTab],
  ["conversation", "Conversation", conversationTab],
  ["response", "Response", responseTab],
  ["stream", "Stream", streamTab],
  ["raw", "Raw", rawTab],
  ["notes", "Notes", notesTab],
  ["code", "Code", codeTab],
  ["intercept", "Intercepted", interceptTab],
];

/**
 * @param {HTMLElement} container
 * @param {any} payload
 * @param {{ onAnnotate?: (notes: {bookmarked: boolean, tags: string[], comment: string}) => Promise<any>,
 *           onCopy?: (what: string, text: string) => void,
 *           onCode?: (req: {format: string, sdk: boolean}) => Promise<any> }} [callbacks]
 */
export function mountDetail(container, payload, callbacks = {}) {
  let current = payload;
  let active = "overview";
  const root = h("div", { class: "fb-detail" });
  const header = h("div", { class: "fb-d-header" });
  const tabs = h("div", { class: "fb-d-tabs", role: "tablist" });
  const body = h("div", { class: "fb-d-body", role: "tabpanel" });
  root.append(header, tabs, body);
  container.append(root);
  /** @type {Map<string, number>} */
  const scrolls = new Map();
  const codeState = { format: "curl" }; // the Code tab's choice survives redraws

  function drawHeader() {
    const p = current;
    const o = p.overview;
    const u = o.usage;
    const star = h("button", { class: `fb-star${p.notes.bookmarked ? " fb-on" : ""}`,
      title: p.notes.bookmarked ? "Bookmarked (click to remove)" : "Bookmark",
      "aria-pressed": p.notes.bookmarked ? "true" : "false", text: p.notes.bookmarked ? "★" : "☆" });
    star.addEventListener("click", () => saveNotes({ ...p.notes, bookmarked: !p.notes.bookmarked }));
    header.replaceChildren(
      star,
      h("span", { class: "fb-d-model", text: p.model || "?" }),
      h("span", { class: "fb-muted", text: `${p.provider}/${p.api}` }),
      h("span", { class: `fb-state fb-state-${p.state}`, text: p.state }),
      o.status ? h("span", { class: o.status >= 400 ? "fb-status fb-bad" : "fb-status", text: String(o.status) }) : null,
      h("span", { class: "fb-d-facts", text: [
        o.timing.latency_ms !== null ? fmtMs(o.timing.latency_ms) : null,
        u ? `${fmtInt(u.input)} → ${fmtInt(u.output)} tok` : null,
        o.cost.usd !== null && o.cost.usd !== undefined ? fmtUsd(o.cost.usd) : null,
      ].filter(Boolean).join(" · ") }),
      h("span", { class: "fb-d-id fb-muted", text: p.id }),
    );
  }

  function drawTabs() {
    const shown = (/** @type {any} */ key) => (key !== "intercept" || current.intercept) &&
      (key !== "code" || (callbacks.onCode && current.code_formats?.length));
    tabs.replaceChildren(...TABS.filter(([key]) => shown(key)).map(([key, label]) => {
      const b = h("button", { class: `fb-d-tab${key === active ? " fb-active" : ""}`, role: "tab",
        "aria-selected": key === active ? "true" : "false", "data-tab": key, text: String(label) });
      b.addEventListener("click", () => select(String(key)));
      return b;
    }));
  }

  function drawBody() {
    for (const el of body.querySelectorAll(".fb-spark")) /** @type {any} */ (el)._ro?.disconnect();
    const tab = TABS.find(([key]) => key === active) || TABS[0];
    const make = /** @type {(p: any, cb: any) => HTMLElement} */ (tab[2]);
    let content;
    try {
      content = make(current, { ...callbacks, saveNotes, codeState });
    } catch (err) {
      content = h("div", { class: "fb-error", text: `This tab failed to render: ${err}` });
      console.warn("flowbook detail:", err);
    }
    body.replaceChildren(content);
    body.scrollTop = scrolls.get(active) || 0;
  }

  /** @param {string} key */
  function select(key) {
    scrolls.set(active, body.scrollTop);
    active = key;
    drawTabs();
    drawBody();
  }

  /** @param {{bookmarked: boolean, tags: string[], comment: string}} notes */
  async function saveNotes(notes) {
    if (!callbacks.onAnnotate) return { ok: false, error: "read-only view" };
    const reply = await callbacks.onAnnotate({ bookmarked: notes.bookmarked, tags: notes.tags,
      comment: notes.comment });
    return reply || { ok: true };
  }

  function draw() {
    drawHeader();
    drawTabs();
    drawBody();
  }
  draw();

  return {
    /** @param {any} next */
    update(next) {
      const same = next && current && next.id === current.id;
      scrolls.set(active, body.scrollTop);
      // Keep a half-typed note: the Notes tab is not redrawn under the user's fingers.
      const typing = same && active === "notes" && root.contains(document.activeElement);
      current = next;
      if (!same) { scrolls.clear(); if (active === "intercept" && !next.intercept) active = "overview"; }
      if (active === "intercept" && !next.intercept) active = "overview";
      // A streaming flow's request does not change: keep the generated code on screen.
      const keepCode = same && active === "code";
      drawHeader();
      drawTabs();
      if (!typing && !keepCode) drawBody();
    },
    /** @param {string} key */
    select,
    get active() { return active; },
    destroy() {
      for (const el of body.querySelectorAll(".fb-spark")) /** @type {any} */ (el)._ro?.disconnect();
      root.remove();
    },
  };
}

/** The Notes tab: bookmark, tags, comment; Save goes through onAnnotate. @param {any} p @param {any} cb */
function notesTab(p, cb) {
  const n = p.notes;
  const bookmark = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", class: "fb-n-bookmark", checked: n.bookmarked }));
  const tags = /** @type {HTMLInputElement} */ (h("input", { type: "text", class: "fb-n-tags", value: n.tags.join(", "),
    placeholder: "tags, separated by commas", "aria-label": "Tags" }));
  const comment = /** @type {HTMLTextAreaElement} */ (h("textarea", { class: "fb-n-comment", rows: 5,
    placeholder: "A comment (searchable with ~comment)", "aria-label": "Comment" }));
  comment.value = n.comment;
  const status = h("div", { class: "fb-n-status", role: "status" });
  const save = h("button", { class: "fb-btn fb-primary", "data-action": "save-notes", text: "Save notes" });
  save.addEventListener("click", async () => {
    const list = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    status.textContent = "Saving…";
    status.className = "fb-n-status";
    const reply = await cb.saveNotes({ bookmarked: bookmark.checked, tags: list, comment: comment.value });
    status.textContent = reply.ok ? "Saved." : `Not saved: ${reply.error}`;
    status.className = reply.ok ? "fb-n-status fb-ok" : "fb-n-status fb-bad";
  });
  return h("div", { class: "fb-notes" }, [
    h("label", { class: "fb-n-row" }, [bookmark, " Bookmarked"]),
    h("label", { class: "fb-n-label", text: "Tags" }), tags,
    h("div", { class: "fb-chips" }, n.tags.map((/** @type {string} */ t) => h("span", { class: "fb-chip", text: `#${t}` }))),
    h("label", { class: "fb-n-label", text: "Comment" }), comment,
    h("div", { class: "fb-toolbar" }, [save, status]),
  ]);
}

/** The Code tab: the request as curl, Python, TypeScript, Go or Rust, generated by the kernel.
 * @param {any} p @param {any} cb */
function codeTab(p, cb) {
  const out = h("div", { class: "fb-code-out" });
  const bar = h("div", { class: "fb-toolbar fb-code-formats" });
  /** @param {string} fmt */
  const load = async (fmt) => {
    cb.codeState.format = fmt;
    for (const b of bar.querySelectorAll("button")) b.classList.toggle("fb-active", b.getAttribute("data-format") === fmt);
    out.replaceChildren(h("div", { class: "fb-muted", text: "Generating…" }));
    const sdk = fmt === "python-sdk";
    const reply = await cb.onCode({ format: sdk ? "python" : fmt, sdk });
    if (cb.codeState.format !== fmt) return; // another format was picked meanwhile
    out.replaceChildren(reply && reply.ok
      ? preBlock(reply.code, { label: `${fmt} code`, onCopy: cb.onCopy, note: "secrets are read from environment variables" })
      : h("div", { class: "fb-error", text: `No code: ${reply ? reply.error : "no reply"}` }));
  };
  for (const fmt of p.code_formats) {
    const b = h("button", { class: "fb-btn", "data-format": fmt, text: fmt === "python-sdk" ? "python (SDK)" : fmt });
    b.addEventListener("click", () => load(fmt));
    bar.append(b);
  }
  load(p.code_formats.includes(cb.codeState.format) ? cb.codeState.format : p.code_formats[0]);
  return h("div", { class: "fb-code" }, [bar, out]);
}
