// The flow pulse: a light that runs through the forward pass, from the input tokens through every layer to the
// output, lighting each block as its numbers are computed; the blocks not reached yet wait faded. It plays on a
// first visit and on Run, in under 3 s; a key, a click, a touch or the wheel ends it at once, and under reduced
// motion it never plays.

/** How long the light takes from the input to the output. */
export const PULSE_MS = 2200;

export type PulseState = "never" | "running" | "done" | "skipped" | "reduced";

/** What skips it. */
const SKIP_ON = ["pointerdown", "keydown", "wheel"];

/** Where it is: `document.body.dataset.pulse` says too (a signal for tests and for pages that embed the view). */
export class Pulse {
  private _state: PulseState = "never";
  private frame = 0;
  private readonly skip = () => this.stop("skipped");

  /** set(front): draw the pulse's front at 0 (the input) to 1 (the output), or none (−1). */
  constructor(private set: (front: number) => void, private reducedMotion: () => boolean, private ms = PULSE_MS) {}

  get state(): PulseState {
    return this._state;
  }

  private set state(s: PulseState) {
    this._state = s;
    document.body.dataset.pulse = s;
  }

  start(): void {
    this.stop(this.state);
    if (this.reducedMotion()) {
      this.state = "reduced";
      return;
    }
    this.state = "running";
    for (const ev of SKIP_ON) window.addEventListener(ev, this.skip, { capture: true, once: true });
    let t0 = -1;
    const tick = (now: number) => {
      if (t0 < 0) t0 = now;
      const t = (now - t0) / this.ms;
      if (t >= 1) return this.stop("done");
      this.set(t * 1.08);  // a little past the last block, so that the output glows before it ends
      this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  private stop(state: PulseState): void {
    cancelAnimationFrame(this.frame);
    for (const ev of SKIP_ON) window.removeEventListener(ev, this.skip, { capture: true });
    if (this.state === "running") this.set(-1);
    this.state = state;
  }
}
