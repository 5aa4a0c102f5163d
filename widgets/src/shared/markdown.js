// Captured model output as safe Markdown. Nothing captured ever runs or fetches:
// * raw HTML in the Markdown is shown as text (marked's html tokens are escaped), and the result
//   still goes through DOMPurify with a short allow-list (no script, style, iframe, form, svg,
//   media, event handlers or style attributes);
// * links keep only http(s)/mailto targets, open in a new tab with rel="noopener noreferrer";
//   any other protocol (javascript:, data:, vbscript:, file:) leaves inert text;
// * images render only from data:image/(png|jpeg|gif|webp) URLs; a remote image becomes a
//   "blocked image" placeholder naming its URL, so the browser never requests it;
// * text past MAX_MARKDOWN characters, or nested deeper than MAX_DEPTH, is shown as plain text
//   (marked's recursion and the DOM would choke on it);
// * long base64 runs in text become chips ("base64 · 12 KB"), not walls of characters.
import { Marked } from "marked";
import createDOMPurify from "dompurify";
import { h } from "./dom.js";

export const MAX_MARKDOWN = 150_000;
export const MAX_DEPTH = 40;
const BASE64_RUN = /[A-Za-z0-9+/]{200,}={0,2}/g;
const SAFE_LINK = /^(https?:|mailto:)/i;
const SAFE_IMAGE = /^data:image\/(png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+/=\s]+$/i;
const ALLOWED_TAGS = ["p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b",
  "i", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a", "img", "table", "thead",
  "tbody", "tr", "th", "td", "span", "div", "sup", "sub", "kbd"];
const ALLOWED_ATTR = ["href", "src", "alt", "title", "start", "colspan", "rowspan", "align"];

/** @param {string} s */
const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => ({
  "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] || c);

const marked = new Marked({ gfm: true, breaks: false, async: false });
marked.use({
  renderer: {
    // Raw HTML written by the model (or smuggled into it) is shown, not interpreted.
    /** @param {{ text: string }} token */
    html(token) { return escapeHtml(token.text); },
  },
});

/** @type {any} */
let purifier = null;
function getPurifier() {
  if (purifier) return purifier;
  purifier = createDOMPurify(window);
  // DOMPurify drops unsafe URLs before the attribute hook runs; remember them to name them.
  purifier.addHook("uponSanitizeElement", (/** @type {any} */ node, /** @type {any} */ data) => {
    if (data.tagName === "a") node._fbUrl = node.getAttribute?.("href") || "";
    if (data.tagName === "img") node._fbUrl = node.getAttribute?.("src") || "";
  });
  purifier.addHook("afterSanitizeAttributes", (/** @type {any} */ node) => {
    if (node.tagName === "A") {
      const href = node.getAttribute("href") || "";
      if (!SAFE_LINK.test(href.trim())) {
        node.removeAttribute("href");
        node.setAttribute("class", "fb-md-inert");
        node.setAttribute("title", `link not followed: ${String(node._fbUrl || href).slice(0, 200)}`);
      } else {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow");
        node.setAttribute("title", href.slice(0, 500));
      }
    }
    if (node.tagName === "IMG") {
      // This hook runs in DOMPurify's inert document. An <img> with a remote src must lose it
      // here: once imported into the page, the element would start loading even detached.
      const src = node.getAttribute("src") || "";
      if (!SAFE_IMAGE.test(src)) {
        node.removeAttribute("src");
        node.setAttribute("data-fb-blocked", String(node._fbUrl || src).slice(0, 500));
      }
    }
  });
  return purifier;
}

/**
 * Replace <img> elements whose source is not an inline image by a placeholder. Runs on the
 * sanitised fragment before it is attached to the page, so the browser never requests them.
 * @param {DocumentFragment} frag
 */
function blockImages(frag) {
  for (const img of [...frag.querySelectorAll("img")]) {
    const src = img.getAttribute("src") || "";
    if (src && SAFE_IMAGE.test(src)) {
      img.classList.add("fb-md-img");
      continue;
    }
    const was = img.getAttribute("data-fb-blocked") || "";
    const alt = img.getAttribute("alt");
    img.replaceWith(h("span", { class: "fb-md-blocked", title: was,
      text: `image not loaded${alt ? ` “${alt}”` : ""}: ${was.slice(0, 120) || "(no source)"}` }));
  }
}

/**
 * Text nodes holding long base64 runs: the runs become chips.
 * @param {Node} root
 */
export function chipBase64(root) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  /** @type {Text[]} */
  const hits = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    BASE64_RUN.lastIndex = 0;
    if (BASE64_RUN.test(/** @type {Text} */ (n).data)) hits.push(/** @type {Text} */ (n));
  }
  for (const node of hits) {
    const text = node.data;
    const out = document.createDocumentFragment();
    let last = 0;
    for (const m of text.matchAll(BASE64_RUN)) {
      const i = m.index ?? 0;
      out.append(text.slice(last, i), base64Chip(m[0]));
      last = i + m[0].length;
    }
    out.append(text.slice(last));
    node.replaceWith(out);
  }
}

