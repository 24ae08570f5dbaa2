// The keyboard: move and zoom the view, explain the cell in the middle, move a pinned cell.
import { movePinned, showCell, unpin } from "./hover";
import { closeNeuron } from "./neurons";
import { deselect } from "./panels";
import { pickAt } from "./scene";
import { app, writeUrl, $ } from "./state";

/** Escape closes one thing per press, the nearest first: a neuron's panel, a pinned block description or tooltip,
 * then the walkthrough. False: nothing was open. */
export function closeNearest(): boolean {
  if (!$<HTMLElement>("#neuron").hidden) {
    closeNeuron();
    return true;
  }
  if (app.hover.pinned || app.selected || !$<HTMLElement>("#selection").hidden) {
    unpin();
    deselect();
    return true;
  }
  if (app.walk?.active) {
    app.walk.close();
    return true;
  }
  return false;
}

export function onKey(ev: KeyboardEvent) {
  if (ev.key === "Escape" && !ev.defaultPrevented) {  // from anywhere, the walkthrough's timeline and input too
    if (closeNearest()) {
      ev.preventDefault();
      writeUrl();
    }
    return;
  }
  if ((ev.target as HTMLElement).closest("input, select, textarea")) return;
  const walk = app.walk;
  const onButton = !!(ev.target as HTMLElement).closest("button");  // Space on a button presses the button
  if (walk?.active && !ev.shiftKey && ((ev.key === " " && !onButton) || ev.key === "ArrowRight" || ev.key === "ArrowLeft")) {
    ev.preventDefault();  // in the walkthrough: Space plays or pauses, the arrows step
    if (ev.key === " ") walk.toggle();
    else if (ev.key === "ArrowRight") walk.next();
    else walk.prev();
    return;
  }
  if (ev.shiftKey && movePinned(ev.key)) {
    ev.preventDefault();
    return;
  }
  if (ev.key === "Enter" && ev.target === app.view!.canvas) {  // keyboard: explain the cell in the middle
    const r = app.view!.canvas.getBoundingClientRect();
    const hit = pickAt(r.left + r.width / 2, r.top + r.height / 2);
    if (hit) {
      app.hover.key = "";
      app.hover.pinned = hit;
      void showCell(hit, r.left + r.width / 2, r.top + r.height / 2, ev.timeStamp, true);
    }
    return;
  }
  const v = app.view!;
  const step = 0.1;
  const keys: Record<string, () => void> = {
    ArrowLeft: () => v.pan(-step, 0), a: () => v.pan(-step, 0), ArrowRight: () => v.pan(step, 0), d: () => v.pan(step, 0),
    ArrowUp: () => v.pan(0, step), w: () => v.pan(0, step), ArrowDown: () => v.pan(0, -step), s: () => v.pan(0, -step),
    "+": () => v.zoom(0.8), "=": () => v.zoom(0.8), "-": () => v.zoom(1.25), _: () => v.zoom(1.25),
    Home: () => {
      deselect();  // a new view: a block's description pinned in the old one goes
      v.goHome();
    },
  };
  const fn = keys[ev.key];
  if (fn) {
    ev.preventDefault();
    fn();
    writeUrl();
  }
}
