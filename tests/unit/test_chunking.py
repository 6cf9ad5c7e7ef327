"""The chunker (heron.encoders.chunking) and passage aggregation, on hand-checkable texts."""

import numpy as np
import pytest

from heron.capabilities.passages import aggregate
from heron.encoders.chunking import (
    ChunkSpec,
    chunk_document,
    chunk_documents,
    whitespace_tokenize,
)


def words(text, a, b):
    return len(text[a:b].split())


def sentences(n, length=5, stem="word"):
    return " ".join(" ".join([f"{stem}{i}"] * (length - 1)) + f" end{i}." for i in range(n))


def test_sentence_windows_respect_size_and_cover_text_in_order():
    text = sentences(10, length=5)  # ten sentences of five words
    ps = chunk_document(text, ChunkSpec(size=12, context="none"))
    assert [words(text, p.start, p.end) for p in ps] == [10, 10, 10, 10, 10]
    assert all(text[p.start : p.end].endswith(".") for p in ps)
    assert [p.start for p in ps] == sorted(p.start for p in ps)
    assert ps[0].start == 0 and ps[-1].end == len(text)
    assert " ".join(text[p.start : p.end] for p in ps) == text
    assert all(p.encoded == text[p.start : p.end] for p in ps)


def test_a_sentence_longer_than_the_window_is_cut():
    text = "short one. " + " ".join(f"w{i}" for i in range(25)) + ". tail end."
    ps = chunk_document(text, ChunkSpec(size=10, context="none"))
    assert max(words(text, p.start, p.end) for p in ps) <= 10
    assert sum(words(text, p.start, p.end) for p in ps) == len(text.split())


def test_sentence_overlap_repeats_sentences():
    text = sentences(6, length=4)
    ps = chunk_document(text, ChunkSpec(size=8, overlap=1, context="none"))
    # windows of two sentences, each starting at the previous window's last sentence
    assert len(ps) == 5
    assert all(ps[i + 1].start < ps[i].end for i in range(len(ps) - 1))


def test_token_windows_with_overlap():
    text = " ".join(f"t{i}" for i in range(25))
    ps = chunk_document(text, ChunkSpec(method="tokens", size=10, overlap=4, context="none"))
    got = [text[p.start : p.end].split() for p in ps]
    assert got[0] == [f"t{i}" for i in range(10)]
    assert got[1][0] == "t6" and got[1][-1] == "t15"
    assert got[-1][-1] == "t24"
    assert all(len(g) <= 10 for g in got)


def test_markdown_keeps_the_heading_path():
    text = "# Guide\nIntro text here.\n## Install\nRun pip install.\n### From source\nClone it first.\n# Other\nMore."
    ps = chunk_document(text, ChunkSpec(method="markdown", size=50, context="title"), title="Doc")
    assert [p.heading for p in ps] == [
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "From source"),
        ("Other",),
    ]
    assert text[ps[2].start : ps[2].end] == "Clone it first."
    assert ps[2].encoded == "Doc > Guide > Install > From source\nClone it first."
    assert all("#" not in text[p.start : p.end] for p in ps)


def test_title_is_context_not_body():
    title = "Statins and survival"
    text = title + " " + sentences(4, length=5)
    ps = chunk_document(text, ChunkSpec(size=10, context="title"), title=title)
    assert ps[0].start > len(title)
    assert all(p.encoded.startswith(title + "\n") for p in ps)
    plain = chunk_document(text, ChunkSpec(size=10, context="none"), title=title)
    assert [(p.start, p.end) for p in plain] == [(p.start, p.end) for p in ps]
    assert plain[1].encoded == text[plain[1].start : plain[1].end]


def test_neighbours_context_adds_text_around_the_passage_but_never_the_title():
    title = "T"
    text = title + " " + sentences(3, length=5)
    ps = chunk_document(text, ChunkSpec(size=5, context="neighbours", neighbours=2), title=title)
    middle = ps[1]
    body = text[middle.start : middle.end]
    assert middle.encoded == "word0 end0. " + body + " word2 word2"
    assert ps[0].encoded.startswith("word0")  # no title on the left of the first passage
    both = chunk_document(text, ChunkSpec(size=5, context="title+neighbours", neighbours=2), title=title)
    assert both[1].encoded == "T\n" + middle.encoded


def test_every_document_has_a_passage():
    offsets, ps = chunk_documents(["", "Title only", "one two."], ChunkSpec(), titles=["", "Title only", ""])
    assert np.diff(offsets).tolist() == [1, 1, 1]
    assert ps[1].encoded == "Title only"


