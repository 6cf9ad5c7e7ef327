"""The search page end to end: the real server over a real collection, driven in headless Chromium.

The collection holds 30 short documents embedded with the bundled MiniLM model, metadata
``{"topic", "year"}``, a BM25 index, and a bench report written by heron.bench's own report
writer (:func:`heron.bench.sweep.write_report`) from a real codec sweep
(:func:`heron.bench.sweep.run_sweep`) over this collection's document vectors and a few encoded
queries. ``heron bench`` itself targets BEIR datasets, not a collection, so the report is made
the same way it makes its own, at this collection's size.

The test types a query, presses Enter, reads ranked hits with ``<mark>`` snippets, applies a
metadata filter, switches the retriever to BM25 (the score label changes), turns explain on
(matched terms), opens the Pareto plot, and triggers errors (unparsable filter JSON, an unknown
field). Screenshots go to ``$HERON_TEST_ARTIFACTS`` or ``out/page-test/``.

Skipped only when Chromium (``/usr/bin/chromium``) or the Playwright package is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
KEY = "page-test-read-key"  # the server runs with one read-only API key
ROOT = Path(__file__).resolve().parents[2]

DOCS = [
    # (id, topic, year, text)
    ("gz", "compression", 2019, "gzip compresses log files with the deflate algorithm"),
    ("zstd", "compression", 2021, "zstandard offers fast compression with trainable dictionaries"),
    ("brotli", "compression", 2022, "brotli compresses web fonts and HTML served over HTTP"),
    ("lz4", "compression", 2020, "lz4 trades compression ratio for very fast decompression"),
    ("xz", "compression", 2018, "xz archives use LZMA for a high compression ratio"),
    ("bzip", "compression", 2023, "bzip2 sorts blocks with the Burrows-Wheeler transform before coding"),
    ("bm25", "search", 2019, "BM25 ranks documents by term frequency and inverse document frequency"),
    ("hnsw", "search", 2021, "HNSW graphs find approximate nearest neighbours in logarithmic time"),
    ("ivf", "search", 2020, "inverted file indexes probe a few clusters of vectors per query"),
    ("rrf", "search", 2022, "reciprocal rank fusion merges the rankings of several retrievers"),
    ("splade", "search", 2023, "SPLADE expands queries and documents into sparse vocabulary weights"),
    ("pq", "search", 2018, "product quantization splits vectors into subspaces with small codebooks"),
    ("btree", "databases", 2018, "B-trees keep sorted keys on disk pages for range scans"),
    ("wal", "databases", 2020, "a write-ahead log makes committed transactions durable after a crash"),
    ("mvcc", "databases", 2021, "multi-version concurrency control lets readers see a stable snapshot"),
    ("sqlite", "databases", 2022, "SQLite stores a whole database in a single file"),
    ("lsm", "databases", 2023, "log-structured merge trees batch writes and compact sorted runs"),
    ("vacuum", "databases", 2019, "vacuuming reclaims the space of deleted rows in a table"),
    ("tcp", "networking", 2018, "TCP retransmits lost segments and controls congestion"),
    ("quic", "networking", 2022, "QUIC carries HTTP/3 over UDP with built-in encryption"),
    ("dns", "networking", 2019, "DNS resolves host names to addresses through a hierarchy of servers"),
    ("bgp", "networking", 2020, "BGP routers exchange reachability between autonomous systems"),
    ("tls", "networking", 2021, "TLS handshakes agree on keys before application data flows"),
    ("wifi", "networking", 2023, "Wi-Fi 6 schedules many stations with OFDMA"),
    ("bird", "biology", 2019, "herons wade in shallow water and spear fish with their beaks"),
    ("owl", "biology", 2020, "owls hunt at night and hear prey under snow"),
    ("bee", "biology", 2021, "honey bees dance to tell the hive where flowers are"),
    ("moss", "biology", 2022, "mosses survive drought by drying out and reviving with rain"),
    ("coral", "biology", 2023, "coral reefs bleach when warm water drives out their algae"),
    ("salmon", "biology", 2018, "salmon return upstream to the river where they hatched"),
    # markup in a document is text: the page must show it, never run or render it
    ("markup", "search", 2020, 'escape <script>alert("x")</script> & <b>bold</b> tags in snippets'),
]
BENCH_QUERIES = [
    "compressing log files",
    "nearest neighbour search",
    "durable transactions",
    "encrypted transport",
    "birds that fish",
    "fast decompression",
]


def _need_browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does it as root)")
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip('playwright is not installed (pip install "heron[dev]")')


def _artifacts() -> Path:
    folder = Path(os.environ.get("HERON_TEST_ARTIFACTS") or ROOT / "out" / "page-test")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory, encoder):
    """A server (one read-only key) over `notes` (MiniLM, BM25 index, bench report) and `bare`."""
    _need_browser()
    import numpy as np

    import heron
    from heron.bench.sweep import run_sweep, write_report
    from heron.server.app import create_app
    from heron.server.auth import hash_key
    from heron.server.threaded import ThreadedServer

    root = tmp_path_factory.mktemp("page")
    path = root / "notes"
    coll = heron.Collection.create(path, encoder=encoder)
    ids = [d[0] for d in DOCS]
    texts = [d[3] for d in DOCS]
    coll.add(texts, ids=ids, metadata=[{"topic": d[1], "year": d[2]} for d in DOCS])
    coll.create_index("bm25", kind="bm25")
    # a real (small) measurement: codecs x rescoring on this collection's own vectors
    x = encoder.encode_documents(texts)
    q = encoder.encode_queries(BENCH_QUERIES)
    rows = run_sweep(
        np.asarray(x, dtype=np.float32),
        np.asarray(q, dtype=np.float32),
        codecs=("fp32", "fp16", "int8", "bin"),
        oversamples=(0, 2),
        n_latency=1,
        progress=False,
    )
    coll.close()
    paths = write_report(
        rows,
        str(path / "reports" / "bench-codecs"),
        title="heron bench notes (codecs)",
        meta={"collection": "notes", "model": encoder.name, "n_docs": len(DOCS)},
    )
    assert "png" in paths, "matplotlib is needed for the Pareto plot (heron[eval])"

    # a second collection, with no encoder and no reports: its panel says "no bench report"
    bare = heron.Collection.create(root / "bare", model="none", dim=4)
    bare.add(["a", "b"], ids=["a", "b"], vectors=np.eye(2, 4, dtype=np.float32))
    bare.close()

    app = create_app([str(path), str(root / "bare")], api_keys={hash_key(KEY): "read"})
    with ThreadedServer(app, timeout=120) as srv:  # 127.0.0.1, port 0
        yield srv.url


def _hits(page) -> list[dict]:
    """The rendered hits: id, rank, the score's text and metadata (from the data attributes)."""
    return page.eval_on_selector_all(
        "#hits li.hit",
        """els => els.map(li => ({
            id: li.dataset.id,
            rank: Number(li.dataset.rank),
            score: li.querySelector('.score').textContent,
            snippet: li.querySelector('.snippet') ? li.querySelector('.snippet').innerHTML : null,
            meta: Object.fromEntries([...li.querySelectorAll('.meta-item')].map(
                m => [m.dataset.field, JSON.parse(m.dataset.value)])),
        }))""",
    )


