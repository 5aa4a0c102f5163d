// The intercept approval panel: paused flows with live countdowns, the request or response as
// structured editable JSON, and Resume / Resume edited / Drop / Mock. State lives in traits
// (`pending`, `status`, `notifications`); actions go to the kernel as custom messages and the
// kernel answers each with {ok, error}, so a rejected edit is shown next to the editor.
import { formatSeconds, h, rpc } from "./shared/dom.js";
import { jsonEditor } from "./shared/json_editor.js";
import "./intercept_panel.css";

/** @param {{ model: any, el: HTMLElement }} ctx */
function render({ model, el }) {
  const call = rpc(model);
  /** @type {string | null} */
  let selected = null;
  /** @type {Map<string, {editor: any, dirty: boolean, held: boolean, box: HTMLElement}>} */
  const editors = new Map();
  const seenNotices = new Set();

  const root = h("div", { class: "fb-intercept" });
  const header = h("div", { class: "fb-ip-header" });
  const toasts = h("div", { class: "fb-ip-toasts", "aria-live": "polite" });
  const queue = h("ul", { class: "fb-ip-queue" });
  const detail = h("div", { class: "fb-ip-detail" });
  const log = h("details", { class: "fb-ip-log" });
  root.append(header, toasts, h("div", { class: "fb-ip-main" }, [queue, detail]), log);
  el.append(root);

  /** @returns {any[]} */
  const pending = () => model.get("pending") || [];

  function drawHeader() {
    const s = model.get("status") || {};
    const n = pending().length;
    const what = s.enabled
      ? `Intercepting ${s.filter ? `“${s.filter}”` : "all LLM flows"} at the ${s.on} · ` +
        `timeout ${s.timeout}s → ${s.timeout_action}`
      : "Breakpoint off";
    header.replaceChildren(
      h("strong", { text: "Intercept" }),
      h("span", { class: "fb-ip-status", text: `${what} · ${s.rules ?? 0} rule(s)` }),
      h("span", { class: n ? "fb-ip-count fb-hot" : "fb-ip-count", text: `${n} paused` }),
    );
  }

  function drawNotices() {
    const list = model.get("notifications") || [];
    log.replaceChildren(h("summary", { text: `Notifications (${list.length})` }),
      ...list.slice().reverse().map((n) => h("div", { class: `fb-ip-note fb-${n.kind}`,
        text: `${new Date(n.t * 1000).toLocaleTimeString()} ${n.message}` })));
    for (const n of list) {
      const key = `${n.t}:${n.id}:${n.kind}`;
      if (seenNotices.has(key)) continue;
      seenNotices.add(key);
      if (n.kind === "paused" || n.kind === "timeout") {
        const toast = h("div", { class: `fb-ip-toast fb-${n.kind}`, role: "status",
          text: n.message });
        toasts.append(toast);
        setTimeout(() => toast.remove(), 6000);
      }
    }
  }

  function drawQueue() {
    const items = pending();
    if (selected && !items.some((p) => p.id === selected)) selected = null;
    if (!selected && items.length) selected = items[0].id;
    for (const id of [...editors.keys()]) {
      if (!items.some((p) => p.id === id)) editors.delete(id);
    }
    queue.replaceChildren(...items.map((p) => h("li", {
      class: p.id === selected ? "fb-ip-item fb-selected" : "fb-ip-item",
      "data-id": p.id,
      onclick: () => { selected = p.id; drawQueue(); drawDetail(); },
    }, [
      h("span", { class: `fb-badge fb-${p.stage}`, text: p.stage }),
      h("span", { class: "fb-ip-model", text: p.model || p.path }),
      h("span", { class: "fb-ip-meta", text: `${p.provider}/${p.api}${p.stream ? " · stream" : ""}` }),
      h("span", { class: "fb-countdown", "data-id": p.id }),
    ])));
    if (!items.length) queue.append(h("li", { class: "fb-ip-empty", text: "No paused flows" }));
    tick();
  }

  function tick() {
    const now = Date.now();
    for (const p of pending()) {
      const text = p.editing ? `editing · ${formatSeconds(p.remaining_s)} left (paused)`
        : formatSeconds(p.deadline_ms ? (p.deadline_ms - now) / 1000 : p.remaining_s);
      for (const span of root.querySelectorAll(`.fb-countdown[data-id="${p.id}"]`)) {
        span.textContent = text;
        span.classList.toggle("fb-held", Boolean(p.editing));
      }
    }
  }

  /** @param {any} p */
  function editorFor(p) {
    let entry = editors.get(p.id);
    if (entry) return entry;
    const box = h("div");
    entry = { editor: null, dirty: false, held: false, box };
    const made = entry;
    made.editor = jsonEditor(p.editable ?? {}, {
      onFocus: () => {
        if (!made.held) {
          made.held = true;
          act(p, "hold");
        }
      },
      onChange: () => { made.dirty = true; updateButtons(p); },
    });
    box.append(made.editor.el);
    editors.set(p.id, made);
    return made;
  }

  const errorLine = h("div", { class: "fb-ip-error", role: "alert" });
  const mockText = /** @type {HTMLTextAreaElement} */ (h("textarea", {
    class: "fb-ip-mock", placeholder: "Mock reply text", rows: 2 }));
  const buttons = {
    resume: h("button", { class: "fb-btn", "data-action": "resume", text: "Resume" }),
    edited: h("button", { class: "fb-btn fb-primary", "data-action": "resume_edited",
      text: "Resume edited" }),
    drop: h("button", { class: "fb-btn fb-danger", "data-action": "drop", text: "Drop" }),
    mock: h("button", { class: "fb-btn", "data-action": "mock", text: "Mock" }),
    cancel: h("button", { class: "fb-btn fb-quiet", "data-action": "cancel_edit",
      text: "Discard edits" }),
  };

  /** @param {any} p */
  function updateButtons(p) {
    const entry = editors.get(p.id);
    const ok = !entry || entry.editor.valid;
    /** @type {any} */ (buttons.edited).disabled = !entry?.dirty || !ok;
    errorLine.textContent = ok ? "" : "Fix the JSON before resuming";
  }

  function drawDetail() {
    const p = pending().find((q) => q.id === selected);
    if (!p) {
      delete detail.dataset.shown;
      detail.replaceChildren(h("div", { class: "fb-ip-empty",
        text: "Paused flows appear here; other traffic keeps flowing." }));
      return;
    }
    const entry = editorFor(p);
    // The same flow at the same stage is on screen (a pending update only moved its countdown
    // or its "editing" flag): leave the editor in place. Rebuilding the pane would detach the
    // textarea being typed in and lose its focus mid-edit.
    const key = `${p.id}:${p.stage}`;
    if (detail.dataset.shown === key && detail.contains(entry.box)) {
      updateButtons(p);
      tick();
      return;
    }
    detail.dataset.shown = key;
    buttons.resume.onclick = () => act(p, "resume");
    buttons.edited.onclick = () => act(p, "resume_edited", { body: entry.editor.value });
    buttons.drop.onclick = () => act(p, "drop");
    buttons.mock.onclick = () => act(p, "mock", { text: mockText.value });
    buttons.cancel.onclick = () => {
      editors.delete(p.id);
      if (entry.held) act(p, "release");
      delete detail.dataset.shown;  // a fresh editor with the original value
      drawDetail();
    };
    detail.replaceChildren(
      h("div", { class: "fb-ip-title" }, [
        h("span", { class: `fb-badge fb-${p.stage}`, text: `${p.stage} paused` }),
        h("code", { text: `${p.method} ${p.host}${p.path}` }),
        h("span", { class: "fb-countdown", "data-id": p.id }),
      ]),
      h("div", { class: "fb-ip-hint", text: p.stage === "response" && p.stream
        ? "Streamed response shown as its non-streamed body; the client receives your edit as a stream."
        : `Flow ${p.id} · paused by ${p.reason}` }),
      entry.box,
      h("details", { class: "fb-fold" }, [h("summary", { text: "Headers" }),
        h("pre", { text: Object.entries(p.headers || {}).map(([k, v]) => `${k}: ${v}`)
          .join("\n") })]),
      h("div", { class: "fb-ip-actions" }, [buttons.resume, buttons.edited, buttons.drop,
        buttons.cancel]),
      h("div", { class: "fb-ip-mockrow" }, [mockText, buttons.mock]),
      errorLine,
    );
    updateButtons(p);
    tick();
  }

  /** @param {any} p @param {string} action @param {Record<string, any>} [extra] */
  async function act(p, action, extra = {}) {
    const reply = await call.call({ type: "action", action, id: p.id, ...extra });
    if (!reply.ok) errorLine.textContent = reply.error;
    else if (action !== "hold" && action !== "release") errorLine.textContent = "";
  }

  const redraw = () => { drawHeader(); drawQueue(); drawDetail(); };
  model.on("change:pending", redraw);
  model.on("change:status", drawHeader);
  model.on("change:notifications", drawNotices);
  redraw();
  drawNotices();
  const timer = setInterval(tick, 250);
  return () => {
    clearInterval(timer);
    call.dispose();
    model.off("change:pending", redraw);
    model.off("change:status", drawHeader);
    model.off("change:notifications", drawNotices);
  };
}

export default { render };
