"""The Python standard library's documentation as a corpus.

Module, class and function docstrings are read from the standard library's source files with
:mod:`ast` (nothing is imported, so no module runs). Private names, tests and IDLE/turtle demos
are skipped. Each document's id is the dotted name (``gzip.GzipFile.readline``) and its text
is ``"<name>: <docstring>"``, the docstring cut to ``max_chars``.
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path

SKIP_PARTS = {
    "test",
    "tests",
    "idlelib",
    "turtledemo",
    "lib2to3",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "ensurepip",
    "pydoc_data",
    "encodings",
}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def iter_stdlib_docs(
    *, max_chars: int = 800, min_chars: int = 20
) -> Iterator[tuple[str, str, dict]]:
    """Yield ``(id, text, metadata)`` for public docstrings of the standard library."""
    root = stdlib_root()
    for path in sorted(root.rglob("*.py")):
        rel_parts = path.relative_to(root).parts
        if any(p in SKIP_PARTS for p in rel_parts) or any(
            p.startswith("_") and p != "__init__.py" for p in rel_parts
        ):
            continue
        module = _module_name(root, path)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        yield from _walk(tree, module, module, "module", max_chars, min_chars)


def _walk(
    node: ast.AST, name: str, module: str, kind: str, max_chars: int, min_chars: int
) -> Iterator[tuple[str, str, dict]]:
    doc = (
        ast.get_docstring(node, clean=True)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        else None
    )
    if doc and len(doc) >= min_chars:
        text = " ".join(doc.split())
        yield name, f"{name}: {text[:max_chars]}", {"module": module, "kind": kind}
    if isinstance(node, (ast.Module, ast.ClassDef)):
        for child in node.body:
            if isinstance(
                child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
            ) and not child.name.startswith("_"):
                ck = (
                    "class"
                    if isinstance(child, ast.ClassDef)
                    else ("method" if kind == "class" else "function")
                )
                yield from _walk(child, f"{name}.{child.name}", module, ck, max_chars, min_chars)


def stdlib_corpus(
    *, limit: int | None = None, max_chars: int = 800
) -> tuple[list[str], list[str], list[dict]]:
    """``(ids, texts, metadata)`` of the standard library docs (first ``limit`` if given; duplicates dropped)."""
    ids, texts, metas, seen = [], [], [], set()
    for i, t, m in iter_stdlib_docs(max_chars=max_chars):
        if i in seen:
            continue
        seen.add(i)
        ids.append(i)
        texts.append(t)
        metas.append(m)
        if limit is not None and len(ids) >= limit:
            break
    return ids, texts, metas