def test_whitespace_tokenize_spans():
    assert whitespace_tokenize(" ab  c\n").tolist() == [[1, 3], [5, 6]]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sentences:128", ChunkSpec()),
        ("tokens:200:50", ChunkSpec(method="tokens", size=200, overlap=50)),
        ("markdown", ChunkSpec(method="markdown")),
    ],
)
def test_parse(text, expected):
    assert ChunkSpec.parse(text) == expected


def test_parse_context_and_tag():
    spec = ChunkSpec.parse("sentences:128", context="title+neighbors")
    assert spec.context == "title+neighbours"
    assert spec.tag() == "sentences128-title_neighbours32"
    assert ChunkSpec.parse(spec.as_dict()) == spec


@pytest.mark.parametrize(
    "bad, match",
    [
        ("paragraphs:128", "method"),
        ("sentences:abc", "METHOD"),
        ("sentences:0", "size"),
        ("tokens:100:100", "overlap"),
        ("sentences:1:2:3", "at most"),
    ],
)
def test_parse_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        ChunkSpec.parse(bad)
    with pytest.raises(ValueError, match="context"):
        ChunkSpec.parse("sentences", context="chapter")


# ------------------------------------------------------------------------- aggregation
OFFSETS = np.array([0, 3, 3, 5])  # doc 0: passages 0-2, doc 1: none, doc 2: passages 3-4
SCORES = np.array([[0.1, 0.9, 0.5, 0.7, 0.6]], dtype=np.float32)


def test_aggregate_max_names_the_best_passage():
    s, best = aggregate(SCORES, OFFSETS)
    assert s.tolist() == [[pytest.approx(0.9), -np.inf, pytest.approx(0.7)]]
    assert best.tolist() == [[1, -1, 0]]


def test_aggregate_top_m_mean_and_sum():
    mean, _ = aggregate(SCORES, OFFSETS, agg="mean", m=2)
    total, _ = aggregate(SCORES, OFFSETS, agg="sum", m=2)
    assert mean[0, 0] == pytest.approx(0.7) and mean[0, 2] == pytest.approx(0.65)
    assert total[0, 0] == pytest.approx(1.4) and total[0, 2] == pytest.approx(1.3)
    assert np.isneginf(mean[0, 1]) and np.isneginf(total[0, 1])
    # fewer passages than m: the mean of those there are
    mean5, _ = aggregate(SCORES, OFFSETS, agg="mean", m=5)
    assert mean5[0, 2] == pytest.approx(0.65)


def test_aggregate_with_whole_document_vector():
    whole = np.array([[0.2, 0.4, 0.8]], dtype=np.float32)
    s, best = aggregate(SCORES, OFFSETS, whole=whole)
    assert s[0].tolist() == pytest.approx([0.9, 0.4, 0.8])
    assert best.tolist() == [[1, -1, -1]]  # doc 2 was won by its whole-document vector
    mean, _ = aggregate(SCORES, OFFSETS, agg="mean", m=2, whole=whole)
    assert mean[0].tolist() == pytest.approx([0.7, 0.4, 0.75])


def test_aggregate_ties_pick_the_first_passage():
    s, best = aggregate(np.array([[0.5, 0.5, 0.5]], np.float32), np.array([0, 3]))
    assert best.tolist() == [[0]]


def test_passage_indices_follow_their_hits_through_cut_and_rescore():
    from heron.pipeline import rescore
    from heron.results import Results

    res = Results(
        np.array([[7, 8, 9]]), np.array([[0.9, 0.5, 0.1]]), info={"passages": np.array([[2, 0, 4]]), "n": 1}
    )
    assert res.cut(2).info["passages"].tolist() == [[2, 0]]
    again = rescore(res, np.array([[0.1, 0.2, 0.3]]))
    assert again.keys.tolist() == [[9, 8, 7]] and again.info["passages"].tolist() == [[4, 0, 2]]
    assert again.info["n"] == 1


def test_route_passages_points_every_passage_retriever_at_the_field():
    from heron.eval.chunking import route_passages

    got = route_passages("hybrid:passages?agg=max+passages_bm25+passages_splade+bm25", "f1")
    assert got == (
        "hybrid:passages?agg=max&field=f1+passages_bm25?field=f1+passages_splade?field=f1+bm25"
    )
    assert route_passages("passages_splade?field=other", "f1") == "passages_splade?field=other"


def test_folder_scan_skips_links_to_files_outside_the_folder(tmp_path):
    """A symbolic link inside an indexed folder that points outside it is never read."""
    from heron.ingest.folder import scan_folder

    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the folder")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("inside")
    (folder / "leak.txt").symlink_to(outside)
    (folder / "sub" / "alias.txt").symlink_to(folder / "a.txt")  # inside: kept
    scan = scan_folder(folder)
    assert sorted(scan.doc_id(f) for f in scan.files) == ["a.txt", "sub/alias.txt"]
    assert scan.skipped["(link to outside the folder)"] == 1
