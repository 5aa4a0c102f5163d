// The flow table's split pane: asks the kernel for one flow's detail payload and mounts the
// shared detail view (shared/detail_view.js, also used by fb.show) in it. Opening the same
// flow again (a streaming flow refreshed) updates the view in place, keeping tab and scroll.
import { h } from "./dom.js";
import { mountDetail } from "./detail_view.js";

let token = 0;
/** @type {{ id: string, view: any } | null} */
let mounted = null;

/**
 * @param {HTMLElement} pane
 * @param {string} id
 * @param {{ call: (c: Record<string, any>) => Promise<any> }} rpc
 * @param {{ onClose: () => void }} callbacks
 */
export function openDetail(pane, id, rpc, callbacks) {
  const mine = ++token;
  const same = mounted !== null && mounted.id === id && pane.contains(pane.querySelector(".fb-detail"));
  if (!same) {
    mounted?.view?.destroy?.();
    mounted = null;
    const close = h("button", { class: "fbt-btn fbt-quiet fbt-pane-close", text: "✕",
      title: "Close (Esc)", "aria-label": "Close detail" });
    close.addEventListener("click", () => {
      mounted?.view?.destroy?.();
      mounted = null;
      pane.replaceChildren();
      callbacks.onClose();
    });
    const body = h("div", { class: "fbt-pane-body" }, [
      h("div", { class: "fbt-pane-loading", text: "Loading…" })]);
    pane.replaceChildren(h("div", { class: "fbt-pane-head" }, [
      h("span", { class: "fbt-pane-id", text: `flow ${id}` }), close]), body);
    setTimeout(() => {
      if (mine === token && !mounted) {
        body.replaceChildren(h("div", { class: "fbt-pane-loading", text: "waiting for kernel…" }));
      }
    }, 600);
  }
  rpc.call({ type: "open", id }).then((reply) => {
    if (mine !== token) return; // another row was opened meanwhile
    const body = /** @type {HTMLElement} */ (pane.querySelector(".fbt-pane-body"));
    if (!body) return; // closed meanwhile
    if (!reply.ok) {
      body.replaceChildren(h("div", { class: "fbt-pane-error", text: reply.error }));
      return;
    }
    if (mounted && mounted.id === id) {
      mounted.view.update(reply.payload);
      return;
    }
    body.replaceChildren();
    const view = mountDetail(body, reply.payload, {
      onAnnotate: (/** @type {any} */ notes) => rpc.call({ type: "annotate", id, ...notes }),
    });
    mounted = { id, view };
  });
}
