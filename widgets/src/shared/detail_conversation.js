// The detail view's Conversation, Response, Raw and Intercept tabs. Captured text always goes into
// the page as text nodes; only the Markdown renderer (sanitised) produces elements from it.
import { diffLines, structuredPatch } from "diff";
import { h } from "./dom.js";
import { renderMarkdown, renderPlain, chipBase64 } from "./markdown.js";
import { copyButton, fold, fmtBytes, kvGrid, preBlock } from "./detail_util.js";

const SAFE_IMAGE = /^data:image\/(png|jpeg|jpg|gif|webp);base64,/i;
const DIFF_MAX_EDIT = 2000;
const MAX_TURNS = 120;

/** Plain text with base64 runs as chips. @param {string} text @param {string} [cls] */
function textBlock(text, cls = "fb-text") {
  const el = h("div", { class: cls, text });
  chipBase64(el);
  return el;
}

/** @param {any} part @param {string} role @param {any} cb */
function partView(part, role, cb) {
  const cut = part.truncated ? h("div", { class: "fb-note", text: "(cut: the part is longer)" }) : null;
  switch (part.type) {
    case "text":
      return h("div", { class: "fb-part" }, [
        role === "assistant" || role === "model" ? renderMarkdown(part.text) : textBlock(part.text), cut]);
    case "thinking":
      return fold(part.redacted ? "Thinking (redacted)" : `Thinking (${part.text.length.toLocaleString()} characters)`,
        [textBlock(part.text, "fb-text fb-thinking"), cut].filter(Boolean));
    case "tool_call":
      return h("div", { class: "fb-toolcall" }, [
        h("div", { class: "fb-part-head" }, [h("span", { class: "fb-badge fb-badge-tool", text: "tool call" }),
          h("code", { text: part.name || "?" }), part.id ? h("span", { class: "fb-muted fb-small", text: ` ${part.id}` }) : null,
          copyButton("tool call arguments", () => part.arguments, cb.onCopy)]),
        h("pre", { class: "fb-pre", text: part.arguments }), cut]);
    case "tool_result":
      return h("div", { class: `fb-toolresult${part.is_error ? " fb-is-error" : ""}` }, [
        h("div", { class: "fb-part-head" }, [h("span", { class: "fb-badge fb-badge-result",
          text: part.is_error ? "tool error" : "tool result" }),
          part.name ? h("code", { text: part.name }) : null,
          part.tool_call_id ? h("span", { class: "fb-muted fb-small", text: ` for ${part.tool_call_id}` }) : null]),
        textBlock(part.content, "fb-pre"), cut]);
    case "image": {
      const kids = [];
      if (part.data_url && SAFE_IMAGE.test(part.data_url)) {
        kids.push(h("img", { class: "fb-thumb", src: part.data_url, alt: "image from the request" }));
      }
      if (part.remote_url) kids.push(h("span", { class: "fb-md-blocked", text: `remote image not loaded: ${part.remote_url}` }));
      if (part.omitted) kids.push(h("span", { class: "fb-muted", text: part.omitted }));
      if (!kids.length) kids.push(h("span", { class: "fb-muted", text: `image (${part.media_type || "unknown type"})` }));
      return h("div", { class: "fb-part fb-image" }, kids);
    }
    default:
      return h("div", { class: "fb-part" }, [h("span", { class: "fb-badge", text: part.type }), textBlock(part.text || ""), cut]);
  }
}

/** @param {any} turn @param {any} cb @param {string} [extraClass] */
function turnView(turn, cb, extraClass = "") {
  const role = turn.role || "?";
  const text = turn.parts.map((/** @type {any} */ p) => p.text ?? p.arguments ?? p.content ?? "").join("\n");
  return h("div", { class: `fb-turn fb-role-${role} ${extraClass}` }, [
    h("div", { class: "fb-turn-head" }, [h("span", { class: "fb-role", text: role + (turn.name ? ` · ${turn.name}` : "") }),
      copyButton(`${role} message`, () => text, cb.onCopy)]),
    ...turn.parts.map((/** @type {any} */ p) => partView(p, role, cb)),
  ]);
}