def _search(page) -> None:
    """Press Enter in the query box and wait for the request to come back."""
    with page.expect_response(lambda r: r.url.endswith("/search")):
        page.press("#query", "Enter")
    page.wait_for_function("!document.body.classList.contains('busy')")


def test_search_page_in_chromium(served):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # a loaded 2-core CI box can be slow to search
    shots = _artifacts()
    for old in shots.glob("*.png"):
        old.unlink()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # without the key the API refuses and the page says so; with it (kept in
            # sessionStorage, so a reload keeps it) the collection and its info load
            page.goto(served + "/")
            expect(page.locator("#error")).to_be_visible()
            expect(page.locator("#error-code")).to_contain_text("unauthorized")
            page.screenshot(path=str(shots / "0-no-key.png"))
            page.fill("#api-key", KEY)
            page.press("#api-key", "Enter")
            expect(page.locator("#collection")).to_have_value("bare")
            assert page.evaluate("sessionStorage.getItem('heron.apiKey')") == KEY
            page.reload()
            expect(page.locator("#error")).to_be_hidden()
            expect(page.locator("#collection")).to_have_value("bare")  # the first by name
            expect(page.locator("#plot-box")).to_have_text("no bench report")
            page.select_option("#collection", "notes")
            expect(page.locator("#info")).to_contain_text("all-MiniLM-L6-v2")
            expect(page.locator("#info")).to_contain_text(str(len(DOCS)))
            expect(page.locator("#plot-thumb")).to_be_visible()

            # 1. a query, Enter, ranked hits with highlighted snippets; the expected top hit
            page.fill("#query", "gzip log files")
            _search(page)
            hits = _hits(page)
            page.screenshot(path=str(shots / "1-hits.png"), full_page=True)
            assert len(hits) == 10 and [h["rank"] for h in hits] == list(range(1, 11))
            assert hits[0]["id"] == "gz"
            assert "<mark>gzip</mark>" in hits[0]["snippet"]
            assert hits[0]["meta"] == {"topic": "compression", "year": 2019}
            expect(page.locator("#score-kind")).to_have_text("cosine")
            assert hits[0]["score"].startswith("cosine ")
            assert any(h["meta"]["year"] < 2021 for h in hits)

            # 2. a metadata filter from the field rows: year >= 2021
            page.click("#add-filter")
            row = page.locator("#filter-rows .filter-row").first
            row.locator(".f-field").select_option("year")
            row.locator(".f-op").select_option("$gte")
            row.locator(".f-value").fill("2021")
            _search(page)
            filtered = _hits(page)
            page.screenshot(path=str(shots / "2-filter.png"), full_page=True)
            assert filtered and all(h["meta"]["year"] >= 2021 for h in filtered)
            assert filtered[0]["id"] in {"zstd", "brotli", "bzip", "lsm"}  # compression/logs, 2021+
            page.click("#filter-rows .f-remove")

            # 3. BM25: the score label changes; explain shows the matched terms
            page.select_option("#retriever", "bm25")
            page.check("#explain")
            _search(page)
            expect(page.locator("#score-kind")).to_have_text("bm25")
            bm = _hits(page)
            assert bm[0]["id"] == "gz" and bm[0]["score"].startswith("bm25 ")
            terms = page.locator("#hits li.hit").first.locator(".term")
            expect(terms.first).to_be_visible()
            got = [t.split(" ")[0] for t in terms.all_text_contents()]
            assert "gzip" in got and "log" in got
            page.screenshot(path=str(shots / "3-bm25-explain.png"), full_page=True)
            # a typed spec overrides the choice: a hybrid's RRF score, explained by its parts
            page.fill("#spec", "hybrid:dense+bm25")
            _search(page)
            expect(page.locator("#score-kind")).to_have_text("rrf")
            parts = page.locator("#hits li.hit").first.locator(".part").all_text_contents()
            assert [p.split(" ")[0] for p in parts] == ["dense", "bm25"]
            assert _hits(page)[0]["id"] == "gz"
            page.screenshot(path=str(shots / "3b-hybrid.png"), full_page=True)
            page.fill("#spec", "")

            # 4. the bench report's Pareto plot, opened full size
            page.click("#open-plot")
            plot = page.locator("#plot-full")
            expect(plot).to_be_visible()
            page.wait_for_function("document.getElementById('plot-full').complete")
            size = plot.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert size[0] > 0 and size[1] > 0
            page.screenshot(path=str(shots / "4-plot.png"))
            page.click("#plot-close")

            # 5. markup inside a document's text shows as text; only <mark> is an element
            page.fill("#query", "escape script tags in snippets")
            _search(page)
            page.screenshot(path=str(shots / "5-markup.png"), full_page=True)
            first = page.locator("#hits li.hit").first
            expect(first).to_have_attribute("data-id", "markup")
            snip = first.locator(".snippet")
            expect(snip).to_contain_text('<script>alert("x")</script> & <b>bold</b>')
            tags = snip.evaluate("p => [...p.querySelectorAll('*')].map(e => e.tagName)")
            assert tags and set(tags) == {"MARK"}

            # 6. errors: filter JSON that does not parse; a field no document has (the server's message)
            page.fill("#filter-json", '{"year": ')
            page.press("#query", "Enter")
            expect(page.locator("#error")).to_be_visible()
            expect(page.locator("#error-message")).to_contain_text("does not parse")
            page.screenshot(path=str(shots / "6-error-json.png"))
            page.fill("#filter-json", '{"colour": "red"}')
            with page.expect_response(lambda r: r.url.endswith("/search") and r.status == 400):
                page.press("#query", "Enter")
            expect(page.locator("#error")).to_be_visible()
            expect(page.locator("#error-message")).to_contain_text("colour")
            page.screenshot(path=str(shots / "7-error-server.png"))
            assert not errors, errors
        finally:
            browser.close()
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "0-no-key.png",
        "1-hits.png",
        "2-filter.png",
        "3-bm25-explain.png",
        "3b-hybrid.png",
        "4-plot.png",
        "5-markup.png",
        "6-error-json.png",
        "7-error-server.png",
    ]


def test_page_and_assets_are_served(served):
    """``/`` is the page and its script and stylesheet come from ``/static`` (no external URLs),
    without a key; the API itself needs one."""
    import httpx

    page = httpx.get(served + "/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        r = httpx.get(served + asset, timeout=10)
        assert r.status_code == 200 and len(r.text) > 500
        assert "http://" not in r.text and "https://" not in r.text
    assert httpx.get(served + "/v1/collections", timeout=10).status_code == 401
    ok = httpx.get(served + "/v1/collections", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert sorted(c["name"] for c in ok.json()["collections"]) == ["bare", "notes"]
