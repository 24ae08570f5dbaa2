// The "Across the model" panel: five views of the whole forward pass, one tab each: every head's attention,
// the logit lens, the branch tree, the direct logit attribution of a prediction and the activation-patching sweep.
// Each tab loads its data when first shown, and again when the input changes.
import { AttentionMap, type AttentionHost } from "./attnmap";
import { type AnalysisHost, AttributionBars } from "./attribution";
import { BranchTree, type BranchHost } from "./branchtree";
import { LensGrid, type LensHost } from "./lensgrid";
import { PatchGrid } from "./patchgrid";

export type Tab = "attention" | "lens" | "branches" | "attribution" | "patching";
export const TABS: Tab[] = ["attention", "lens", "branches", "attribution", "patching"];
export interface InsightsHost extends AttentionHost, LensHost, BranchHost, AnalysisHost {
  /** The open tab changed (null: the panel closed), for the URL. */
  shown(tab: Tab | null): void;
}

export class Insights {
  readonly attention: AttentionMap;
  readonly lens: LensGrid;
  readonly branches: BranchTree;
  readonly attribution: AttributionBars;
  readonly patching: PatchGrid;
  private loadedFor: Record<Tab, string> = { attention: "", lens: "", branches: "", attribution: "", patching: "" };
  tab: Tab = "attention";

  constructor(private panel: HTMLElement, private host: InsightsHost) {
    this.attention = new AttentionMap(panel.querySelector("#ins-attention")!, host);
    this.lens = new LensGrid(panel.querySelector("#ins-lens")!, host);
    this.branches = new BranchTree(panel.querySelector("#ins-branches")!, host);
    this.attribution = new AttributionBars(panel.querySelector("#ins-attribution")!, host);
    this.patching = new PatchGrid(panel.querySelector("#ins-patching")!, host);
    panel.addEventListener("click", (e) => {
      const t = (e.target as HTMLElement).closest<HTMLElement>("[data-tab]")?.dataset.tab as Tab | undefined;
      if (t) void this.open(t);
      if ((e.target as HTMLElement).closest("[data-ins=close]")) this.close();
    });
  }

  get active(): boolean {
    return !this.panel.hidden;
  }

  /** Show a tab, loading its data for the view's model and input if it has not yet (branch focus: token ids). */
  async open(tab: Tab = this.tab, focus: number[] = []): Promise<void> {
    if (this.panel.querySelector<HTMLButtonElement>(`[data-tab="${tab}"]`)?.disabled) tab = "attention";  // (engine.ts)
    this.tab = tab;
    this.panel.hidden = false;
    document.body.classList.add("insights-open");
    for (const b of this.panel.querySelectorAll<HTMLElement>("[data-tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
    for (const t of TABS) this.panel.querySelector<HTMLElement>(`#ins-${t}`)!.hidden = t !== tab;
    this.host.shown(tab);
    const key = `${this.host.model()}|${this.host.text()}`;
    if (this.loadedFor[tab] === key && !focus.length) return;
    this.say("computing…");
    try {
      if (tab === "attention") await this.attention.load();
      else if (tab === "lens") await this.lens.load();
      else if (tab === "attribution") await this.attribution.load();
      else if (tab === "patching") await this.patching.load();
      else await this.branches.load(focus);
      this.loadedFor[tab] = key;
      this.say("");
    } catch (e) {
      this.say((e as Error).message);
    }
  }

  close(): void {
    this.panel.hidden = true;
    document.body.classList.remove("insights-open");
    this.host.shown(null);
  }

  /** The view's input changed: the open tab follows it (the branch tree keeps its own root while it walks). */
  refresh(): void {
    if (this.active && this.tab !== "branches") void this.open(this.tab);
  }

  private say(text: string): void {
    const m = this.panel.querySelector<HTMLElement>("#ins-status")!;
    m.textContent = text;
  }
}
