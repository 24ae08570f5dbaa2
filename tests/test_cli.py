"""The `llmviz` command as a user runs it: a real process, its output and exit code."""

import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from llmviz.serve.export import read_manifest
from waiting import json_when_up, wait_until


def llmviz(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "llmviz.serve.cli", *args], capture_output=True, text=True, timeout=timeout)


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
    (["trace", "CBA", "--out", "/nonexistent-dir/x.safetensors"],
     "cannot write /nonexistent-dir/x.safetensors: the folder /nonexistent-dir does not exist"),
    (["train", "nano-gpt", "--out", "/nonexistent-dir/x.safetensors"],
     "cannot write /nonexistent-dir/x.safetensors: the folder /nonexistent-dir does not exist"),
])
def test_errors_exit_non_zero_with_one_line(args, message):
    r = llmviz(*args)
    assert r.returncode != 0
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("cmd", [[], ["serve"], ["generate"], ["trace"], ["models"], ["train"], ["export"]])
def test_help(cmd):
    r = llmviz(*cmd, "--help")
    assert r.returncode == 0 and "Usage:" in r.stdout


def files(folder) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too), by its path relative to it, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(r, line: str) -> None:
    """The command said no in one line, exactly `line`, with no traceback."""
    assert r.returncode == 1, r.stderr
    assert r.stderr == f"Error: {line}\n"


FOLDER_IN_USE = ("export into a new or empty folder, or pass --force to write the export beside it (files of its own "
                 "names are replaced, nothing else)")


