// The flow table's split pane: asks the kernel for one flow's detail payload and mounts the
// detail view in it. Everything from the flow goes in as text.
import { h } from "./dom.js";

let token = 0;

/**
 * @param {HTMLElement} pane
 * @param {string} id
 * @param {{ call: (c: Record<string, any>) => Promise<any> }} rpc
 * @param {{ onClose: () => void, onBookmark: (on: boolean) => any }} callbacks
 */
export function openDetail(pane, id, rpc, callbacks) {
  const mine = ++token;
  const close = h("button", { class: "fb-btn fb-quiet fb-pane-close", text: "✕",
    title: "Close (Esc)", "aria-label": "Close detail" });
  close.addEventListener("click", () => {
    pane.replaceChildren();
    callbacks.onClose();
  });
  const body = h("div", { class: "fb-pane-body" });
  const hadContent = pane.querySelector(".fb-pane-body > *") !== null;
  if (!hadContent) body.append(h("div", { class: "fb-pane-loading", text: "Loading…" }));
  const slow = setTimeout(() => {
    if (mine === token && !body.dataset.loaded) {
      body.replaceChildren(h("div", { class: "fb-pane-loading", text: "waiting for kernel…" }));
    }
  }, 600);
  const head = h("div", { class: "fb-pane-head" }, [h("span", { class: "fb-pane-id",
    text: `flow ${id}` }), close]);
  if (!hadContent) pane.replaceChildren(head, body);
  rpc.call({ type: "open", id }).then((reply) => {
    clearTimeout(slow);
    if (mine !== token) return; // another row was opened meanwhile
    body.dataset.loaded = "1";
    if (!reply.ok) {
      body.replaceChildren(h("div", { class: "fb-pane-error", text: reply.error }));
      pane.replaceChildren(head, body);
      return;
    }
    const scroll = pane.querySelector(".fb-pane-body")?.scrollTop ?? 0;
    body.replaceChildren();
    pane.replaceChildren(head, body);
    mount(body, reply.payload, callbacks);
    body.scrollTop = scroll;
  });
}

/** @param {HTMLElement} el @param {any} p @param {{ onBookmark: (on: boolean) => any }} cb */
function mount(el, p, cb) {
  const row = (/** @type {string} */ k, /** @type {any} */ v) =>
    v === null || v === undefined || v === "" ? null
      : h("div", { class: "fb-kv" }, [h("span", { class: "fb-k", text: k }),
        h("span", { class: "fb-v", text: String(v) })]);
  el.append(
    h("div", { class: "fb-pane-title", text: `${p.model || "?"} · ${p.provider || ""}` }),
    h("div", { class: "fb-kvs" }, [row("state", p.state), row("status", p.status_code),
      row("latency ms", p.latency_ms && Math.round(p.latency_ms)),
      row("TTFT ms", p.ttft_ms && Math.round(p.ttft_ms))]),
    h("div", { class: "fb-section", text: "Response" }),
    h("pre", { class: "fb-response", text: p.response_text || "(no text)" }),
  );
  void cb;
}
