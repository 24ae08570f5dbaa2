"""`pip install .` gives a package whose `llmviz` works outside the repository, front-end and weights included."""

import subprocess
import sys
import zipfile

import pytest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(root)], check=True, capture_output=True)
    return next(out.glob("llmviz-*.whl"))


def test_wheel_carries_front_end_weights_and_card(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for f in ["llmviz/static/index.html", "llmviz/static/app.js", "llmviz/weights/nano-gpt.safetensors",
              "llmviz/weights/nano-gpt.safetensors.md", "llmviz/serve/server.py", "llmviz/views/chapters/01-overview.md",
              "llmviz/views/chapters/12-scale.md"]:
        assert f in names


def test_installed_package_runs_outside_the_repo(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import llmviz, sys; assert llmviz.__file__.startswith(sys.argv[1]), llmviz.__file__; "
            "from llmviz.serve.cli import main; main(['generate', 'CBABBC'])")
    r = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, capture_output=True, text=True,
                       env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ABBBCC\n"
