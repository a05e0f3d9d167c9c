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
    assert catalog._options_path(lake, v1).exists()
    assert catalog.filter_options(lake.connect(), lake, v1) == first  # read back, same types

    ingest([files.jsonl("b.jsonl", [ev.order(event_id="o2", order_id="B1", broker="Birchwood")])], lake)
    v2 = lake.version()
    assert v2 > v1
    assert catalog.filter_options(lake.connect(), lake, v2)["broker"] == ["Alder", "Birchwood"]
    assert catalog.filter_options(lake.connect(), lake, v1)["broker"] == ["Alder"]  # old version unchanged
    lake.repair(to=v1)  # a rollback to v1's files finds v1's options (keyed by those files, not by a number)
    v3 = lake.version()
    assert v3 == v2 + 1 and catalog._options_path(lake, v3) == catalog._options_path(lake, v1)
    assert catalog.kept_options(lake, v3)["broker"] == ["Alder"]
