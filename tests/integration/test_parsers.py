"""File parsers on real files: Markdown (markdown-it-py), HTML (selectolax), PDF (pypdf, a PDF
written by hand with text on two pages), skipped unknown types and missing-parser hints."""

from __future__ import annotations

import logging
import sys

import pytest

from _pdf import write_pdf
from heron.ingest import iter_documents
from heron.ingest.folder import content_hash, scan_folder
from heron.ingest.parsers import MissingParser, parse_file

MD = """# Reading gzip files

Use `gzip.open` to read compressed files.

## Line by line

Iterate over the file object.

### Text mode

Pass `mode="rt"`.
"""

HTML = """<!doctype html>
<html><head><title>argparse &mdash; Parser for command-line options</title>
<style>body { color: red }</style><script>var secret = "do not index";</script></head>
<body><nav>Home</nav><h1>argparse</h1><p>The <b>argparse</b> module makes it easy to write
user-friendly command-line interfaces.</p><h2>Example</h2><p>parser.add_argument('--sum')</p>
<noscript>enable javascript</noscript></body></html>"""


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "docs"
    (d / "web").mkdir(parents=True)
    (d / "gzip.md").write_text(MD)
    (d / "web" / "argparse.html").write_text(HTML)
    (d / "notes.txt").write_text("json.loads turns a JSON string into Python objects.")
    write_pdf(d / "report.pdf",
              [["Heron indexes (compressed) vectors.", "Page one ends here."],
               ["BM25 scores terms on page two."]],
              title="Heron technical report")
    (d / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (d / "data.csv").write_text("a,b\n1,2\n")
    (d / "Makefile").write_text("all:\n")
    (d / ".hidden.md").write_text("# secret")
    (d / "empty.txt").write_text("   \n")
    return d


def test_markdown_title_and_headings(folder):
    p = parse_file(folder / "gzip.md")
    assert p.title == "Reading gzip files"
    assert [(h["level"], h["text"]) for h in p.meta["headings"]] == [
        (1, "Reading gzip files"), (2, "Line by line"), (3, "Text mode")]
    for h in p.meta["headings"]:  # offsets point at the heading lines of the text
        assert p.text[h["offset"]:].startswith("#" * h["level"] + " " + h["text"])


def test_html_text_title_without_scripts(folder):
    p = parse_file(folder / "web" / "argparse.html")
    assert p.title == "argparse — Parser for command-line options"
    assert "user-friendly command-line interfaces" in p.text
    assert "secret" not in p.text and "color" not in p.text and "javascript" not in p.text
    assert [(h["level"], h["text"]) for h in p.meta["headings"]] == [(1, "argparse"), (2, "Example")]
    assert p.text[p.meta["headings"][1]["offset"]:].startswith("Example")


def test_pdf_pages_and_title(folder):
    p = parse_file(folder / "report.pdf")
    assert p.title == "Heron technical report"
    assert p.meta["pages"] == 2
    o = p.meta["page_offsets"]
    assert p.text[o[0]:].startswith("Heron indexes (compressed) vectors.")
    assert p.text[o[1]:].startswith("BM25 scores terms on page two.")


def test_damaged_pdf_is_a_value_error(tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not a pdf body")
    with pytest.raises(ValueError, match="not a readable PDF"):
        parse_file(bad)


def test_unknown_suffix_named(tmp_path):
    with pytest.raises(ValueError, match=r"no parser for '\.csv'"):
        parse_file(tmp_path / "x.csv", b"a,b")


def test_folder_documents_and_counted_skips(folder, caplog):
    with caplog.at_level(logging.INFO, logger="heron"):
        scan = scan_folder(folder)
        docs = {i: (t, m) for i, t, m in iter_documents(folder)}
    assert dict(scan.skipped) == {".csv": 1, ".png": 1, "(no suffix)": 1}
    assert "skipped 3 file(s)" in caplog.text
    assert sorted(docs) == ["gzip.md", "notes.txt", "report.pdf", "web/argparse.html"]
    text, meta = docs["web/argparse.html"]
    assert meta["format"] == "html" and meta["path"] == "web/argparse.html"
    assert meta["sha256"] == content_hash((folder / "web" / "argparse.html").read_bytes())
    # a title the body does not start with is put first, and the heading offsets follow it
    assert text.startswith("argparse — Parser for command-line options\n\n")
    assert text[meta["headings"][1]["offset"]:].startswith("Example")
    text, meta = docs["report.pdf"]
    assert text.startswith("Heron technical report\n\n")
    assert text[meta["page_offsets"][1]:].startswith("BM25 scores")
    assert docs["gzip.md"][1]["title"] == "Reading gzip files"


def test_missing_parser_names_the_extra(folder, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "pypdf", None)  # as if pypdf were not installed
    with pytest.raises(MissingParser, match=r'pip install "heron\[docs\]"'):
        parse_file(folder / "report.pdf")
    with caplog.at_level(logging.WARNING, logger="heron"):
        ids = [i for i, _, _ in iter_documents(folder)]
    assert "report.pdf" not in ids and "gzip.md" in ids
    assert "skipped 1 .pdf file(s)" in caplog.text and "heron[docs]" in caplog.text


def test_markdown_without_markdown_it_is_plain_text(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "markdown_it", None)
    p = parse_file(folder / "gzip.md")
    assert p.text == MD and p.title == "" and p.meta == {}


def test_front_matter_gives_the_title_and_is_no_heading(tmp_path):
    f = tmp_path / "note.md"
    f.write_text('---\ntitle: "Volcanic ash"\ntags: [geo]\n---\n# Flights\n\nGrounded for days.\n')
    p = parse_file(f)
    # markdown-it alone reads "tags: [geo]\n---" as a setext heading and takes it as the title
    assert p.title == "Volcanic ash" and p.text == f.read_text()
    assert p.meta["headings"] == [{"level": 1, "text": "Flights", "offset": p.text.index("# Flights")}]
    f.write_text("---\nauthor: me\n---\nNo heading here.\n")
    assert parse_file(f).title == "" and "headings" not in parse_file(f).meta
    f.write_text("Intro\n---\n\nText.\n")  # a setext heading, not front matter (not at the start)
    assert parse_file(f).title == "Intro"


def test_text_encodings(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes("café crème brûlée".encode("latin-1"))
    assert parse_file(f).text == "café crème brûlée"  # not caf\ufffd
    f.write_bytes("“quoted” – naïve".encode("cp1252"))
    assert parse_file(f).text == "“quoted” – naïve"
    f.write_bytes("\ufeffBOM first".encode("utf-8"))
    assert parse_file(f).text == "BOM first"
    # UTF-8 with one stray byte stays UTF-8 (one replacement character), not Windows-1252 mojibake
    f.write_bytes("naïve 北京".encode() + b"\xff")
    assert parse_file(f).text == "naïve 北京\ufffd"
