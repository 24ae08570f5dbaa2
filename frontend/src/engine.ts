// A model another engine runs (ModelInfo.engine: nnsight, which returns part of the graph and no weights): the line that
// says so under its title (ModelInfo.engine_note), and the controls it cannot offer (ModelInfo.cannot: a feature and
// why), hidden or disabled with the server's reason as their tooltip. The words and the features are the server's.
import type { ModelInfo } from "./api";
import { precisionOf } from "./precision";

export type Feature = keyof NonNullable<ModelInfo["cannot"]>;

let listed: ModelInfo[] = [];  // (app.models, handed in: the labels and the legend read it without the page's state)

/** The server's models, once main.ts has them. */
export function knowModels(models: ModelInfo[]): void {
  listed = models;
}

/** The listed model a view's model name shows (a format of it too), if any. */
export function listedModel(name: string | undefined): ModelInfo | undefined {
  return name === undefined ? undefined : precisionOf(listed, name)?.model;
}

/** Why the model cannot offer a feature ("": it can). */
export function cannot(name: string | undefined, feature: Feature): string {
  return listedModel(name)?.cannot?.[feature] ?? "";
}

// The toolbar's buttons a model may not offer: hidden for it (a class, so that the page's other reasons to hide
// them stand). The Across-layers panel's tabs: disabled, with why (the panel's attention tab needs only the pass).
const HIDDEN: [Feature, string][] = [["gradients", "#grad-toggle"], ["generate", "#gen-toggle"]];
const TABS: Feature[] = ["lens", "branches", "attribution", "patching"];

/** Hide or disable what the model on screen cannot offer (`name`: its model; undefined: the scale view, which can). */
export function syncOffers(name: string | undefined): void {
  for (const [feature, sel] of HIDDEN) document.querySelector(sel)?.classList.toggle("cannot", !!cannot(name, feature));
  for (const feature of TABS) {
    const tab = document.querySelector<HTMLButtonElement>(`#insights [data-tab="${feature}"]`);
    if (!tab) continue;
    const why = cannot(name, feature);
    tab.dataset.title ??= tab.title;
    tab.disabled = !!why;
    tab.title = why || tab.dataset.title;
  }
}
