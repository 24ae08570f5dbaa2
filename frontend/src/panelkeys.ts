// A panel that Escape closes first, and only it, before keyboard.ts's Escape (which unpins or closes what else is
// open): one press, one thing closed.

/** While `open()` holds, Escape calls `close()` and goes no further. */
export function escapeCloses(open: () => boolean, close: () => void): void {
  window.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || !open()) return;
    ev.preventDefault();
    ev.stopImmediatePropagation();
    close();
  }, true);
}
