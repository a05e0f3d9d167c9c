"""The app over a damaged lake (issue 15): a missing CURRENT is never taken for an empty lake (the first-run demo
used to rebuild over it, wiping the data), and a missing data file is one message naming it and the repair
command, not a DuckDB traceback."""

from __future__ import annotations

import shutil

from analytics.store import MANIFEST_DIR, Lake
from tests.pages.conftest import open_app


def _copy(small_lake, tmp_path, monkeypatch) -> Lake:
    root = tmp_path / "lake"
    shutil.copytree(small_lake.root, root)
    monkeypatch.setenv("ANALYTICS_LAKE", str(root))
    return Lake(root)


def _files(lake: Lake) -> dict[str, bytes]:
    return {str(p.relative_to(lake.root)): p.read_bytes() for p in (lake.root / "tables").rglob("*") if p.is_file()}


def test_missing_current_shows_the_repair_command_and_builds_no_demo(small_lake, tmp_path, monkeypatch):
    lake = _copy(small_lake, tmp_path, monkeypatch)
    (lake.root / MANIFEST_DIR / "CURRENT").unlink()
    before = _files(lake)
    at = open_app()
    assert not at.exception
    assert any("CURRENT" in e.value and "lake repair" in e.value for e in at.error)
    assert _files(lake) == before and sorted(p.name for p in (lake.root / MANIFEST_DIR).iterdir()) == ["v00000001.json"]


def test_a_missing_data_file_is_one_clear_message_on_the_pages(small_lake, tmp_path, monkeypatch):
    lake = _copy(small_lake, tmp_path, monkeypatch)
    (gone,) = [e.path for e in lake.manifest().entries("fills")]
    (lake.root / gone).unlink()
    for page in (None, "app_pages/tca.py", "app_pages/data.py"):
        at = open_app(page)
        assert not at.exception, page
        assert any(gone in e.value and "lake repair" in e.value for e in at.error), page
