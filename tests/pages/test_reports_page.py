"""AppTest of the Reports page: build a PDF and an HTML report with the chosen sections, save a definition."""

from __future__ import annotations

import pypdfium2 as pdfium

from tests.pages.conftest import open_app
from ui import report

PAGE = "app_pages/reports.py"


def test_build_pdf_and_html_reports(sim_env):
    at = open_app(PAGE)
    assert not at.exception
    assert at.title[0].value == "Reports"
    at.button(key="rep_build").click().run()
    assert not at.exception
    data, kind, source = at.session_state["rep_file"]
    assert kind == "pdf" and data[:5] == b"%PDF-" and len(pdfium.PdfDocument(data)) >= 2
    assert source.startswith(f"lake@{sim_env.version()}")

    at.multiselect(key="rep_sections").set_value(["tca"])
    at.radio(key="rep_format").set_value("html")
    at.button(key="rep_build").click().run()
    data, kind, _ = at.session_state["rep_file"]
    doc = data.decode()
    assert kind == "html" and "Transaction cost analysis" in doc and "Executive summary" not in doc


def test_save_and_load_a_definition(sim_env):
    at = open_app(PAGE)
    broker = at.multiselect(key="f_broker").options[0]
    at.multiselect(key="f_broker").select(broker).run()
    at.multiselect(key="rep_sections").set_value(["summary"])
    at.text_input(key="rep_name").input("Board pack").run()
    at.button(key="rep_save").click().run()
    assert not at.exception
    (d,) = [x for x in report.load_definitions(sim_env) if x.name == "Board pack"]
    assert d.sections == ("summary",) and d.broker == (broker,)

    at = open_app(PAGE)  # a new session: load it back
    at.selectbox(key="rep_saved").select("Board pack")
    at.button(key="rep_load").click().run()
    assert not at.exception
    assert at.multiselect(key="rep_sections").value == ["summary"]
    assert at.multiselect(key="f_broker").value == [broker]


def test_the_page_lists_a_definition_it_cannot_read(sim_env):
    folder = report.definitions_dir(sim_env)
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "zz-unreadable.json"
    bad.write_text('{"name": "Half written", "sections": [')
    try:
        at = open_app(PAGE)
        assert not at.exception
        assert any("zz-unreadable.json" in w.value for w in at.warning)
    finally:
        bad.unlink()
