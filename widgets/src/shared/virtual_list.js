// A small virtual list: fixed row height, a pool of row elements reused as the list scrolls, and
// scroll positions scaled so that any number of rows fits. Chromium caps an element's height at
// about 33.5M px (1M rows of 28 px exceed it), so the spacer is at most MAX_SCROLL_PX high and a
// scroll position maps linearly onto the virtual height. Rows are absolutely positioned in a
// layer that follows the scroll position, so the browser lays out only the visible rows.

export const MAX_SCROLL_PX = 8_000_000;

/**
 * @param {{
 *   viewport: HTMLElement,               // overflow:auto, fixed height
 *   rowHeight: number,
 *   createRow: () => HTMLElement,
 *   renderRow: (el: HTMLElement, index: number) => void,
 *   onRange?: (first: number, last: number) => void,   // visible rows changed
 * }} opts
 */
export function virtualList(opts) {
  const { viewport, rowHeight, createRow, renderRow, onRange } = opts;
  const spacer = document.createElement("div");
  spacer.className = "fbt-vl-spacer";
  const layer = document.createElement("div");
  layer.className = "fbt-vl-layer";
  viewport.append(spacer, layer);
  Object.assign(spacer.style, { width: "1px", height: "0px" });
  Object.assign(layer.style, { position: "absolute", top: "0", left: "0", right: "0" });
  if (getComputedStyle(viewport).position === "static") viewport.style.position = "relative";

  let total = 0;
  /** @type {HTMLElement[]} */
  const pool = [];
  let first = 0;
  let lastRange = "";
  let frame = 0;

  const geometry = () => {
    const viewH = viewport.clientHeight;
    const virtualH = total * rowHeight;
    const physicalH = Math.min(virtualH, MAX_SCROLL_PX);
    const maxVirtual = Math.max(0, virtualH - viewH);
    const maxPhysical = Math.max(0, physicalH - viewH);
    return { viewH, physicalH, maxVirtual, maxPhysical };
  };

  /** The virtual (unscaled) scroll offset of the viewport's top edge. */
  const virtualTop = () => {
    const g = geometry();
    if (g.maxPhysical <= 0) return 0;
    return Math.min(g.maxVirtual, (viewport.scrollTop / g.maxPhysical) * g.maxVirtual);
  };

  function draw() {
    frame = 0;
    const g = geometry();
    spacer.style.height = `${g.physicalH}px`;
    if (g.viewH <= 0) return; // detached or hidden: nothing to lay out
    const top = virtualTop();
    first = Math.floor(top / rowHeight);
    const offset = first * rowHeight - top;
    const count = Math.min(total - first, Math.ceil(g.viewH / rowHeight) + 1);
    while (pool.length < Math.max(0, count)) {
      const el = createRow();
      el.style.position = "absolute";
      el.style.left = "0";
      el.style.right = "0";
      el.style.height = `${rowHeight}px`;
      layer.append(el);
      pool.push(el);
    }
    layer.style.transform = `translateY(${viewport.scrollTop}px)`;
    for (let i = 0; i < pool.length; i++) {
      const el = pool[i];
      if (i < count) {
        el.style.display = "";
        el.style.top = `${offset + i * rowHeight}px`;
        renderRow(el, first + i);
      } else {
        el.style.display = "none";
      }
    }
    const range = `${first}:${first + Math.max(0, count) - 1}`;
    if (range !== lastRange) {
      lastRange = range;
      onRange?.(first, first + Math.max(0, count) - 1);
    }
  }

  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(draw);
  };
  viewport.addEventListener("scroll", schedule, { passive: true });
  // JupyterLab detaches outputs scrolled far out of view; redraw when the size comes back.
  const resize = new ResizeObserver(schedule);
  resize.observe(viewport);

  return {
    /** @param {number} n */
    setTotal(n) {
      total = Math.max(0, n);
      draw();
    },
    get total() { return total; },
    /** Re-render the visible rows (their data changed). */
    refresh() { draw(); },
    /** @returns {{first: number, last: number}} */
    range() {
      const g = geometry();
      const f = Math.floor(virtualTop() / rowHeight);
      return { first: f, last: Math.min(total, f + Math.ceil(g.viewH / rowHeight) + 1) - 1 };
    },
    /** Scroll so row `index` is visible (top, bottom or nearest). @param {number} index */
    scrollToIndex(index, align = "nearest") {
      const g = geometry();
      const want = index * rowHeight;
      const top = virtualTop();
      let target = top;
      if (align === "top" || want < top) target = want;
      else if (align === "bottom" || want + rowHeight > top + g.viewH) {
        target = want + rowHeight - g.viewH;
      }
      target = Math.max(0, Math.min(g.maxVirtual, target));
      viewport.scrollTop = g.maxVirtual > 0 ? (target / g.maxVirtual) * g.maxPhysical : 0;
      draw();
    },
    /** Width of the scrolled content (for a horizontal scrollbar). @param {number} px */
    setWidth(px) {
      spacer.style.width = `${px}px`;
      layer.style.width = `${px}px`;
    },
    destroy() {
      resize.disconnect();
      viewport.removeEventListener("scroll", schedule);
      if (frame) cancelAnimationFrame(frame);
    },
  };
}