def test_export_deletes_nothing_in_a_folder_that_only_looks_like_an_export(tmp_path):
    """A data/manifest.json that llmviz did not write does not make the folder an earlier export."""
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / "src").mkdir()
    (proj / "data" / "manifest.json").write_text("{}\n")
    (proj / "src" / "precious.txt").write_text("precious\n")
    (proj / "README.md").write_text("# my project\n")
    before = files(proj)
    r = subprocess.run([sys.executable, "-m", "llmviz.serve.cli", "export", "--input", "CBABBC", "--out", "proj"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    refused(r, f"proj/data/manifest.json is not marked as an llmviz export's manifest: {FOLDER_IN_USE}")
    assert files(proj) == before


def test_export_into_a_pages_repository_needs_force_and_keeps_its_files(tmp_path):
    """A GitHub Pages checkout: refused as it is; with --force the export goes beside .git and CNAME, and a second
    export with --force replaces the first one's files and keeps theirs byte for byte."""
    site = tmp_path / "site"
    (site / ".git" / "objects" / "ab").mkdir(parents=True)
    (site / ".git" / "HEAD").write_text("ref: refs/heads/gh-pages\n")
    (site / ".git" / "objects" / "ab" / "cdef").write_bytes(bytes(range(256)))
    (site / "CNAME").write_text("llmviz.example.org\n")
    theirs = files(site)
    refused(llmviz("export", "--input", "CBABBC", "--out", str(site)), f"{site / '.git'} is not part of an earlier "
            f"llmviz export: {FOLDER_IN_USE}")
    assert files(site) == theirs

    r = llmviz("export", "--input", "CBABBC", "--out", str(site), "--force")
    assert r.returncode == 0, r.stderr
    first = read_manifest(site)["files"]
    assert files(site).keys() == theirs.keys() | set(first)
    r = llmviz("export", "--input", "AABCCB", "--out", str(site), "--force")
    assert r.returncode == 0, r.stderr
    second = read_manifest(site)
    assert second["inputs"] == ["AABCCB"]
    now = files(site)
    assert now.keys() == theirs.keys() | set(second["files"])  # the first export's unused data files are gone
    assert set(first) - set(second["files"])  # (there were some)
    assert {k: now[k] for k in theirs} == theirs


def test_export_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "site").write_text("not a folder\n")
    for force in ([], ["--force"]):
        r = llmviz("export", "--input", "CBABBC", "--out", str(tmp_path / "site"), *force)
        refused(r, f"{tmp_path / 'site'} is not a folder: give a folder for the export (new, empty, or an earlier export)")
        assert (tmp_path / "site").read_text() == "not a folder\n"


def test_trace_replaces_a_file_only_with_force(tmp_path, nano):
    out = tmp_path / "notes.txt"
    out.write_text("my notes\n")
    refused(llmviz("trace", "CBABBC", "--out", str(out)), f"{out} exists: pass --force to replace it")
    assert out.read_text() == "my notes\n"
    r = llmviz("trace", "CBABBC", "--out", str(out), "--force")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(load_file(str(out))["probs"], nano.run("CBABBC")["probs"])
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # no temporary file left beside it


def test_train_needs_out_and_replaces_nothing_without_force(tmp_path):
    r = llmviz("train", "nano-gpt")
    assert r.returncode == 2 and r.stderr == "Error: Missing option '--out' / '-o'.\n"
    weights, card = tmp_path / "w.safetensors", tmp_path / "w.safetensors.md"
    weights.write_bytes(b"my weights")
    r = llmviz("train", "nano-gpt", "--out", str(weights))
    refused(r, f"{weights} exists: pass --force to replace it")
    assert r.stdout == "" and weights.read_bytes() == b"my weights" and not card.exists()
    weights.unlink()
    card.write_text("my card\n")
    r = llmviz("train", "nano-gpt", "--out", str(weights))
    refused(r, f"{card} exists: pass --force to replace it")
    assert r.stdout == "" and not weights.exists() and card.read_text() == "my card\n"  # refused before training


def test_serve_refuses_a_busy_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = llmviz("serve", "--no-browser", "--port", str(port))
    assert r.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in r.stderr


def test_serve_prints_its_url_and_answers():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llmviz.serve.cli", "serve", "--no-browser", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line and "nano-gpt" in line
        models = json_when_up(f"http://127.0.0.1:{port}/api/models")
        assert models[0]["name"] == "nano-gpt" and models[0]["has_weights"]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("args,message", [
    (["generate", "--seed", "-1", "AB"], "Invalid value for '--seed': -1 is not in the range 0<=x<=9223372036854775807"),
    (["generate", "-t", "nan", "AB"], "nan is not a finite number"),
    (["generate", "-t", "inf", "AB"], "inf is not a finite number"),
    (["generate", "--top-p", "0", "AB"], "--top-p"),
    (["generate"], "Missing argument 'PROMPT'"),
    (["nonsense"], "No such command 'nonsense'"),
])
def test_bad_options_are_one_line(args, message):
    r = llmviz(*args)
    assert r.returncode == 2 and r.stderr.startswith("Error: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_tiny_temperature_is_greedy():
    r = llmviz("generate", "-t", "1e-320", "--seed", "3", "CBABBC")
    assert (r.returncode, r.stdout, r.stderr) == (0, "ABBBCC\n", "")


def serve(*args):
    """`llmviz serve` as a process; returns it and the URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "llmviz.serve.cli", "serve", "--no-browser", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line.split(" at ")[1].split()[0] if " at " in line else line


def get_json(url):
    return json_when_up(url)


def unread_by_server(client) -> int | None:
    """How many bytes `client` sent that the server's end of the connection holds unread (Linux's /proc/net/tcp:
    the server's socket and its receive queue); None while the connection is not there."""
    import socket

    def where(addr):
        host, port = addr[:2]
        return f"{int.from_bytes(socket.inet_aton(host), 'little'):08X}:{port:04X}"

    server, me = where(client.getpeername()), where(client.getsockname())
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, remote, _state, queues = line.split()[1:5]
            if (local, remote) == (server, me):
                return int(queues.split(":")[1], 16)
    return None


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far (user and system, from /proc)."""
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc, sig=None):
    import signal

    proc.send_signal(sig or signal.SIGINT)
    try:
        proc.wait(10)
    finally:
        proc.kill()
    return proc.stdout.read(), proc.stderr.read()


def test_port_0_prints_the_port_actually_bound():
    proc, url = serve("--port", "0")
    try:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert port != 0 and get_json(url + "api/models")[0]["name"] == "nano-gpt"
    finally:
        stop(proc)


def test_ipv6_loopback():
    import socket

    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    proc, url = serve("--host", "::1", "--port", "0")
    try:
        assert url.startswith("http://[::1]:")
        assert get_json(url + "api/models")[0]["name"] == "nano-gpt"
    finally:
        stop(proc)


def test_a_non_loopback_address_warns_that_it_is_exposed():
    proc, url = serve("--host", "0.0.0.0", "--port", "0")
    try:
        port = url.rstrip("/").rsplit(":", 1)[1]
        assert get_json(f"http://127.0.0.1:{port}/api/models")[0]["name"] == "nano-gpt"
    finally:
        _, err = stop(proc)
    assert "Warning: listening on 0.0.0.0 exposes llmviz to the network" in err


def test_ctrl_c_exits_promptly_and_quietly_even_with_an_unfinished_request():
    import socket
    import time

    proc, url = serve("--port", "0")
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    get_json(url + "api/models")
    hanging = socket.create_connection(("127.0.0.1", port))  # a body that never arrives
    hanging.sendall(b"POST /api/trace HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n\r\n{")
    wait_until(lambda: unread_by_server(hanging) == 0, 10, "the server to read the unfinished request")
    start = time.perf_counter()
    _out, err = stop(proc)
    hanging.close()
    assert time.perf_counter() - start < 6
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_ctrl_c_ends_a_long_generation_promptly(tmp_path):
    import socket
    import time

    from conftest import random_model
    from llmviz.io.loading import save_weights

    path = tmp_path / "slowish.safetensors"
    save_weights(random_model("slowish", n_layer=4, n_embd=256, vocab_size=8000, n_ctx=1024), path)
    proc, url = serve("--model", str(path), "--port", "0")
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    get_json(url + "api/models")
    body = (f'{{"model": "slowish", "tokens": {list(range(900))}, "max_new_tokens": 200}}').encode()
    client = socket.create_connection(("127.0.0.1", port))
    idle = cpu_seconds(proc.pid)
    client.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
    # Well into the 200 forward passes over 900+ tokens (about 30 s of CPU time here): a second of it spent.
    wait_until(lambda: cpu_seconds(proc.pid) > idle + 1.0, 30, "the server to compute the generation for a second")
    start = time.perf_counter()
    _out, err = stop(proc)
    assert proc.returncode == 0 and time.perf_counter() - start < 5
    assert "Traceback" not in err and "ERROR" not in err
    client.settimeout(2)
    assert client.recv(4096).startswith(b"HTTP/1.1 503")  # the request was answered: the server is stopping
    client.close()


def test_numeric_trouble_is_one_line_naming_the_tensor(tmp_path):
    """Weights within the loaders' bounds that still drive a pass past float32's range: an error, not NaN output
    with numpy's multi-line warnings."""
    from llmviz.io.loading import load_model, save_weights

    m = load_model("nano-gpt")
    m.weights["blocks.0.ln2.b"][:] = 1e6
    m.weights["blocks.0.mlp.W_in"][:] = 1e6  # the MLP's pre-activations reach 5e13: GELU's x³ overflows
    save_weights(m, tmp_path / "hot.safetensors")
    r = llmviz("generate", "--model", str(tmp_path / "hot.safetensors"), "CBA")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == ("Error: computing blocks.0.mlp.hook_post went out of float32's range (overflow encountered in "
                        "multiply): nano-gpt's weights or this input drive the forward pass to numbers it cannot hold\n")


def test_a_warning_from_any_library_is_one_line_without_a_source_path():
    code = ("import numpy as np, llmviz.io.loading as l, llmviz.serve.cli as cli\n"
            "load = l.load_model\n"
            "def warn_then_load(*a, **k):\n"
            "    np.float32(3e38) * np.float32(10)\n"
            "    return load(*a, **k)\n"
            "l.load_model = warn_then_load\n"
            "cli.main(['generate', 'CBABBC'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "ABBBCC\n")
    assert r.stderr == "Warning: overflow encountered in scalar multiply\n"
