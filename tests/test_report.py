"""Reports: the HTML is self-contained and holds every chosen section; the PDF is valid, has its pages and
renders; the CLI writes both; saved definitions never let a name choose a path."""

from __future__ import annotations

import json
import re

import pypdfium2 as pdfium
import pytest

from analytics import tca
from analytics.__main__ import main
from analytics.filters import Filters
from ui import report


def test_month_span():
    assert [str(d) for d in report.month_span("2026-02")] == ["2026-02-01", "2026-02-28"]
    assert [str(d) for d in report.month_span("2024-12")] == ["2024-12-01", "2024-12-31"]
    with pytest.raises(ValueError):
        report.month_span("2026-2")


def test_html_report_is_self_contained_and_has_every_section(sim_lake):
    rep = report.build(sim_lake, Filters(), tuple(report.SECTIONS))
    doc = report.to_html(rep)
    assert [s.key for s in rep.sections] == ["summary", "tca", "quality", "attribution", "models"]
    for title in report.SECTIONS.values():
        assert f"<h2>{title}</h2>" in doc
    # no script, no external resource: every URL in the file is an XML namespace of the inline SVGs
    assert "<script" not in doc
    urls = set(re.findall(r"(?:src|href)\s*=\s*[\"']([^\"']+)", doc))
    assert not urls, urls
    assert doc.count("<svg") >= 3
    # the headline equals tca.summary of the same rows (one source of truth)
    head = tca.summary(tca.load_orders(sim_lake, sim_lake.connect(), Filters()))
    assert f"{head['orders']:,} orders" in doc
    assert "Rule 605-style report" in doc and "Impact model champions" in doc


def test_pdf_report_is_valid_and_renders(sim_lake, tmp_path):
    rep = report.build(sim_lake, Filters(), ("summary", "tca"))
    data = report.to_pdf(rep)
    assert data[:5] == b"%PDF-"
    pdf = pdfium.PdfDocument(data)
    assert len(pdf) >= 2
    img = pdf[0].render(scale=1).to_pil().convert("L")
    dark = sum(img.histogram()[:128])
    assert dark > 1000  # text and a chart on page 1, not a blank page
    text = pdf[0].get_textpage().get_text_range()
    assert "Executive summary" in text and "Implementation shortfall" in text


def test_cli_writes_html_and_pdf(sim_lake, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert (
        main(["report", "--lake", str(sim_lake.root), "--format", "html", "--out", str(out), "--sections", "tca"]) == 0
    )
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["sections"] == ["tca"] and out.exists()
    assert "Transaction cost analysis" in out.read_text() and "Executive summary" not in out.read_text()
    assert main(["report", "--lake", str(sim_lake.root), "--format", "pdf", "--out", str(tmp_path / "r.pdf")]) == 0
    assert (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
    assert main(["report", "--lake", str(sim_lake.root), "--format", "pdf", "--out", str(tmp_path / "x.pdf"),
                 "--sections", "nonsense"]) == 2  # fmt: skip


def test_definitions_are_saved_under_a_slug_never_a_user_path(tmp_path):
    class L:
        root = tmp_path / "lake"

    d = report.Definition(name="../../etc/Monthly board pack!", sections=("tca",), start="2026-03-01", end="2026-03-31")
    path = report.save_definition(L, d)
    assert path.parent == report.definitions_dir(L)
    assert path.name == "etc-monthly-board-pack.json"
    (back,) = report.load_definitions(L)
    assert back == d
    assert back.filters().start.isoformat() == "2026-03-01"
    with pytest.raises(ValueError):
        report.save_definition(L, report.Definition(name="../.."))
