// Hover and pin: one cell's value and where it came from, in the tooltip, with its sources highlighted.
import { DataUtils } from "three";
import { explainInScene } from "./cells";
import { chainHtml, chainOf, type ChainRule } from "./chainrule";
import { cellRegion } from "./highlight";
import { findBlock, cellScreenPoint, pickAt } from "./scene";
import { onlyPanel } from "./panels";
import { app, showError, $, type CellRef } from "./state";
import { explanationHtml, structureHtml, type Explanation } from "./tooltip";
import { escapeHtml } from "./html";
import { tellHost } from "./transport";
import type { ViewState } from "./urlstate";

export function tooltipEl(): HTMLDivElement {
  return $<HTMLDivElement>("#tooltip");
}

export function placeTooltip(clientX: number, clientY: number) {
  const tip = tooltipEl(), stage = $<HTMLDivElement>("#stage").getBoundingClientRect();
  const w = tip.offsetWidth, h = tip.offsetHeight;
  let x = clientX - stage.left + 18, y = clientY - stage.top + 18;
  if (x + w > stage.width - 4) x = Math.max(4, clientX - stage.left - w - 18);
  if (y + h > stage.height - 4) y = Math.max(4, stage.height - h - 4);
  tip.style.left = `${x}px`;
  tip.style.top = `${y}px`;
}

/** Hide the tooltip and its highlights; an explanation still on its way is for a cell no longer wanted. */
export function hideTooltip() {
  app.hover.seq++;
  app.hover.key = "";
  if (tooltipEl().hidden && !app.hover.lit) return;  // nothing shown: nothing to undo (camera moves)
  tooltipEl().hidden = true;
  if (!app.hover.lit) return;  // the highlights are someone else's (the walkthrough's)
  app.hover.lit = false;
  app.highlights.clear();
  for (const p of app.placed) p.built.focus(null);
  app.view?.requestRender();
  document.dispatchEvent(new CustomEvent("llmviz:hover", { detail: null }));  // the walkthrough redraws its own
}

export function unpin() {
  if (app.hover.pinned) tellHost("selected", {});
  app.hover.pinned = null;
  tooltipEl().classList.remove("pinned");
  hideTooltip();
}

/** The camera moved: the cell under the pointer is another one, so an unpinned tooltip goes; a pinned one
 * follows its cell. */
export function onCameraMove() {
  const c = app.hover.pinned;
  if (!c) {
    hideTooltip();
    return;
  }
  const p = cellScreenPoint(c);
  if (p) placeTooltip(p.x, p.y);
}

/** A link's pinned cell: pinned again, its tooltip shown beside it. */
export function pinCellFromState(cell: NonNullable<ViewState["cell"]>) {
  const hit = findBlock(cell.tensor);
  if (!hit) return;
  const b = hit.placed.data.info.blocks[hit.block];
  const grid = b.slabs?.[cell.slab] ? [b.slabs[cell.slab][2], b.slabs[cell.slab][3]] : [b.cols, b.rows];
  if (cell.slab >= (b.merged ? 1 : b.depth) || cell.col >= grid[0] || cell.row >= grid[1]) return;
  const c = { ...hit, slab: cell.slab, col: cell.col, row: cell.row };
  app.hover.pinned = c;
  const p = cellScreenPoint(c) ?? { x: 40, y: 80 };
  void showCell(c, p.x, p.y, performance.now(), true);
}

/** Show an explanation the caller already has (the walkthrough's), pinned beside a client point. */
export function showExplanation(e: Explanation, clientX: number, clientY: number) {
  app.hover.seq++;
  app.hover.key = "";
  const tip = tooltipEl();
  tip.innerHTML = explanationHtml(e, true);
  tip.dataset.tensor = e.tensor;
  tip.dataset.index = JSON.stringify(e.index.map((a) => a.i));
  tip.classList.add("pinned");
  tip.hidden = false;
  placeTooltip(clientX, clientY);
}

/** Explain a cell (once per cell; explain.ts, with the numbers it reads fetched as needed), then show the tooltip
 * and highlight its sources. */