/** The response as an assistant turn. @param {any} r */
function responseTurn(r) {
  /** @type {any[]} */
  const parts = [];
  if (r.thinking) parts.push({ type: "thinking", text: r.thinking });
  if (r.text) parts.push({ type: "text", text: r.text, truncated: r.truncated });
  if (r.refusal) parts.push({ type: "text", text: `Refusal: ${r.refusal}` });
  for (const c of r.tool_calls) parts.push({ type: "tool_call", id: c.id, name: c.name, arguments: c.arguments });
  return { role: "assistant", name: "response", parts };
}

/** @param {any} p payload @param {any} cb */
export function conversationTab(p, cb) {
  const c = p.conversation;
  const root = h("div", { class: "fb-conversation" });
  if (c.tools.length) {
    root.append(fold(`Tools offered (${c.tools.length})`, c.tools.map((/** @type {any} */ t) =>
      h("div", { class: "fb-tooldef" }, [h("code", { text: t.name }),
        t.description ? h("div", { class: "fb-muted fb-small", text: t.description }) : null,
        fold("parameters", [h("pre", { class: "fb-pre", text: t.parameters })])]))));
  }
  if (c.params && c.params !== "{}") root.append(fold("Parameters", [h("pre", { class: "fb-pre", text: c.params })]));
  // An agent's history can hold hundreds of turns: draw the latest ones, the rest on request.
  const hidden = Math.max(0, c.turns.length - MAX_TURNS);
  if (hidden) {
    const more = h("button", { class: "fb-btn fb-more", text: `Show ${hidden} earlier messages` });
    more.addEventListener("click", () => {
      more.replaceWith(...c.turns.slice(0, hidden).map((/** @type {any} */ t) => turnView(t, cb)));
    });
    root.append(more);
  }
  for (const t of c.turns.slice(hidden)) root.append(turnView(t, cb));
  if (p.response) root.append(turnView(responseTurn(p.response), cb, "fb-response-turn"));
  if (!c.turns.length && !p.response) root.append(h("div", { class: "fb-muted", text: "No messages were parsed from this request (see Raw)." }));
  return root;
}

/** @param {any} p payload @param {any} cb */
export function responseTab(p, cb) {
  const r = p.response;
  const root = h("div", { class: "fb-response" });
  if (!r) {
    root.append(h("div", { class: "fb-muted", text: p.overview.error ? `No response: ${p.overview.error.message}` : "No response yet." }));
    return root;
  }
  let plain = false;
  const body = h("div", { class: "fb-response-body" });
  const toggle = h("button", { class: "fb-btn", text: "Show plain text" });
  const draw = () => {
    body.replaceChildren(plain ? renderPlain(r.text) : renderMarkdown(r.text));
    toggle.textContent = plain ? "Show rendered" : "Show plain text";
  };
  toggle.addEventListener("click", () => { plain = !plain; draw(); });
  root.append(h("div", { class: "fb-toolbar" }, [copyButton("response text", () => r.text, cb.onCopy), toggle,
    h("span", { class: "fb-muted fb-small", text: [r.stop_reason && `stop: ${r.stop_reason}`, r.model, r.truncated && "text cut for display"].filter(Boolean).join(" · ") })]));
  if (r.refusal) root.append(h("div", { class: "fb-error", text: `Refusal: ${r.refusal}` }));
  if (r.thinking) root.append(fold("Thinking", [textBlock(r.thinking, "fb-text fb-thinking")]));
  if (r.text) { root.append(body); draw(); } else if (!r.tool_calls.length) root.append(h("div", { class: "fb-muted", text: "The response has no text." }));
  for (const c of r.tool_calls) root.append(partView({ type: "tool_call", ...c }, "assistant", cb));
  return root;
}

/** @param {any} body @param {string} label @param {any} cb */
function bodyBlock(body, label, cb) {
  if (!body || body.kind === "empty") return h("div", { class: "fb-muted", text: "(empty body)" });
  const note = [body.content_type, fmtBytes(body.size), body.kind === "binary" ? "binary: hex dump of the start" : "",
    body.truncated ? "cut for display" : ""].filter(Boolean).join(" · ");
  return preBlock(body.text, { label, note, onCopy: cb.onCopy });
}

/** @param {[string, string][]} headers */
function headerTable(headers) {
  const t = h("table", { class: "fb-table fb-headers" });
  for (const [k, v] of headers) t.append(h("tr", {}, [h("th", { text: k }), h("td", { class: "fb-mono", text: v })]));
  return t;
}

