// The flow diff: two flows side by side. The kernel sends the structure (overview, parameters,
// tools, messages aligned by content, texts) in the `data` trait; this view lays it out and
// highlights text changes with jsdiff, by line first and then by word inside changed lines,
// always bounded by maxEditLength so a huge, very different text degrades to whole blocks
// instead of freezing the page. Captured text only ever goes in as text nodes (h()).
import { diffLines, diffWordsWithSpace } from "diff";
import { h } from "./shared/dom.js";
import "./diff.css";

const MAX_LINE_EDITS = 2000;
const MAX_WORD_EDITS = 4000;
// Runs of equal messages longer than this fold into one "N equal messages" row.
const FOLD_EQUAL_RUN = 3;
const KIND_LABEL = { insert: "inserted", delete: "removed", change: "changed", equal: "same" };

/**
 * Two text nodes containers, left (A) and right (B), with removed text marked on the left and
 * added text on the right.
 * @param {string} a @param {string} b
 * @returns {[HTMLElement, HTMLElement]}
 */
export function sideBySide(a, b) {
  const left = h("div", { class: "fb-d-text" });
  const right = h("div", { class: "fb-d-text" });
  /** @param {HTMLElement} el @param {string} text @param {string} [cls] */
  const put = (el, text, cls) => {
    if (!text) return;
    el.append(cls ? h("span", { class: cls, text }) : document.createTextNode(text));
  };
  if (a === b) {
    put(left, a);
    put(right, b);
    return [left, right];
  }
  const lines = diffLines(a, b, { maxEditLength: MAX_LINE_EDITS });
  if (!lines) {
    // Too different to diff cheaply: show both whole, marked as replaced.
    put(left, a, "fb-d-del");
    put(right, b, "fb-d-ins");
    left.prepend(h("div", { class: "fb-d-note", text: "too different to align word by word" }));
    return [left, right];
  }
  for (let i = 0; i < lines.length; i++) {
    const c = lines[i];
    const next = lines[i + 1];
    if (c.removed && next && next.added) {
      const words = diffWordsWithSpace(c.value, next.value, { maxEditLength: MAX_WORD_EDITS });
      if (words) {
        for (const w of words) {
          if (w.removed) put(left, w.value, "fb-d-del");
          else if (w.added) put(right, w.value, "fb-d-ins");
          else {
            put(left, w.value);
            put(right, w.value);
          }
        }
      } else {
        put(left, c.value, "fb-d-del");
        put(right, next.value, "fb-d-ins");
      }
      i++;
    } else if (c.removed) put(left, c.value, "fb-d-del");
    else if (c.added) put(right, c.value, "fb-d-ins");
    else {
      put(left, c.value);
      put(right, c.value);
    }
  }
  return [left, right];
}

/** @param {string} title @param {(Node|string)[]} children @param {string} [cls] */
function section(title, children, cls = "") {
  return h("section", { class: `fb-d-section ${cls}` }, [
    h("h4", { class: "fb-d-title", text: title }),
    ...children,
  ]);
}

/** A field | A | B table. @param {any[]} rows @param {string} [prefix] */
function fieldTable(rows, prefix = "") {
  const body = rows.map((r) =>
    h("tr", { class: `fb-d-${r.kind}` }, [
      h("td", { class: "fb-d-key", text: prefix + r.path }),
      h("td", { class: r.kind === "added" ? "fb-d-cell fb-d-empty" : "fb-d-cell fb-d-a", text: r.kind === "added" ? "—" : r.a }),
      h("td", { class: r.kind === "removed" ? "fb-d-cell fb-d-empty" : "fb-d-cell fb-d-b", text: r.kind === "removed" ? "—" : r.b }),
    ]),
  );
  return h("table", { class: "fb-d-fields" }, [
    h("thead", {}, [h("tr", {}, [h("th", { text: "field" }), h("th", { text: "A" }), h("th", { text: "B" })])]),
    h("tbody", {}, body),
  ]);
}

/** Side-by-side text section (system prompt, response). @param {string} title @param {any} t */
function textSection(title, t) {
  const [left, right] = sideBySide(t.a || "", t.b || "");
  return section(title, [h("div", { class: "fb-d-pair" }, [left, right])]);
}

/** One side of a message row. @param {any} m @param {"a"|"b"} side */
function messageCell(m, side) {
  const text = m[side];
  const index = m[`${side}_index`];
  if (text === null || text === undefined) return h("div", { class: "fb-d-msg fb-d-missing" });
  return h("div", { class: `fb-d-msg fb-d-role-${m.role}` }, [
    h("div", { class: "fb-d-msg-head" }, [
      h("span", { class: "fb-d-role", text: m.role }),
      h("span", { class: "fb-d-idx", text: `#${index}` }),
      m.kind === "equal" ? null : h("span", { class: `fb-d-badge fb-d-${m.kind}`, text: KIND_LABEL[m.kind] }),
    ]),
    h("div", { class: "fb-d-text", text }),
  ]);
}

