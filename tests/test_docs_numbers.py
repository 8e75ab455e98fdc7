"""Numbers in README.md, docs/ and RESULTS.md come from benchmarks/results/ and cannot go stale.

``tools/docs_numbers.py --check`` must find every marked number equal to its results file and
every results file made by today's code (btseg.provenance); planted differences, stale code
and acknowledged staleness are each checked on a private results folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from btseg.provenance import code_hash, stale, stamp
from script_util import load_script

ROOT = Path(__file__).resolve().parent.parent
docs_numbers = load_script("tools/docs_numbers.py")


def test_the_repository_docs_match_their_results_files():
    assert docs_numbers.run(check=True) == []


@pytest.fixture()
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(docs_numbers, "RESULTS", tmp_path)
    doc = {"provenance": stamp("python make_it.py", ["btseg/metrics.py"]), "a": {"dice": 0.91234, "fl": [3, 40]}}
    (tmp_path / "r.json").write_text(json.dumps(doc))
    return tmp_path


def _check(text: str) -> tuple[str, list[str]]:
    problems: list[str] = []
    return docs_numbers.render(text, "doc.md", {}, problems), problems


def test_a_marked_number_is_rendered_from_its_file(results):
    text = "Dice <!-- n:r.json:a.dice:.3f -->0.800<!-- /n --> and <!-- n:r.json:a.fl:kofn -->x<!-- /n -->"
    new, problems = _check(text)
    assert problems == []
    assert "-->0.912<!-- /n -->" in new and "-->3 of 40<!-- /n -->" in new
    assert _check(new) == (new, [])  # idempotent


def test_unknown_keys_and_files_are_named(results):
    _, problems = _check("<!-- n:r.json:a.nosuch:.3f -->1<!-- /n --> <!-- n:none.json:a:.3f -->1<!-- /n -->")
    assert any("a.nosuch" in p for p in problems) and any("none.json" in p for p in problems)


def test_results_made_by_other_code_are_refused_until_remeasured_or_marked(results):
    doc = json.loads((results / "r.json").read_text())
    doc["provenance"]["code_hash"] = "0" * 64  # as if btseg/metrics.py changed since
    (results / "r.json").write_text(json.dumps(doc))
    _, problems = _check("<!-- n:r.json:a.dice:.2f -->0.91<!-- /n -->")
    assert len(problems) == 1 and "stale" in problems[0] and "python make_it.py" in problems[0]
    # marking it stale for today's code is accepted, and the docs say so
    doc["stale"] = {"why": "metrics changed", "code_hash": code_hash(["btseg/metrics.py"])}
    (results / "r.json").write_text(json.dumps(doc))
    new, problems = _check("<!-- n:r.json:a.dice:.2f -->0.91<!-- /n -->")
    assert problems == [] and "0.91 (stale)" in new


def test_no_provenance_is_stale_and_code_hash_ignores_docs_and_comments(tmp_path):
    assert "no provenance" in stale(None)
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text('"""doc"""\nx = 1  # one\n')
    b.write_text('"""other doc"""\n\nx = 1\n')
    assert code_hash(["a.py"], tmp_path) != code_hash(["b.py"], tmp_path)  # the path is part of the hash
    b.rename(tmp_path / "c")
    (tmp_path / "a.py").write_text('"""other doc"""\n\nx = 1\n')
    h1 = code_hash(["a.py"], tmp_path)
    (tmp_path / "a.py").write_text('x = 2\n')
    assert code_hash(["a.py"], tmp_path) != h1
    (tmp_path / "a.py").write_text("x = 1  # comment only\n")
    assert code_hash(["a.py"], tmp_path) == h1


def test_check_names_the_number_that_differs(results, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Dice <!-- n:r.json:a.dice:.3f -->0.800<!-- /n -->\n")
    problems = docs_numbers.run(check=True, docs=["doc.md"], root=tmp_path)
    assert problems == ["doc.md: r.json:a.dice: docs say '0.800', results say '0.912'"]
    assert doc.read_text() == "Dice <!-- n:r.json:a.dice:.3f -->0.800<!-- /n -->\n"  # --check changes nothing
