"""schemathesis against the live server's OpenAPI schema: generated requests (bounded) to every
operation; no response may be a server error (5xx) or break the schema it documents."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("uvicorn")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from heron.collection import Collection  # noqa: E402

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def live_url(tmp_path_factory, encoder):
    from heron.server import create_app
    from heron.server.catalog import ServerLimits
    from heron.server.threaded import ThreadedServer

    root = tmp_path_factory.mktemp("schema")
    coll = Collection.create(root / "docs.heron", encoder=encoder)
    coll.add(["gzip compresses files", "cats sit on mats", "json parses text"], ids=["a", "b", "c"],
             metadata=[{"year": 2020}, {"year": 2021}, None])
    coll.close()
    app = create_app([root], limits=ServerLimits(max_k=50, max_documents=20, max_body_bytes=100_000),
                     encoders={encoder.name: encoder})
    with ThreadedServer(app) as srv:
        yield srv.url


def test_api_conforms(live_url):
    """Every operation, ``MAX_EXAMPLES`` generated cases each (positive and negative data)."""
    from hypothesis import given

    api = schemathesis.openapi.from_url(live_url + "/openapi.json")
    failures: list[str] = []
    ops = [r.ok() for r in api.get_all_operations()]
    assert len(ops) >= 15

    def check(op):
        @given(case=op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(checks=CHECKS)

        run()

    for op in ops:
        for attempt in range(2):
            try:
                check(op)
                break
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure
                # hypothesis' own "inconsistent replay" (its shrinker hit an internal error, seen
                # once as a SystemError in ast and a KeyError in its cache) is retried once; a
                # real server failure reproduces and is recorded
                if attempt == 0 and "Inconsistent results from replaying" in str(exc):
                    continue
                failures.append(f"{op.label}: {str(exc)[:800]}")
    assert not failures, "\n\n".join(failures)
    import re

    import httpx

    counts = re.findall(r'^heron_http_requests_total\{.*status="(\d+)"\} (\S+)$',
                        httpx.get(live_url + "/metrics").text, flags=re.M)
    served = sum(float(n) for _, n in counts)
    assert served >= 5 * len(ops), f"schemathesis sent only {served:g} requests"
    assert not [s for s, _ in counts if s.startswith("5")]
