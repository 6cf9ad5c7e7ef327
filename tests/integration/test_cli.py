"""The command line: index a folder, search it (text and JSON), info, and errors."""

import json
import os
import subprocess
import sys

import pytest


def heron(*args, check=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "heron", *args], capture_output=True, text=True, env=env
    )
    if check and out.returncode != 0:
        raise AssertionError(out.stderr)
    return out


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    docs = root / "docs"
    docs.mkdir()
    (docs / "gzip.md").write_text("Use the gzip module to read compressed files line by line.")
    (docs / "argparse.txt").write_text("argparse parses command line arguments and options.")
    (docs / "sub").mkdir()
    (docs / "sub" / "json.md").write_text("json.loads turns a JSON string into Python objects.")
    out = heron("index", str(docs), "--collection", str(root / "c"), "--bm25")
    assert "indexed 3 documents" in out.stdout
    # heron's own notices only (no "Loading weights" bar, no library warnings)
    assert all(line.startswith("heron: ") for line in out.stderr.splitlines()), out.stderr
    return root / "c"


def test_search_text_and_json(indexed):
    out = heron("search", str(indexed), "how to parse command line options", "-k", "2")
    assert "argparse.txt" in out.stdout.splitlines()[2]
    data = json.loads(
        heron("search", str(indexed), "decompress a file", "-k", "1", "--json").stdout
    )
    assert data["results"][0]["hits"][0]["id"] == "gzip.md"
    data = json.loads(
        heron(
            "search", str(indexed), "JSON string", "-k", "3", "--retriever", "bm25", "--json"
        ).stdout
    )
    assert data["results"][0]["hits"][0]["id"] == "sub/json.md"


def test_reindex_replaces(indexed, tmp_path):
    heron("index", str(indexed.parent / "docs"), "--collection", str(indexed))
    info = json.loads(heron("info", str(indexed), "--json").stdout)
    assert info["documents"] == 3 and info["model"].endswith("all-MiniLM-L6-v2")


def test_cli_errors(indexed, tmp_path):
    out = heron("search", str(indexed), "x", "-k", "0", check=False)
    assert out.returncode == 2 and "k must be a positive int" in out.stderr
    out = heron("info", str(tmp_path / "nope"), check=False)
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = heron("search", str(indexed), "x", "--retriever", "zzz", check=False)
    assert out.returncode == 2 and "unknown retriever" in out.stderr
    out = heron("frobnicate", check=False)
    assert out.returncode != 0


def test_demo_small(tmp_path):
    q = "read exactly n bytes from a stream"
    out = heron("demo", "--collection", str(tmp_path / "demo"), "--limit", "300", "-k", "2", q)
    assert "corpus: 300 docstrings" in out.stdout
    assert "StreamReader.readexactly" in out.stdout.split(f"Q: {q}")[1]


def test_model_loading_is_silent_unless_verbose(indexed):
    """The model's "Loading weights" bar and other third-party output only with --verbose."""
    out = heron("search", str(indexed), "-k", "1", "decompress", "a", "file")
    assert out.stderr == "" and "gzip.md" in out.stdout
    loud = heron("--verbose", "search", str(indexed), "-k", "1", "decompress", "a", "file")
    assert "Loading weights" in loud.stderr  # what the default run silenced
    quiet = heron("search", str(indexed), "-k", "1", "--quiet", "decompress", "a", "file")
    assert quiet.stderr == "" and quiet.stdout.splitlines()[:3] == out.stdout.splitlines()[:3]


def test_every_command_takes_quiet_and_verbose(capsys):
    from heron.cli.main import COMMANDS, main

    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert "--quiet" in text and "--verbose" in text, name


def test_a_parser_library_warning_is_not_printed_bare(tmp_path):
    """pypdf logs "EOF marker not found" for a damaged PDF; the CLI shows heron's one warning."""
    docs = tmp_path / "d"
    docs.mkdir()
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\ngarbage\n")
    out = heron("index", str(docs), "-c", str(tmp_path / "c"), check=False)
    assert out.returncode == 2 and "EOF marker" not in out.stderr
    lines = out.stderr.splitlines()
    assert all(line.startswith("heron: ") for line in lines), out.stderr
    assert "skipped" in lines[0] and "broken.pdf" in lines[0] and "holds no files" in lines[-1]


def test_index_progress_moves_while_encoding(tmp_path):
    """Files that fit one commit show the encoder's bar (a bar of commits would jump 0 -> 100%
    at the end); --quiet shows none."""
    docs = tmp_path / "d"
    docs.mkdir()
    for i in range(300):
        (docs / f"{i}.txt").write_text(f"note {i} about topic {i % 7}")
    out = heron("index", str(docs), "-c", str(tmp_path / "c"))
    assert "300 added" in out.stdout
    steps = [s for s in out.stderr.replace("\r", "\n").splitlines() if s.startswith("encoding")]
    assert len(steps) >= 3 and "0%" in steps[0] and "100%" in steps[-1], out.stderr
    (docs / "new.txt").write_text("one more note")
    quiet = heron("index", str(docs), "-c", str(tmp_path / "c"), "--quiet")
    assert quiet.stdout == "" and quiet.stderr == ""


def test_many_queries_are_encoded_with_a_bar(indexed, tmp_path):
    from heron.cli.search import QUERY_PROGRESS_OVER

    qfile = tmp_path / "q.txt"
    qfile.write_text("".join(f"question {i} about compressed files\n" for i in range(QUERY_PROGRESS_OVER + 1)))
    out = heron("search", str(indexed), "--queries", str(qfile), "-k", "1", "-r", "hybrid:dense+bm25")
    assert "encoding" in out.stderr and "100%" in out.stderr
    assert out.stdout.count("\n  ") >= QUERY_PROGRESS_OVER  # a hit line per query
    lexical = heron("search", str(indexed), "--queries", str(qfile), "-k", "1", "-r", "bm25")
    assert "encoding" not in lexical.stderr  # BM25 needs no query vectors
