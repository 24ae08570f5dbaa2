"""Loading a model holds one copy of its weights: peak memory growth stays under 1.5x their size. Mapped in place
("stored", a folder's default), it holds none: its anonymous memory (RssAnon: what is not the file's pages) grows by
almost nothing at load, and by little more than the pass's tensors when it runs."""

import subprocess
import sys

import pytest

pytest.importorskip("transformers")

from reference import hf_gpt2_folder

MEASURE = r"""
import re, sys
import llmviz
def status(key):  # VmHWM: this address space's peak RSS; RssAnon: its anonymous memory now
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
key = "RssAnon" if sys.argv[2] == "stored" else "VmHWM"
base = status(key)
model = llmviz.load_model(sys.argv[1], dtype=sys.argv[2])
print(status(key) - base)
if sys.argv[2] == "stored":
    model.run(list(range(32)))
    print(status(key) - base)
"""


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    hf = hf_gpt2_folder(folder, n_layer=4, n_head=12, n_embd=768, vocab_size=8000, n_positions=256)
    return folder, sum(p.numel() for p in hf.parameters()) * 4  # float32 bytes, tied W_U counted once


@pytest.mark.parametrize("dtype,bound", [("float32", 1.5), ("float16", 0.75), ("stored", 0.05)])
def test_load_peak_memory(big_folder, dtype, bound):
    folder, weight_bytes = big_folder
    r = subprocess.run([sys.executable, "-c", MEASURE, str(folder), dtype], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    grown = int(r.stdout.strip().splitlines()[-1])
    assert weight_bytes > 100 * 2**20
    if dtype == "stored":
        grown = int(r.stdout.strip().splitlines()[-2])
        ran = int(r.stdout.strip().splitlines()[-1])
        assert ran <= 0.2 * weight_bytes, f"a pass grew {ran / 2**20:.0f} MiB for {weight_bytes / 2**20:.0f} MiB of weights"
    assert grown <= bound * weight_bytes, f"{dtype}: grew {grown / 2**20:.0f} MiB for {weight_bytes / 2**20:.0f} MiB of weights"