/** @param {any} p payload @param {any} cb */
export function rawTab(p, cb) {
  const root = h("div", { class: "fb-raw" });
  const { request, response } = p.raw;
  root.append(h("h4", { text: "Request" }), h("code", { class: "fb-line", text: request.line }),
    fold(`Headers (${request.headers.length})`, [headerTable(request.headers)], true),
    bodyBlock(request.body, "request body", cb));
  root.append(h("h4", { text: "Response" }));
  if (!response) root.append(h("div", { class: "fb-muted", text: "No response." }));
  else {
    root.append(h("code", { class: "fb-line", text: response.line }),
      fold(`Headers (${response.headers.length})`, [headerTable(response.headers)], true),
      bodyBlock(response.body, "response body", cb));
  }
  root.append(h("div", { class: "fb-muted fb-small", text: "Secrets (API keys, tokens, cookies) are masked; a short fingerprint is kept." }));
  return root;
}

/** Original vs modified text, side by side with changed lines marked. @param {string} a @param {string} b */
function sideBySide(a, b) {
  const left = h("pre", { class: "fb-pre fb-diff-side" });
  const right = h("pre", { class: "fb-pre fb-diff-side" });
  const changes = a === b ? null : diffLines(a, b, { maxEditLength: DIFF_MAX_EDIT });
  if (!changes) {
    left.textContent = a;
    right.textContent = b;
  } else {
    for (const ch of changes) {
      const span = (/** @type {string} */ cls) => h("span", { class: cls, text: ch.value });
      if (ch.added) right.append(span("fb-diff-add"));
      else if (ch.removed) left.append(span("fb-diff-del"));
      else { left.append(span("")); right.append(span("")); }
    }
  }
  return h("div", { class: "fb-diff" }, [
    h("div", {}, [h("div", { class: "fb-diff-title", text: "Original" }), left]),
    h("div", {}, [h("div", { class: "fb-diff-title", text: a === b ? "Modified (no change)" : "Modified" }), right]),
  ]);
}

/** Only what changed: unified hunks with two lines of context. @param {string} a @param {string} b */
function changedHunks(a, b) {
  const patch = structuredPatch("original", "modified", a, b, "", "", { context: 2, maxEditLength: DIFF_MAX_EDIT });
  if (!patch) return h("div", { class: "fb-muted", text: "Too many changes to list; compare the full texts below." });
  const pre = h("pre", { class: "fb-pre fb-hunks" });
  for (const hunk of patch.hunks) {
    pre.append(h("span", { class: "fb-hunk-head", text: `@@ original line ${hunk.oldStart}, modified line ${hunk.newStart} @@` }));
    for (const line of hunk.lines) {
      if (line.startsWith("\\")) continue; // "\\ No newline at end of file"
      const cls = line[0] === "+" ? "fb-diff-add" : line[0] === "-" ? "fb-diff-del-line" : "";
      pre.append(h("span", { class: cls, text: line }));
    }
  }
  return pre;
}

/** @param {any} p payload */
export function interceptTab(p) {
  const ic = p.intercept;
  const root = h("div", { class: "fb-intercept-tab" });
  for (const ev of ic.events) {
    root.append(h("div", { class: "fb-small" }, [h("span", { class: "fb-badge", text: String(ev.stage || "pause") }),
      ` ${Object.entries(ev).filter(([k]) => k !== "stage").map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ")}`]));
  }
  if (ic.rules_applied.length) root.append(kvGrid([["Rules applied", ic.rules_applied.join(", ")]]));
  for (const [name, pair] of [["Request", ic.request], ["Response", ic.response]]) {
    if (!pair) continue;
    const a = pair.original.body.text;
    const b = pair.modified.body.text;
    root.append(h("h4", { text: `${name}: original vs modified` }),
      a === b ? h("div", { class: "fb-muted", text: "Body unchanged." }) : changedHunks(a, b),
      fold("Full bodies side by side", [sideBySide(a, b)]));
    const hdr = (/** @type {[string,string][]} */ hs) => hs.map(([k, v]) => `${k}: ${v}`).join("\n");
    if (hdr(pair.original.headers) !== hdr(pair.modified.headers)) {
      root.append(fold("Headers", [sideBySide(hdr(pair.original.headers), hdr(pair.modified.headers))]));
    }
  }
  if (!ic.request && !ic.response) root.append(h("div", { class: "fb-muted", text: "Paused and released unchanged." }));
  return root;
}
