// Small DOM helpers shared by flowbook widgets. Text always goes in as text nodes, never as
// HTML, so captured model output can never run script.

/**
 * Create an element.
 * @param {string} tag
 * @param {Record<string, any>} [attrs] class, text, title, on* handlers, other attributes
 * @param {(Node|string|null|undefined)[]} [children]
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value") /** @type {any} */ (el).value = value;
    else if (key === "checked") /** @type {any} */ (el).checked = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

/** Seconds as "12s" / "2m 05s". @param {number} s */
export function formatSeconds(s) {
  const t = Math.max(0, Math.ceil(s));
  if (t < 60) return `${t}s`;
  return `${Math.floor(t / 60)}m ${String(t % 60).padStart(2, "0")}s`;
}

/**
 * Grow a textarea to fit its content (bounded). A textarea not laid out yet (not attached, or in
 * a hidden output) has scrollHeight 0: sizing it then would collapse it, so try again on a later
 * frame instead.
 * @param {HTMLTextAreaElement} ta @param {number} [tries]
 */
export function autosize(ta, tries = 30) {
  if (!ta.isConnected || ta.scrollHeight === 0) {
    ta.style.height = "";
    if (tries > 0) requestAnimationFrame(() => autosize(ta, tries - 1));
    return;
  }
  ta.style.height = "auto";
  ta.style.height = `${Math.min(ta.scrollHeight + 2, 400)}px`;
}

/**
 * Request/response over anywidget's custom messages: send {type, req, ...} and resolve with the
 * kernel's {type: "reply", req, ok, error}.
 * @param {any} model
 */
export function rpc(model) {
  let next = 1;
  /** @type {Map<number, (reply: any) => void>} */
  const waiting = new Map();
  /** @param {any} msg */
  const onMsg = (msg) => {
    if (msg && msg.type === "reply" && waiting.has(msg.req)) {
      const resolve = waiting.get(msg.req);
      waiting.delete(msg.req);
      resolve?.(msg);
    }
  };
  model.on("msg:custom", onMsg);
  return {
    /** @param {Record<string, any>} content @returns {Promise<any>} */
    call(content) {
      const req = next++;
      return new Promise((resolve) => {
        waiting.set(req, resolve);
        model.send({ ...content, req });
      });
    },
    dispose() {
      model.off("msg:custom", onMsg);
    },
  };
}