/** @param {string} run */
function base64Chip(run) {
  const kb = (run.length * 0.75) / 1024;
  const chip = h("span", { class: "fb-chip", title: "click to copy the base64 text",
    text: `base64 · ${kb >= 1 ? `${kb.toFixed(kb >= 10 ? 0 : 1)} KB` : `${Math.round(kb * 1024)} B`}` });
  chip.addEventListener("click", () => navigator.clipboard?.writeText(run).catch(() => {}));
  return chip;
}

/** How deep does this Markdown nest (block quotes and list indentation)? @param {string} text */
export function nestingDepth(text) {
  let depth = 0;
  for (const line of text.split("\n", 20_000)) {
    const m = /^([\s>]*)/.exec(line);
    if (!m) continue;
    const quotes = (m[1].match(/>/g) || []).length;
    const indent = m[1].replace(/>/g, "").length;
    depth = Math.max(depth, quotes + Math.floor(indent / 2));
  }
  return depth;
}

/**
 * Plain text view (pre-wrapped), base64 runs as chips.
 * @param {string} text @param {string} [why]
 */
export function renderPlain(text, why) {
  const box = h("div", { class: "fb-md fb-md-plain" });
  if (why) box.append(h("div", { class: "fb-md-note", text: why }));
  const pre = h("pre", { class: "fb-pre", text });
  chipBase64(pre);
  box.append(pre);
  return box;
}

/**
 * Render captured Markdown safely; returns a detached element.
 * @param {string} text
 * @returns {HTMLElement}
 */
export function renderMarkdown(text) {
  if (text.length > MAX_MARKDOWN) {
    return renderPlain(text, `Shown as plain text: ${text.length.toLocaleString()} characters ` +
      `is more than the Markdown limit of ${MAX_MARKDOWN.toLocaleString()}.`);
  }
  if (nestingDepth(text) > MAX_DEPTH) {
    return renderPlain(text, "Shown as plain text: the Markdown nests too deeply to render.");
  }
  let html;
  try {
    html = /** @type {string} */ (marked.parse(text));
  } catch (err) {
    return renderPlain(text, `Shown as plain text: Markdown failed (${err}).`);
  }
  const frag = /** @type {DocumentFragment} */ (getPurifier().sanitize(html, {
    ALLOWED_TAGS, ALLOWED_ATTR, ALLOW_DATA_ATTR: false, RETURN_DOM_FRAGMENT: true,
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|data:image\/(?:png|jpeg|jpg|gif|webp);base64,|#)/i,
  }));
  blockImages(frag);
  chipBase64(frag);
  const box = h("div", { class: "fb-md" });
  box.append(frag);
  return box;
}
