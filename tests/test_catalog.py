"""catalog: the sidebar's filter options, kept per lake version."""

from __future__ import annotations

import datetime as dt

from analytics import catalog
from analytics.ingest import ingest


def test_filter_options_are_kept_per_version_and_follow_a_new_ingest(lake, files, ev):
    ingest(
        [files.jsonl("a.jsonl", [ev.order(order_id="A1", broker="Alder"), ev.fill(order_id="A1", venue="XNAS")])], lake
    )
    v1 = lake.version()
    first = catalog.filter_options(lake.connect(), lake, v1)
    assert first["broker"] == ["Alder"] and first["venue"] == ["XNAS"]
    assert isinstance(first["start"], dt.date)
    assert first == catalog.filter_options(lake.connect())  # the kept answer is the computed one
    assert (lake.derived_dir("filter_options", v1) / "options.json").exists()
    assert catalog.filter_options(lake.connect(), lake, v1) == first  # read back, same types

    ingest([files.jsonl("b.jsonl", [ev.order(event_id="o2", order_id="B1", broker="Birchwood")])], lake)
    v2 = lake.version()
    assert v2 > v1
    assert catalog.filter_options(lake.connect(), lake, v2)["broker"] == ["Alder", "Birchwood"]
    assert catalog.filter_options(lake.connect(), lake, v1)["broker"] == ["Alder"]  # old version unchanged
