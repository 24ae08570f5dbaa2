"""A static export (llmviz export) against the served app, in headless Chromium on SwiftShader.

    python benchmarks/export.py [--runs 3]

The baseline is `llmviz serve` on the same model and input, measured in the same run. Prints the time to write
nano-gpt's export of one input and its size; then, for the export served by a plain static file server
(Python's http.server) and for the served app: the time to the first model frame (median of 5 fresh loads)
and the hover latency (mouse event to the frame with the tooltip; the export computes the explanation in the
page, the app asks the server), median over cells of different ops; and the export's figures as ratios.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llmviz
from llmviz.serve.export import export
from render import CHROMIUM, CHROMIUM_ARGS, first_frame_ms, hover_times, open_view, serve


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    model = llmviz.load_model("nano-gpt")
    folder = Path(tempfile.mkdtemp()) / "site"
    took = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        done = export(model, ["CBABBC"], folder)
        took.append(time.perf_counter() - t0)
    print(f"export of nano-gpt on one input: {min(took):.2f}-{max(took):.2f} s over {args.runs} runs, "
          f"{done['bytes'] / 1e6:.3f} MB in {done['files']} files")

    static = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=static.serve_forever, daemon=True).start()
    urls = {"export": f"http://127.0.0.1:{static.server_address[1]}/",
            "llmviz serve": f"{serve()}/?model=nano-gpt&input=CBABBC"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        got = {}
        for name, url in urls.items():
            first = [first_frame_ms(browser, url) for _ in range(args.runs)]
            hover = []
            for _ in range(args.runs):
                page, _ = open_view(browser, url)
                hover.append(statistics.median(hover_times(page)))
                page.close()
            got[name] = (first, hover)
            print(f"{name:13s} first frame {min(first):.0f}-{max(first):.0f} ms, "
                  f"hover {min(hover):.1f}-{max(hover):.1f} ms (medians of {args.runs} runs)")
        browser.close()
    (ef, eh), (sf, sh) = got["export"], got["llmviz serve"]
    print(f"export / llmviz serve: first frame {statistics.median(ef) / statistics.median(sf):.2f}x, "
          f"hover {statistics.median(eh) / statistics.median(sh):.2f}x")


if __name__ == "__main__":
    main()
