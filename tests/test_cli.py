"""The `llmviz` command as a user runs it: a real process, its output and exit code."""

import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file


def llmviz(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "llmviz.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_generate_prints_the_completion():
    r = llmviz("generate", "--model", "nano-gpt", "CBABBC")
    assert (r.returncode, r.stdout) == (0, "ABBBCC\n")


def test_generate_with_ids():
    assert llmviz("generate", "--ids", "2,1,0,1,1,2").stdout == "ABBBCC\n"


def test_models_lists_presets_with_counts():
    out = llmviz("models").stdout
    assert "nano-gpt" in out and "85,728" in out and "124,439,808" in out and "174,604,259,328" in out


def test_trace_writes_every_tensor(tmp_path, nano):
    out = tmp_path / "t.safetensors"
    r = llmviz("trace", "--model", "nano-gpt", "CBABBC", "--out", str(out))
    assert r.returncode == 0, r.stderr
    saved = load_file(str(out))
    assert set(saved) == set(nano.graph.names())
    ref = nano.run("CBABBC")
    for name in ["blocks.2.attn.hook_pattern", "blocks.1.mlp.hook_post", "probs", "embed.W_E"]:
        np.testing.assert_array_equal(saved[name], ref[name])
    np.testing.assert_array_equal(saved["tokens"], [2, 1, 0, 1, 1, 2])


@pytest.mark.parametrize("args,message", [
    (["generate", "CBD"], "unknown token 'D' at position 2: this model accepts only A, B, C"),
    (["generate", "--model", "gpt5", "AB"], "unknown model 'gpt5'"),
    (["generate", "ABCABCABCABC"], "context holds at most 11"),
    (["generate", "--model", "gpt3", "--ids", "1 2"], "gpt3 is structure only"),
    (["trace", "CBA", "--out", "/nonexistent-dir/x.safetensors"], "No such file or directory"),
])
def test_errors_exit_non_zero_with_one_line(args, message):
    r = llmviz(*args)
    assert r.returncode != 0
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("cmd", [[], ["serve"], ["generate"], ["trace"], ["models"], ["train"]])
def test_help(cmd):
    r = llmviz(*cmd, "--help")
    assert r.returncode == 0 and "Usage:" in r.stdout


def test_serve_refuses_a_busy_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = llmviz("serve", "--no-browser", "--port", str(port))
    assert r.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in r.stderr


def test_serve_prints_its_url_and_answers():
    import json
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llmviz.cli", "serve", "--no-browser", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line and "nano-gpt" in line
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/models", timeout=2) as r:
                    models = json.load(r)
                break
            except OSError:
                __import__("time").sleep(0.1)
        assert models[0]["name"] == "nano-gpt" and models[0]["has_weights"]
    finally:
        proc.terminate()
        proc.wait(10)
