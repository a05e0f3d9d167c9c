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
