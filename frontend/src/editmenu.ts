// Interventions in the page: the right-click menu on a cell (zero it, mean-ablate it, patch it from another input:
// the cell, its position, head or neuron, or the whole tensor), and the panel that lists the view's edits, each
// removable, with Undo and whether cells are coloured by their change or their value.
import { makeEdit, preferredScope, scopes, type Edit, type EditInfo, type Scope } from "./edits";
import { escapeHtml } from "./html";
import type { BlockInfo, SceneInfo } from "./scenedata";

const esc = escapeHtml;

export interface EditHost {
  /** Add this edit to the view's (the view reloads as the edited pass). */
  add(edit: Edit): void;
  /** Remove the edit at this index (-1: the last), or every edit (null). */
  remove(index: number | null): void;
  /** Colour the cells by how much they changed, or by their values. */
  colourBy(what: "change" | "values"): void;
  /** The view's input, to start a patch's input from. */
  input(): string;
}

/** The menu a right-click opens over a cell: what to edit, and how. */
export class EditMenu {
  private tensor = "";
  private list: Scope[] = [];

  constructor(private el: HTMLElement, private host: EditHost) {
    el.addEventListener("click", (e) => {
      const t = e.target as HTMLElement;
      const how = t.closest<HTMLElement>("[data-set]")?.dataset.set;
      if (t.closest("[data-menu=close]")) this.close();
      else if (how === "patch") this.askPatch();
      else if (how === "zero" || how === "mean") this.make(how);
    });
    el.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = el.querySelector<HTMLInputElement>("[data-patch-input]")?.value ?? "";
      this.make({ from_text: text });
    });
    el.addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      e.preventDefault();
      e.stopPropagation();
      this.close();
    });
  }

  get open(): boolean {
    return !this.el.hidden;
  }

  /** Open beside a point for a cell of a block (`region`: its tensor cells by axis); `why`: the reason it cannot
   * be edited in this view (then the menu says only that). */
  show(info: SceneInfo, b: BlockInfo, region: Record<string, [number, number]>, x: number, y: number, why = "") {
    this.tensor = b.tensor;
    const words = Object.fromEntries(Object.entries(info.axes).map(([a, ax]) => [a, ax.description]));
    this.list = why ? [] : scopes(b, region, words);
    const first = why ? null : preferredScope(this.list);
    const head = `<div class="em-head"><b>Edit ${esc(b.title)}</b><button type="button" data-menu="close" aria-label="close" title="Close (Escape)">×</button></div>
      <code class="em-tensor">${esc(b.tensor)}</code>`;
    this.el.innerHTML = why ? `${head}<p class="em-why">${esc(why)}</p>` : `${head}
      <fieldset class="em-scopes"><legend>what</legend>${this.list.map((s) => `<label><input type="radio" name="em-scope"
        value="${esc(s.key)}"${s === first ? " checked" : ""}> ${esc(s.label)}</label>`).join("")}</fieldset>
      <div class="em-actions" role="group" aria-label="how">
        <button type="button" data-set="zero" title="Set these numbers to 0; everything after them is computed again">Zero it</button>
        <button type="button" data-set="mean" title="Set them to their mean over this input's positions">Mean-ablate it</button>
        <button type="button" data-set="patch" title="Take these numbers from the pass of another input of the same length">Patch it from another input…</button>
      </div>
      <form class="em-patch" hidden><label>the other input <input data-patch-input spellcheck="false" autocomplete="off"></label>
        <button type="submit">Patch</button></form>`;
    this.el.hidden = false;
    const stage = this.el.parentElement!.getBoundingClientRect();
    const w = this.el.offsetWidth, h = this.el.offsetHeight;
    this.el.style.left = `${Math.max(4, Math.min(x - stage.left, stage.width - w - 4))}px`;
    this.el.style.top = `${Math.max(4, Math.min(y - stage.top, stage.height - h - 4))}px`;
    this.el.querySelector<HTMLElement>("input, button[data-set], button")?.focus();
  }

  close(): void {
    this.el.hidden = true;
  }

  private askPatch(): void {
    const form = this.el.querySelector<HTMLFormElement>(".em-patch")!;
    form.hidden = false;
    const input = form.querySelector<HTMLInputElement>("input")!;
    input.value = this.host.input();
    input.focus();
    input.select();
  }

  private make(set: Edit["set"]): void {
    const key = this.el.querySelector<HTMLInputElement>("input[name=em-scope]:checked")?.value;
    const scope = this.list.find((s) => s.key === key) ?? this.list[0];
    if (!scope) return;
    this.close();
    this.host.add(makeEdit(this.tensor, scope, set));
  }
}

/** The panel of the view's edits: each in words with a remove button, Undo and Remove all, and the colouring. */
export function editsPanelHtml(edits: EditInfo[], colour: "change" | "values"): string {
  if (!edits.length) return "";
  const items = edits.map((e, i) => `<li><span class="ed-label">${esc(e.label)}</span>
    <button type="button" data-edit-remove="${i}" aria-label="remove this edit" title="Remove this edit">×</button></li>`).join("");
  return `<div class="ed-head"><b>Edits</b> <span class="ed-count">${edits.length}</span></div>
    <ol class="ed-list">${items}</ol>
    <div class="ed-colour" role="radiogroup" aria-label="colour the cells by">colour by
      <label><input type="radio" name="ed-colour" value="change"${colour === "change" ? " checked" : ""}> change from the clean pass</label>
      <label><input type="radio" name="ed-colour" value="values"${colour === "values" ? " checked" : ""}> value</label></div>
    <div class="ed-key">${colour === "change" ? "white: unchanged · colour: how far each number moved (on its block's scale)"
      : "the edited pass's own numbers"} · ringed in magenta: where an edit was made</div>
    <div class="ed-buttons"><button type="button" data-edit-undo>Undo</button><button type="button" data-edit-clear>Remove all</button></div>`;
}

/** Wire the panel's buttons to the host (once). */
export function wireEditsPanel(el: HTMLElement, host: EditHost): void {
  el.addEventListener("click", (e) => {
    const t = e.target as HTMLElement;
    const i = t.closest<HTMLElement>("[data-edit-remove]")?.dataset.editRemove;
    if (i !== undefined) host.remove(Number(i));
    else if (t.closest("[data-edit-undo]")) host.remove(-1);
    else if (t.closest("[data-edit-clear]")) host.remove(null);
  });
  el.addEventListener("change", (e) => {
    const v = (e.target as HTMLInputElement).value;
    if (v === "change" || v === "values") host.colourBy(v);
  });
}
