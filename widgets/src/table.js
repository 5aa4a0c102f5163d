// The live flow table. Rows live in the kernel: the browser asks for the visible window
// ({type: "page", req, version, offset, limit}) and decodes the Arrow IPC reply with flechette;
// the kernel also pushes the visible window when flows arrive or change (that reaches the page
// even while another cell runs). Replies older than the newest known view version are dropped.
// A small own virtual list shows any number of rows (see shared/virtual_list.js).
import { tableFromIPC } from "@uwdata/flechette";
import { h, rpc } from "./shared/dom.js";
import { virtualList } from "./shared/virtual_list.js";
import { COLUMNS, isLive } from "./shared/table_columns.js";
import { openDetail } from "./shared/table_detail.js";
import "./detail.css"; // the detail view's styles, for the split pane
import "./table.css";

const ROW_H = 28;
const MARGIN = 40; // rows fetched above and below the visible ones
const WAIT_NOTE_MS = 400; // show "waiting for kernel" for requests older than this
const MAX_CACHED = 4000; // rows kept in the browser

/** @param {DataView | ArrayBuffer} buf */
function decode(buf) {
  const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf)
    : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  return tableFromIPC(bytes).toArray();
}

/** @param {{ model: any, el: HTMLElement }} ctx */
function render({ model, el }) {
  const call = rpc(model);
  let version = model.get("version");
  let dataVersion = -1; // version of the rows in `rows`
  /** @type {Map<number, any>} */
  let rows = new Map();
  let nextReq = 1;
  /** @type {{req: number, version: number, first: number, last: number, sent: number} | null} */
  let inflight = null;
  let cursor = -1;
  let detailId = /** @type {string | null} */ (null);
  const widths = { ...Object.fromEntries(COLUMNS.map((c) => [c.key, c.width])),
    ...(model.get("column_widths") || {}) };

  // ---- layout ------------------------------------------------------------------------------
  const root = h("div", { class: "fbt-table" });
  const filterInput = /** @type {HTMLInputElement} */ (h("input", {
    class: "fbt-filter", type: "text", spellcheck: "false", "aria-label": "Filter",
    placeholder: "Filter: model:gpt-4o AND latency:>2s, is:error, ~d api.openai.com …",
    value: model.get("filter_expr") }));
  const status = h("span", { class: "fbt-status", "aria-live": "polite" });
  const waiting = h("span", { class: "fbt-waiting", text: "waiting for kernel…" });
  const diffBtn = /** @type {HTMLButtonElement} */ (h("button", { class: "fbt-btn fbt-diff",
    text: "Diff", title: "Compare the two selected flows (Ctrl/⌘-click selects a second row)" }));
  const clearBtn = h("button", { class: "fbt-btn fbt-quiet", text: "Clear selection" });
  const toolbar = h("div", { class: "fbt-toolbar" }, [filterInput, diffBtn, clearBtn, waiting,
    status]);
  const errorBox = h("div", { class: "fbt-filter-error", role: "alert" });
  const chips = h("div", { class: "fbt-chips" });
  const header = h("div", { class: "fbt-thead", role: "row" });
  const headWrap = h("div", { class: "fbt-thead-wrap" }, [header]);
  const viewport = h("div", { class: "fbt-viewport", tabindex: "0", role: "grid",
    "aria-label": "Flows" });
  const empty = h("div", { class: "fbt-empty" });
  const tableCol = h("div", { class: "fbt-tablecol" }, [headWrap, viewport, empty]);
  // The header scrolls sideways with the rows.
  viewport.addEventListener("scroll", () => {
    header.style.transform = `translateX(${-viewport.scrollLeft}px)`;
  }, { passive: true });
  const pane = h("div", { class: "fbt-pane" });
  const split = h("div", { class: "fbt-split" }, [tableCol, pane]);
  const actionNote = h("div", { class: "fbt-action-note", role: "status" });
  root.append(toolbar, errorBox, chips, split, actionNote);
  el.append(root);

  // Fixed height (JupyterLab detaches outputs scrolled away; a fixed box keeps the layout),
  // shrunk to the rows when there are few and no detail is open.
  const applyHeight = () => {
    const max = model.get("height") || 460;
    const need = 34 + Math.max(3, model.get("total") || 0) * ROW_H + 18;
    const open = split.classList.contains("fbt-with-pane");
    split.style.height = `${open ? max : Math.min(max, Math.max(150, need))}px`;
  };
  applyHeight();

  // ---- columns -----------------------------------------------------------------------------
  function applyWidths() {
    // The preview column takes whatever width is left over.
    const tpl = COLUMNS.map((c) => (c.key === "preview" ? `minmax(${widths[c.key]}px, 1fr)`
      : `${widths[c.key]}px`)).join(" ");
    root.style.setProperty("--fbt-cols", tpl);
    const total = COLUMNS.reduce((s, c) => s + widths[c.key], 0);
    root.style.setProperty("--fbt-width", `${total}px`);
    list?.setWidth(total);
  }

  function drawHeader() {
    const by = model.get("sort_by");
    const order = model.get("sort_order");
    header.replaceChildren(...COLUMNS.map((c) => {
      const sorted = c.sort === by;
      const cell = h("div", {
        class: `fbt-th${c.align ? ` fbt-${c.align}` : ""}${sorted ? " fbt-sorted" : ""}`,
        "data-col": c.key, role: "columnheader",
        "aria-sort": sorted ? (order === "asc" ? "ascending" : "descending") : "none",
        title: c.sort ? `Sort by ${c.label}` : c.label,
      }, [h("span", { text: c.label }),
        h("span", { class: "fbt-arrow", text: sorted ? (order === "asc" ? "▲" : "▼") : "" })]);
      cell.addEventListener("click", (ev) => {
        if (/** @type {HTMLElement} */ (ev.target).classList.contains("fbt-resize")) return;
        if (!c.sort) return;
        const asc = sorted ? order !== "asc" : ["provider", "model", "state", "preview"]
          .includes(c.sort);
        model.set("sort_by", c.sort);
        model.set("sort_order", asc ? "asc" : "desc");
        model.save_changes();
        noteWaiting();
      });
      const grip = h("div", { class: "fbt-resize", title: "Drag to resize" });
      grip.addEventListener("pointerdown", (ev) => startResize(ev, c.key, grip));
      cell.append(grip);
      return cell;
    }));
  }

  /** @param {PointerEvent} ev @param {string} key @param {HTMLElement} grip */
  function startResize(ev, key, grip) {
    ev.preventDefault();
    ev.stopPropagation();
    const x0 = ev.clientX;
    const w0 = widths[key];
    void grip;
    // Listen on the window: the header may be redrawn (a sort change arriving) mid-drag.
    const move = (/** @type {PointerEvent} */ e) => {
      widths[key] = Math.max(28, Math.round(w0 + e.clientX - x0));
      applyWidths();
    };
    const up = () => {
      window.removeEventListener("pointermove", move, true);
      window.removeEventListener("pointerup", up, true);
      model.set("column_widths", { ...widths });
      model.save_changes();
    };
    // Capture phase: JupyterLab's own handlers may stop these events from bubbling.
    window.addEventListener("pointermove", move, true);
    window.addEventListener("pointerup", up, true);
  }

  // ---- rows --------------------------------------------------------------------------------
  function createRow() {
    const row = h("div", { class: "fbt-tr", role: "row" });
    for (const c of COLUMNS) {
      row.append(h("div", { class: `fbt-td${c.align ? ` fbt-${c.align}` : ""}`, role: "gridcell",
        "data-col": c.key }));
    }
    row.addEventListener("click", (ev) => onRowClick(row, /** @type {MouseEvent} */ (ev)));
    return row;
  }

  /** @param {HTMLElement} el @param {number} index */
  function renderRow(el, index) {
    const r = rows.get(index);
    el.dataset.index = String(index);
    const cells = /** @type {HTMLElement[]} */ ([...el.children]);
    const sel = model.get("selected") || [];
    el.className = "fbt-tr";
    if (!r) {
      el.dataset.id = "";
      el.classList.add("fbt-loading");
      cells.forEach((td, i) => { td.textContent = i === 0 ? "…" : ""; td.className = baseCls(i); });
      return;
    }
    el.dataset.id = r.id;
    if (index % 2) el.classList.add("fbt-odd");
    if (sel.includes(r.id)) el.classList.add("fbt-selected");
    if (index === cursor) el.classList.add("fbt-cursor");
    if (r.id === detailId) el.classList.add("fbt-open");
    if (isLive(r.state)) el.classList.add("fbt-row-live");
    COLUMNS.forEach((c, i) => {
      const td = cells[i];
      td.textContent = c.text(r);
      td.className = baseCls(i) + (c.cls ? ` ${c.cls(r)}` : "");
      const t = c.title ? c.title(r) : "";
      if (t) td.title = t; else td.removeAttribute("title");
    });
  }
  /** @param {number} i */
  const baseCls = (i) => `fbt-td${COLUMNS[i].align ? ` fbt-${COLUMNS[i].align}` : ""}`;

  const list = virtualList({ viewport, rowHeight: ROW_H, createRow, renderRow,
    onRange: () => ensure() });
  applyWidths();
  drawHeader();

  // ---- fetching ----------------------------------------------------------------------------
  function ensure() {
    const total = list.total;
    if (!total) return;
    const { first, last } = list.range();
    let missing = dataVersion !== version;
    for (let i = Math.max(0, first); !missing && i <= Math.min(last, total - 1); i++) {
      if (!rows.has(i)) missing = true;
    }
    if (!missing) return;
    if (inflight && inflight.version === version && inflight.first <= first
        && inflight.last >= last) return;
    const offset = Math.max(0, first - MARGIN);
    const limit = Math.min(500, last - offset + 1 + MARGIN);
    inflight = { req: nextReq++, version, first: offset, last: offset + limit - 1,
      sent: performance.now() };
    model.send({ type: "page", req: inflight.req, version, offset, limit, anchor: first });
    noteWaiting();
  }

  /** @param {any} msg @param {any[]} buffers */
  function onMessage(msg, buffers) {
    if (!msg || msg.type !== "page") return;
    if (inflight && msg.req === inflight.req) inflight = null;
    if (msg.version < version) { // a reply for an older view: drop it, ask again
      ensure();
      return;
    }
    if (msg.version > version) version = msg.version;
    if (dataVersion !== msg.version) {
      rows = new Map();
      dataVersion = msg.version;
    }
    const got = decode(buffers[0]);
    got.forEach((r, i) => rows.set(msg.offset + i, r));
    if (msg.shift) { // rows arrived above what the reader sees: keep their rows in place
      const { first } = list.range();
      if (first > 0) {
        if (msg.total !== list.total) list.setTotal(msg.total);
        list.scrollToIndex(first + msg.shift, "top");
        cursor = cursor >= 0 ? cursor + msg.shift : cursor;
      }
    }
    if (rows.size > MAX_CACHED) { // scrolled far through a big view: forget distant rows
      const { first, last } = list.range();
      for (const i of rows.keys()) {
        if (i < first - MAX_CACHED / 4 || i > last + MAX_CACHED / 4) rows.delete(i);
      }
    }
    if (msg.total !== list.total) list.setTotal(msg.total); else list.refresh();
    drawStatus();
    noteWaiting();
    ensure();
    if (detailId) refreshDetailIfLive();
  }
  model.on("msg:custom", onMessage);

  // "waiting for kernel": a request the kernel has not answered yet (it is busy running a cell).
  let waitTimer = 0;
  function noteWaiting() {
    clearTimeout(waitTimer);
    const pendingQuery = model.get("version") === version && queryPending;
    const busy = (inflight && performance.now() - inflight.sent > WAIT_NOTE_MS) || pendingQuery;
    waiting.classList.toggle("fbt-show", Boolean(busy));
    if (inflight || queryPending) waitTimer = window.setTimeout(noteWaiting, WAIT_NOTE_MS);
  }
  let queryPending = false;

  function onVersion() {
    const v = model.get("version");
    queryPending = false;
    if (v > version) version = v;
    if (model.get("total") !== list.total) list.setTotal(model.get("total"));
    // The kernel usually pushes the new window right after; give it a moment before asking.
    setTimeout(ensure, 60);
    drawStatus();
    noteWaiting();
  }
  model.on("change:version", onVersion);
  model.on("change:total", () => {
    list.setTotal(model.get("total"));
    drawStatus();
    applyHeight();
  });

  // ---- status, filter, chips ---------------------------------------------------------------
  function drawStatus() {
    const total = model.get("total");
    const sel = (model.get("selected") || []).length;
    const live = model.get("capturing");
    status.replaceChildren(
      h("span", { class: live ? "fbt-dot fbt-on" : "fbt-dot", title: live ? "capturing" : "not capturing" }),
      `${total.toLocaleString("en-US")} flow${total === 1 ? "" : "s"}`
        + (sel ? ` · ${sel} selected` : ""),
    );
    empty.textContent = total ? "" : model.get("filter_expr")
      ? "No flows match this filter." : "No flows yet: calls through the proxy appear here live.";
    empty.style.display = total ? "none" : "";
    diffBtn.disabled = !(model.get("can_diff") && sel === 2);
    clearBtn.style.display = sel ? "" : "none";
  }

  function drawError() {
    const err = model.get("filter_error") || {};
    filterInput.classList.toggle("fbt-invalid", Boolean(err.message));
    errorBox.classList.toggle("fbt-show", Boolean(err.message));
    if (!err.message) { errorBox.replaceChildren(); return; }
    const expr = String(err.expression ?? filterInput.value).replace(/[\t\r\n]/g, " ");
    const pos = Math.min(err.position ?? 0, expr.length);
    errorBox.replaceChildren(
      h("div", { class: "fbt-err-msg", text: `${err.message} (at column ${pos + 1})` }),
      h("pre", { class: "fbt-err-where" }, [expr.slice(0, pos),
        h("mark", { text: expr.slice(pos, pos + 1) || " " }), expr.slice(pos + 1), "\n",
        " ".repeat(pos) + "^"]),
      err.hint ? h("div", { class: "fbt-err-hint", text: `hint: ${err.hint}` }) : null,
    );
  }

  function drawChips() {
    const current = model.get("filter_expr");
    const items = model.get("quick_filters") || [];
    chips.replaceChildren(...items.map((q) => {
      const on = q.expression === current;
      const chip = h("button", { class: `fbt-chip${on ? " fbt-on" : ""}${q.preset ? "" : " fbt-saved"}`,
        text: q.name, title: q.expression, "aria-pressed": on ? "true" : "false" });
      chip.addEventListener("click", () => setFilter(on ? "" : q.expression));
      return chip;
    }));
  }

  /** @param {string} expr */
  function setFilter(expr) {
    filterInput.value = expr;
    if (expr === model.get("filter_expr")) return;
    model.set("filter_expr", expr);
    model.save_changes();
    queryPending = true;
    noteWaiting();
    drawChips();
  }
  let typing = 0;
  filterInput.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { clearTimeout(typing); setFilter(filterInput.value.trim()); }
    if (ev.key === "Escape") { filterInput.value = model.get("filter_expr"); }
    ev.stopPropagation(); // keep JupyterLab's notebook shortcuts out of the input
  });
  filterInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = window.setTimeout(() => setFilter(filterInput.value.trim()), 700);
  });
  model.on("change:filter_error", () => { queryPending = false; noteWaiting(); drawError(); });
  model.on("change:filter_expr", () => {
    if (document.activeElement !== filterInput) filterInput.value = model.get("filter_expr");
    drawChips();
  });
  model.on("change:quick_filters", drawChips);
  model.on("change:sort_by", drawHeader);
  model.on("change:sort_order", drawHeader);
  model.on("change:capturing", drawStatus);
  model.on("change:can_diff", drawStatus);
  model.on("change:height", applyHeight);
  model.on("change:selected", () => { list.refresh(); drawStatus(); });

  // ---- selection, keys, detail -------------------------------------------------------------
  /** @param {string[]} ids */
  function select(ids) {
    model.set("selected", ids);
    model.save_changes();
    list.refresh();
    drawStatus();
  }

  /** @param {HTMLElement} row @param {MouseEvent} ev */
  function onRowClick(row, ev) {
    const index = Number(row.dataset.index);
    const r = rows.get(index);
    if (!r) return;
    cursor = index;
    const target = /** @type {HTMLElement} */ (ev.target);
    if (target.closest(".fbt-td")?.getAttribute("data-col") === "bookmark") {
      toggleBookmark(r);
      return;
    }
    if (ev.ctrlKey || ev.metaKey) {
      const sel = [...(model.get("selected") || [])];
      const at = sel.indexOf(r.id);
      if (at >= 0) sel.splice(at, 1); else sel.push(r.id);
      select(sel);
      return;
    }
    select([r.id]);
    open(r.id);
    viewport.focus({ preventScroll: true });
  }

  /** @param {any} r */
  function toggleBookmark(r) {
    r.bookmarked = !r.bookmarked; // optimistic; the store's change brings the truth back
    list.refresh();
    call.call({ type: "bookmark", id: r.id, on: r.bookmarked }).then((reply) => {
      if (!reply.ok) note(reply.error);
    });
  }

  /** @param {string} id */
  function open(id) {
    detailId = id;
    split.classList.add("fbt-with-pane");
    applyHeight();
    list.refresh();
    openDetail(pane, id, call, {
      onClose: () => {
        detailId = null;
        split.classList.remove("fbt-with-pane");
        applyHeight();
        list.refresh();
      },
    });
  }
  let lastLiveRefresh = 0;
  function refreshDetailIfLive() {
    // A streaming flow's pane follows it (at most once a second).
    const r = [...rows.values()].find((x) => x.id === detailId);
    if (!r || !isLive(r.state) || performance.now() - lastLiveRefresh < 1000) return;
    lastLiveRefresh = performance.now();
    open(/** @type {string} */ (detailId));
  }

  viewport.addEventListener("keydown", (ev) => {
    const total = list.total;
    if (!total) return;
    const page = Math.max(1, list.range().last - list.range().first);
    const moves = /** @type {Record<string, number>} */ ({ ArrowDown: cursor + 1,
      ArrowUp: cursor - 1, PageDown: cursor + page, PageUp: cursor - page, Home: 0,
      End: total - 1 });
    if (ev.key in moves) {
      ev.preventDefault();
      cursor = Math.max(0, Math.min(total - 1, moves[ev.key]));
      list.scrollToIndex(cursor);
      const r = rows.get(cursor);
      if (r) {
        select([r.id]);
        if (detailId) open(r.id);
      }
    } else if (ev.key === "Enter") {
      const r = rows.get(cursor);
      if (r) open(r.id);
    } else if (ev.key === "b" || ev.key === "B") {
      const r = rows.get(cursor);
      if (r) toggleBookmark(r);
    } else if (ev.key === "Escape" && detailId) {
      pane.querySelector(".fbt-pane-close")?.dispatchEvent(new Event("click"));
    } else {
      return;
    }
    ev.stopPropagation();
  });

  diffBtn.addEventListener("click", () => {
    note("Comparing…");
    call.call({ type: "diff", ids: model.get("selected") }).then((reply) => {
      note(reply.ok ? "Diff shown below the table." : reply.error);
    });
  });
  clearBtn.addEventListener("click", () => select([]));

  /** @param {string} text */
  function note(text) {
    actionNote.textContent = text || "";
  }

  list.setTotal(model.get("total"));
  drawStatus();
  drawError();
  drawChips();
  ensure();

  return () => {
    list.destroy();
    call.dispose();
    model.off("msg:custom", onMessage);
    clearTimeout(waitTimer);
  };
}

export default { render };
