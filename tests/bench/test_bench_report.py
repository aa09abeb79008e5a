"""`proxy_bench.py --write-docs` rewrites only the marked latest-run section of
docs/benchmarks.md: the prose around it lives in the document, not in the script."""

from __future__ import annotations

import argparse

import pytest

from bench.proxy_bench_report import BEGIN, END, replace_section, write_docs
from tests.support.processes import ROOT


def test_the_doc_has_one_section_and_keeps_its_prose(tmp_path):
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    assert doc.count(BEGIN) == 1 and doc.count(END) == 1
    path = tmp_path / "benchmarks.md"
    path.write_text(doc)
    write_docs(path, "| new | table |", argparse.Namespace(), ["--write-docs"])
    new = path.read_text()
    assert new.split(BEGIN)[0] == doc.split(BEGIN)[0]
    assert new.split(END)[1] == doc.split(END)[1]
    inner = new.split(BEGIN)[1].split(END)[0]
    assert "bench/proxy_bench.py --write-docs" in inner and "| new | table |" in inner


def test_a_doc_without_markers_is_not_overwritten():
    with pytest.raises(ValueError, match="latest-run"):
        replace_section("# prose only\n", "table")
