"""The project's docs point at things that exist: their links resolve inside the
repository, and every test they cite as showing a behaviour is there under that name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
CITED_TEST = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in PAGES
        for target in LINK.findall(page.read_text())
        if "://" not in target
        and not target.startswith("mailto:")
        and not (page.parent / target).exists()
    ]
    assert not broken, broken


def test_every_test_the_docs_cite_exists() -> None:
    missing = []
    for page in PAGES:
        for path, name in CITED_TEST.findall(page.read_text()):
            source = ROOT / path
            if not source.exists() or not re.search(
                rf"^(async )?def {name}\(", source.read_text(), re.MULTILINE
            ):
                missing.append(f"{page.relative_to(ROOT)}: {path}::{name}")
    assert not missing, missing
