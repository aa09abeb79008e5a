"""Harmless questions of XSTest's kinds: written apart from XSTest and from the held-out look-alikes,
so both stay measures of what training never saw."""

from alignment.data.breadth_benign import benign_cores
from alignment.data.files import read_prompts
from alignment.data.harmless_questions import KINDS, harmless_questions, main
from alignment.data.phrasing import all_templates
from tests.support.processes import SHARED
from tests.support.words import word_overlap


def _all() -> list[str]:
    return [p for prompts in harmless_questions().values() for p in prompts]


def test_every_kind_renders_every_template_with_every_filler():
    rendered = harmless_questions()
    assert set(rendered) == set(KINDS) and len(KINDS) == 10
    for kind, (templates, fillers) in KINDS.items():
        assert len(rendered[kind]) == len(templates) * len(fillers) >= 20
        assert not any("{" in p or "}" in p for p in rendered[kind])
    assert len(set(_all())) == len(_all())


def test_no_question_is_close_to_an_xstest_prompt():
    xstest = read_prompts(SHARED / "data" / "xstest" / "xstest_safe_prompts.csv")
    assert len(xstest) == 250
    closest = max((word_overlap(p, x), p, x) for p in _all() for x in xstest)
    assert closest[0] < 0.4, closest


def test_no_question_is_close_to_a_held_out_lookalike():
    # every template, trained and held out, so any rendering eval could pick is covered
    templates = all_templates(held_out=True) + all_templates(held_out=False)
    held_out = [
        t.format(core=c)
        for cores in benign_cores(held_out=True).values()
        for c in cores
        for t in templates
    ]
    closest = max((word_overlap(p, h), p, h) for p in _all() for h in held_out)
    assert closest[0] < 0.4, closest


def test_cli_writes_one_prompt_a_line(tmp_path):
    out = tmp_path / "questions.txt"
    main([str(out)])
    assert out.read_text(encoding="utf-8").splitlines() == _all()