/** @param {any} m */
function messageRow(m) {
  if (m.kind !== "change") {
    const row = h("div", { class: `fb-d-row fb-d-${m.kind}` }, [messageCell(m, "a"), messageCell(m, "b")]);
    if (m.kind === "equal") {
      row.title = "same in both (click to expand)";
      row.addEventListener("click", () => row.classList.toggle("fb-d-open"));
    }
    return row;
  }
  const [left, right] = sideBySide(m.a, m.b);
  const cellA = messageCell(m, "a");
  const cellB = messageCell(m, "b");
  cellA.lastChild?.replaceWith(left);
  cellB.lastChild?.replaceWith(right);
  return h("div", { class: "fb-d-row fb-d-change" }, [cellA, cellB]);
}

/** Messages, with long runs of equal ones folded. @param {any[]} messages @param {boolean} onlyChanges */
function messagesSection(messages, onlyChanges) {
  const rows = [];
  let run = [];
  const flush = () => {
    if (onlyChanges) {
      if (run.length) rows.push(h("div", { class: "fb-d-fold", text: `${run.length} equal message(s) hidden` }));
    } else if (run.length > FOLD_EQUAL_RUN) {
      const hidden = run.slice(1, -1);
      const holder = h("div", { class: "fb-d-foldbox" });
      const fold = h("button", {
        class: "fb-d-fold",
        text: `⋯ ${hidden.length} equal messages`,
        onclick: () => holder.replaceWith(...hidden.map(messageRow)),
      });
      holder.append(fold);
      rows.push(messageRow(run[0]), holder, messageRow(run[run.length - 1]));
    } else rows.push(...run.map(messageRow));
    run = [];
  };
  for (const m of messages) {
    if (m.kind === "equal") run.push(m);
    else {
      flush();
      rows.push(messageRow(m));
    }
  }
  flush();
  const changed = messages.filter((m) => m.kind !== "equal").length;
  return section(`Messages — ${messages.length} aligned, ${changed} changed`, [
    h("div", { class: "fb-d-messages" }, rows),
  ], "fb-d-msgs");
}

/** @param {{ model: any, el: HTMLElement }} ctx */
function render({ model, el }) {
  const root = h("div", { class: "fb-diff" });
  el.append(root);
  let onlyChanges = false;

  function draw() {
    const d = model.get("data") || {};
    if (!d.a) {
      root.replaceChildren(h("div", { class: "fb-d-note", text: "No diff loaded." }));
      return;
    }
    const n = (d.summary || []).length;
    const toggle = h("label", { class: "fb-d-toggle" }, [
      h("input", { type: "checkbox", checked: onlyChanges, onchange: (/** @type {Event} */ e) => {
        onlyChanges = /** @type {HTMLInputElement} */ (e.target).checked;
        draw();
      } }),
      " only changes",
    ]);
    /** @param {any} s @param {string} label */
    const chip = (s, label) => h("span", { class: "fb-d-chip" }, [
      h("strong", { text: label }),
      ` ${s.provider} · ${s.model} `,
      h("code", { text: s.id }),
    ]);
    const header = h("div", { class: "fb-d-header" }, [
      chip(d.a, "A"), h("span", { class: "fb-d-arrow", text: "→" }), chip(d.b, "B"),
      h("span", { class: n ? "fb-d-count" : "fb-d-count fb-d-same", text: n ? `${n} difference${n === 1 ? "" : "s"}` : "identical" }),
      toggle,
    ]);
    const parts = [header];
    if (!n) {
      parts.push(h("div", { class: "fb-d-note", text: `No differences (ignoring ${(d.ignore || []).join(", ") || "nothing"}).` }));
    }
    if (d.overview?.length) parts.push(section("Overview", [fieldTable(d.overview)]));
    if (d.params?.length) parts.push(section("Parameters", [fieldTable(d.params)]));
    if (d.tools?.length) {
      parts.push(section("Tools", d.tools.map((/** @type {any} */ t) => h("div", { class: `fb-d-tool fb-d-${t.kind}` }, [
        h("div", {}, [h("code", { text: t.name }), h("span", { class: `fb-d-badge fb-d-${t.kind}`, text: t.kind })]),
        t.changes.length ? fieldTable(t.changes) : null,
      ]))));
    }
    if (d.system?.changed || (!onlyChanges && d.system?.a)) parts.push(textSection(d.system.changed ? "System prompt (changed)" : "System prompt", d.system));
    if (d.messages?.length) parts.push(messagesSection(d.messages, onlyChanges));
    if (d.response?.changed || (!onlyChanges && (d.response?.a || d.response?.b))) {
      parts.push(textSection(d.response.changed ? "Response text (changed)" : "Response text", d.response));
    }
    if (d.thinking?.changed) parts.push(textSection("Thinking (changed)", d.thinking));
    if (d.response_fields?.length) parts.push(section("Response", [fieldTable(d.response_fields)]));
    root.replaceChildren(...parts);
  }

  draw();
  model.on("change:data", draw);
  return () => model.off("change:data", draw);
}

export default { render };