export async function showCell(c: CellRef, clientX: number, clientY: number, t0: number, pinned: boolean) {
  const b = c.placed.data.info.blocks[c.block];
  const info = c.placed.data.info;
  const key = `${info.model.name}|${b.tensor}|${c.slab}|${c.col}|${c.row}|${pinned}`;
  if (key === app.hover.key) return;
  app.hover.key = key;
  const seq = ++app.hover.seq;
  const tip = tooltipEl();
  let regions: Explanation["sources"] = [];
  if (!info.model.has_weights || !info.tokens || b.fetched === false) {
    tip.innerHTML = structureHtml(info, b);
    tip.dataset.tensor = b.tensor;
    delete tip.dataset.index;
  } else {
    const region = cellRegion(b, c.slab, c.col, c.row);
    const tokens = info.past ? info.context! : info.tokens;  // a generation step: its whole context, and where it starts
    const edits = JSON.stringify(info.edits ?? []);
    const ckey = `${info.model.name}|${tokens.join(",")}|${info.past ?? 0}|${b.tensor}|${JSON.stringify(region)}|${edits}`;
    let e = app.explained.get(ckey), clean: number | undefined, chain: Promise<ChainRule> | undefined;
    const grads = info.loss != null;  // a scene coloured by the loss's gradients: the tooltip gives the chain rule
    const single = b.dims.every(([a]) => region[a] && region[a][0] === region[a][1]);
    if (grads && single) chain = chainOf(info, b.tensor, b.dims.map(([a]) => region[a][0]));  // (with explain's request)
    try {
      if (!e) {
        [e] = await explainInScene(info, [{ tensor: b.tensor, region }]);
        if (app.explained.size > 2000) app.explained.clear();
        app.explained.set(ckey, e);
      }
      if (info.edits?.length) {  // an edited pass: the same cell in the clean one, beside it
        [{ value: clean }] = await explainInScene({ ...info, edits: null }, [{ tensor: b.tensor, index: e.index.map((a) => a.i) }]);
      } else if (info.compare) {  // two precisions: the same cell in the reference format's pass
        const ref = { ...info, model: { ...info.model, name: info.compare.reference.model } };
        [{ value: clean }] = await explainInScene(ref, [{ tensor: b.tensor, index: e.index.map((a) => a.i) }]);
      }
    } catch (err) {
      if (seq === app.hover.seq) showError((err as Error).message);
      return;
    }
    let chainText: string | undefined, readers: Explanation["sources"] | undefined;
    if (grads) {  // (a downsampled cell: the chain rule of the cell explained, its tile's largest)
      try {
        const rule = await (chain ?? chainOf(info, b.tensor, e.index.map((a) => a.i)));
        chainText = chainHtml(rule, drawnGradient(c));
        readers = rule.parts.flatMap((p) => p.regions);  // lit: where the gradient comes from
      } catch (err) {
        chainText = `<div class="tt-grad">no chain rule: ${escapeHtml((err as Error).message)}</div>`;
      }
    }
    if (seq !== app.hover.seq) return; // the pointer has moved on
    const formats = info.compare ? [info.compare.reference.format, info.compare.other.format] as [string, string] : undefined;
    tip.innerHTML = explanationHtml(e, pinned, clean, drawnGradient(c), chainText, formats);
    tip.dataset.tensor = e.tensor;
    tip.dataset.index = JSON.stringify(e.index.map((a) => a.i));
    if (pinned) tellHost("selected", { tensor: e.tensor, index: e.index.map((a) => a.i) });
    regions = [...(readers ?? e.sources), e.target];
  }
  tip.classList.toggle("pinned", pinned);
  if (pinned) onlyPanel("#tooltip");
  document.dispatchEvent(new CustomEvent("llmviz:hover", { detail: b.tensor }));
  tip.hidden = false;
  placeTooltip(clientX, clientY);
  const find = (tensor: string) => {
    const i = info.blocks.findIndex((x) => x.tensor === tensor);
    return i < 0 ? null : { block: info.blocks[i], offsetX: c.placed.offsetX };
  };
  const shown = regions.length ? regions : [{ tensor: b.tensor, ranges: cellRegion(b, c.slab, c.col, c.row), role: "target" }];
  app.highlights.set(shown, find);
  app.hover.lit = true;
  // The blocks the number came from stay; the rest fade, so the sources stand out at any zoom.
  const sources = new Set(shown.map((r) => info.blocks.findIndex((x) => x.tensor === r.tensor)));
  for (const p of app.placed) p.built.focus(p === c.placed ? sources : new Set());
  const v = app.view!;
  const previous = v.onRender;
  v.onRender = () => {  // the latency ends when the frame with the highlights is drawn
    v.onRender = previous;
    previous();
    if (seq === app.hover.seq) {
      app.hover.lastMs = performance.now() - t0;
      tip.dataset.latency = app.hover.lastMs.toFixed(1);
    }
  };
  v.requestRender();
}

/** In a scene coloured by the loss's gradients: the displayed cell's gradient, as the grad atlas holds it. */
function drawnGradient(c: CellRef): number | undefined {
  const d = c.placed.data, slab = d.info.blocks[c.block].slabs?.[c.slab];
  if (!d.grad || d.info.loss == null || !slab) return undefined;
  return DataUtils.fromHalfFloat(d.grad[(slab[1] + c.row) * d.atlas.width + slab[0] + c.col]);
}

export function onHover(e: PointerEvent) {
  if (app.hover.pinned || e.buttons !== 0 || e.pointerType === "touch" || !$<HTMLElement>("#edit-menu").hidden) return;
  const first = app.hover.pendingEvent === null;
  app.hover.pendingEvent = e;
  if (!first) return;
  requestAnimationFrame(() => {  // at most one pick per frame, for the latest position
    const ev = app.hover.pendingEvent;
    app.hover.pendingEvent = null;
    if (!ev || app.hover.pinned || !$<HTMLElement>("#edit-menu").hidden) return;  // the pointer left, a cell was pinned, a menu opened
    const hit = pickAt(ev.clientX, ev.clientY);
    if (!hit) hideTooltip();
    else void showCell(hit, ev.clientX, ev.clientY, ev.timeStamp, false);
  });
}

/** Shift+arrows move the pinned cell; Shift+PageUp/PageDown change head. */
export function movePinned(key: string): boolean {
  const c = app.hover.pinned;
  if (!c) return false;
  const b = c.placed.data.info.blocks[c.block];
  const grid = b.slabs?.[c.slab] ? [b.slabs[c.slab][2], b.slabs[c.slab][3]] : [b.cols, b.rows];
  const d: Record<string, [number, number, number]> = { ArrowLeft: [-1, 0, 0], ArrowRight: [1, 0, 0], ArrowUp: [0, -1, 0],
    ArrowDown: [0, 1, 0], PageUp: [0, 0, -1], PageDown: [0, 0, 1] };
  if (!d[key]) return false;
  const slabs = b.merged ? 1 : b.depth;
  const next = { ...c, col: Math.min(grid[0] - 1, Math.max(0, c.col + d[key][0])),
    row: Math.min(grid[1] - 1, Math.max(0, c.row + d[key][1])), slab: Math.min(slabs - 1, Math.max(0, c.slab + d[key][2])) };
  app.hover.pinned = next;
  const r = tooltipEl().getBoundingClientRect();
  void showCell(next, r.left - 18, r.top - 18, performance.now(), true);
  return true;
}
