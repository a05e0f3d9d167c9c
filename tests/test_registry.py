"""The champions' mirror: what the cold pages read instead of importing MLflow."""

from __future__ import annotations

from analytics import registry
from analytics.store import Lake


def test_untrained_lake_has_no_champion_and_an_mlflow_store_without_mirror_says_ask_mlflow(tmp_path):
    lake = Lake(tmp_path / "lake")
    assert registry.versions(lake) == {}
    (tmp_path / "lake" / "mlflow").mkdir(parents=True)
    (tmp_path / "lake" / "mlflow" / "mlflow.db").write_bytes(b"")
    assert registry.versions(lake) is None


def test_write_replaces_the_whole_snapshot(tmp_path):
    lake = Lake(tmp_path / "lake")
    registry.write(lake, {"impact-istar": ("1", "run-a", '{"a": 1}'), "cost-learned": ("1", "run-b", '{"b": 2}')})
    registry.write(lake, {"impact-istar": ("2", "run-c", '{"a": 3}')})
    assert registry.versions(lake) == {"impact-istar": {"version": "2", "run_id": "run-c"}}
    assert registry.model_text(lake, "impact-istar") == '{"a": 3}'
    assert registry.model_text(lake, "impact-almgren") is None


def test_every_champion_change_is_recorded_and_named(tmp_path):
    """Issue 16: a retrain that changes the champion moves the figures; the mirror records when (the Overview
    says so). Rewriting the same champion records nothing."""
    lake = Lake(tmp_path / "lake")
    assert registry.history(lake) == [] and registry.champion_note(lake, "impact-istar") is None
    registry.write(lake, {"impact-istar": ("1", "run-a", "{}")})
    registry.write(lake, {"impact-istar": ("1", "run-a", "{}"), "cost-learned": ("1", "run-b", "{}")})
    registry.write(lake, {"impact-istar": ("2", "run-c", "{}"), "cost-learned": ("1", "run-b", "{}")})
    h = registry.history(lake)
    assert [(r["name"], r["version"], r["previous"]) for r in h] == [
        ("impact-istar", "1", None), ("cost-learned", "1", None), ("impact-istar", "2", "1")]  # fmt: skip
    note = registry.champion_note(lake, "impact-istar")
    assert note.startswith("Champion v2 since ") and note.endswith("UTC (replaced v1).")
    assert "published parameters" in registry.champion_note(lake, "cost-learned")
