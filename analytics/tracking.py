"""MLflow tracking and registry of the impact models under the lake, offline, plus honest walk-forward evaluation.

Store: sqlite at ``<lake>/mlflow/mlflow.db`` (tracking and registry), artifacts under ``<lake>/mlflow/artifacts``
(explicit ``artifact_location``); no server, no network (``MLFLOW_DISABLE_TELEMETRY`` is set before mlflow is
imported). Everything goes through one ``MlflowClient`` per call (no global active run), so a background retrain
in the app cannot collide with a page reading the runs.

Per training run: params (the fit's point estimates, ``model``, ``weights``, ``n``, ``dataset`` = NAME@VERSION),
metrics (holdout MAE/RMSE/bias in bps, 90% coverage, Spearman), the plots as PNG (Altair rendered with
vl-convert), and the model as ``model/fit.json`` (``ImpactFit.to_json``: parameters, intervals, bootstrap draws,
residual quantiles; JSON rather than a pickle so any version can read it). Registry: one registered model per
model kind (``impact-istar``, ``impact-almgren``); the ``champion`` alias points at the version the pre-trade
estimates use. A challenger becomes champion only if its holdout MAE beats the champion's on the same holdout by
``margin`` bps (:func:`promote_if_better`), which returns a ``ModelUpdateEvent`` (EVENTS.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow is imported anywhere

import numpy as np
import polars as pl

from analytics import impact_models as im
from analytics import registry

CODE_VERSION = "impact-models-2"  # bump when a fit's meaning changes (recorded in every run and event)
EXPERIMENT = "impact-models"
CHAMPION = "champion"
DEFAULT_MARGIN_BPS = 0.1  # a challenger must lower the holdout MAE by at least this much to be promoted
HOLDOUT_METRIC = "holdout_mae_bps"


# ---------------------------------------------------------------------------------------------------
# Honest evaluation (time-ordered splits, never random)
# ---------------------------------------------------------------------------------------------------
def walk_forward_splits(
    ts: pl.Series, n_splits: int = 4, min_train_frac: float = 0.5
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window splits over the distinct UTC days of ``ts`` (arrival timestamps): the first
    ``min_train_frac`` of the days train the first fold; the remaining days are cut into ``n_splits`` blocks, each
    tested on a model trained on every earlier day. Returns (train_mask, test_mask) boolean arrays. A day never
    sits on both sides, so intraday correlation cannot leak. Fewer than 2 days: no split."""
    days = ts.dt.date().to_numpy()
    uniq = np.unique(days)
    if len(uniq) < 2:
        return []
    first = max(1, round(len(uniq) * min_train_frac))
    blocks = [b for b in np.array_split(uniq[first:], min(n_splits, len(uniq) - first)) if len(b)]
    return [(days < b[0], (days >= b[0]) & (days <= b[-1])) for b in blocks]


def holdout_split(ts: pl.Series, test_frac: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(train_mask, test_mask): the last ``test_frac`` of the distinct days are the holdout (at least one day)."""
    days = ts.dt.date().to_numpy()
    uniq = np.unique(days)
    if len(uniq) < 2:
        raise ValueError("a time-ordered holdout needs at least 2 trading days")
    k = max(1, round(len(uniq) * test_frac))
    cut = uniq[-k]
    return days < cut, days >= cut


def evaluate(y, pred, lo=None, hi=None) -> dict:
    """Out-of-sample figures in bps: ``mae_bps``, ``rmse_bps``, ``bias_bps`` = mean(pred - y) (positive: the
    model over-estimates cost), ``coverage`` = share of y inside [lo, hi] (a 90% interval should give ~0.90),
    ``spearman`` = rank correlation of pred and y, ``n``."""
    from scipy.stats import spearmanr

    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    e = pred - y
    out = {
        "mae_bps": float(np.mean(np.abs(e))),
        "rmse_bps": float(np.sqrt(np.mean(e**2))),
        "bias_bps": float(np.mean(e)),
        # undefined for fewer than 3 orders or a constant prediction (the constant baseline)
        "spearman": float(spearmanr(pred, y).statistic)
        if len(y) > 2 and np.ptp(pred) > 0 and np.ptp(y) > 0
        else float("nan"),
        "n": len(y),
    }
    if lo is not None and hi is not None:
        out["coverage"] = float(np.mean((y >= np.asarray(lo)) & (y <= np.asarray(hi))))
    return out


def holdout_metrics(fit: im.ImpactFit, test: pl.DataFrame) -> dict:
    """:func:`evaluate` of ``fit`` on a :func:`analytics.impact_models.training_frame` slice, target
    ``impact_cost_bps``, interval = the 90% outcome band, plus ``mae_notional_bps`` (the filled-notional-weighted
    MAE: what the desk's cost in currency sees); keys prefixed ``holdout_``."""
    p = im.predict(fit, test)
    m = evaluate(test["impact_cost_bps"], p["expected_cost_bps"], p["outcome_lo_bps"], p["outcome_hi_bps"])
    w = test["filled_notional"].to_numpy()
    m["mae_notional_bps"] = float(
        np.sum(w * np.abs(p["expected_cost_bps"] - test["impact_cost_bps"]).to_numpy()) / w.sum()
    )
    return {f"holdout_{k}": v for k, v in m.items()}


def calibration_chart(y, pred, title: str = "Holdout: realised vs expected impact cost (bps)"):
    """Altair chart: mean realised cost per decile of expected cost, against the 45-degree line."""
    import altair as alt

    d = pl.DataFrame({"pred": np.asarray(pred, dtype=np.float64), "y": np.asarray(y, dtype=np.float64)})
    d = d.with_columns(pl.col("pred").rank("ordinal").truediv(pl.len()).mul(10).ceil().alias("decile"))
    g = (
        d.group_by("decile")
        .agg(pl.col("pred").mean().alias("expected_bps"), pl.col("y").mean().alias("realised_bps"), pl.len().alias("n"))
        .sort("decile")
    )
    lo = float(min(g["expected_bps"].min(), g["realised_bps"].min()))
    hi = float(max(g["expected_bps"].max(), g["realised_bps"].max()))
    line = (
        alt.Chart(pl.DataFrame({"x": [lo, hi], "y": [lo, hi]}))
        .mark_line(strokeDash=[4, 4], color="gray")
        .encode(x="x", y="y")
    )
    pts = alt.Chart(g).mark_circle(size=70).encode(
        x=alt.X("expected_bps:Q", title="expected (bps)"), y=alt.Y("realised_bps:Q", title="realised (bps)"),
        tooltip=["decile", "expected_bps", "realised_bps", "n"],
    )  # fmt: skip
    return (line + pts).properties(title=title, width=420, height=320)


# ---------------------------------------------------------------------------------------------------
# MLflow store
# ---------------------------------------------------------------------------------------------------
def mlflow_dir(lake) -> Path:
    return Path(lake.root) / "mlflow"


def tracking_uri(lake) -> str:
    """``sqlite:///<lake>/mlflow/mlflow.db`` (absolute path)."""
    return f"sqlite:///{(mlflow_dir(lake) / 'mlflow.db').resolve()}"


def client(lake):
    """An ``MlflowClient`` on the lake's sqlite store (created on first use)."""
    from mlflow import MlflowClient

    mlflow_dir(lake).mkdir(parents=True, exist_ok=True)
    (mlflow_dir(lake) / "artifacts").mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(lake)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(c, lake, name: str = EXPERIMENT) -> str:
    e = c.get_experiment_by_name(name)
    if e is not None:
        return e.experiment_id
    loc = (mlflow_dir(lake) / "artifacts" / name).resolve().as_uri()
    return c.create_experiment(name, artifact_location=loc)


def registered_name(model: str) -> str:
    return "cost-learned" if model == "learned" else f"impact-{model}"


def _log_run(
    lake,
    name: str,
    model: str,
    dataset_ref: str,
    params: dict[str, str],
    metrics: dict[str, float],
    model_json: str,
    model_file: str,
    plots: dict | None = None,
    register: bool = True,
    note: str | None = None,
) -> dict:
    """One MLflow run: tags (model, code version, dataset), ``params``, the finite ``metrics``, the model as
    ``model/<model_file>``, plots (name -> Altair chart or PNG bytes, saved as ``plots/<name>.png``); registered
    as a new version of ``name`` (tagged with its holdout metric). Returns {"run_id", "version",
    "experiment_id"}."""
    from mlflow.entities import Metric, Param, RunTag

    c = client(lake)
    exp = _experiment_id(c, lake)
    run = c.create_run(exp, run_name=f"{name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}",
                       tags={"model": model, "code_version": CODE_VERSION, "dataset": dataset_ref})  # fmt: skip
    rid = run.info.run_id
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    mets = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and np.isfinite(v)]
    tags = [RunTag("mlflow.note.content", note)] if note else []
    c.log_batch(rid, metrics=mets, params=[Param(k, v) for k, v in params.items()], tags=tags)
    c.log_text(rid, model_json, f"model/{model_file}")
    with tempfile.TemporaryDirectory() as tmp:
        for k, chart in (plots or {}).items():
            if isinstance(chart, bytes | bytearray):
                png = bytes(chart)
            else:
                import vl_convert as vlc

                png = vlc.vegalite_to_png(chart.to_json())
            p = Path(tmp) / f"{k}.png"
            p.write_bytes(png)
            c.log_artifact(rid, str(p), "plots")
    c.set_terminated(rid)
    version = None
    if register:
        try:
            c.get_registered_model(name)
        except Exception:
            c.create_registered_model(name)
        src = f"{run.info.artifact_uri}/model"
        mv = c.create_model_version(name, src, run_id=rid, tags={HOLDOUT_METRIC: str(metrics.get(HOLDOUT_METRIC))})
        version = str(mv.version)
    return {"run_id": rid, "version": version, "experiment_id": exp}


def log_fit(
    lake,
    name: str,
    result: im.ImpactFit,
    dataset_ref: str,
    metrics: dict[str, float],
    plots: dict | None = None,
    register: bool = True,
) -> dict:
    """Log one training run of an impact model: its point estimates and interval bounds as params, metrics
    (plus ``train_loss``), ``dataset`` = NAME@VERSION, plots, and the model as ``model/fit.json``; register it as
    a new version of ``name``. Returns {"run_id", "version", "experiment_id"}."""
    params = {k: repr(float(v)) for k, v in result.params.items()}
    params |= {f"{k}_lo": repr(v[0]) for k, v in result.intervals.items()}
    params |= {f"{k}_hi": repr(v[1]) for k, v in result.intervals.items()}
    params |= {"model": result.model, "weights": result.weights, "n": str(result.n), "dataset": dataset_ref,
               "source": result.source, "n_boot": str(len(result.draws))}  # fmt: skip
    if np.isfinite(result.loss):
        metrics = {**metrics, "train_loss": float(result.loss)}
    return _log_run(lake, name, result.model, dataset_ref, params, metrics, result.to_json(), "fit.json", plots,
                    register, note=f"{result.model} on {dataset_ref}")  # fmt: skip


def champion(lake, name: str):
    """The champion's ModelVersion of registered model ``name``, or None."""
    c = client(lake)
    try:
        return c.get_model_version_by_alias(name, CHAMPION)
    except Exception:
        return None


def load_fit(lake, run_id: str) -> im.ImpactFit:
    """The :class:`ImpactFit` logged by run ``run_id``."""
    with tempfile.TemporaryDirectory() as tmp:
        p = client(lake).download_artifacts(run_id, "model/fit.json", tmp)
        return im.ImpactFit.from_json(Path(p).read_text())


def _mirrored(lake, name: str) -> tuple[bool, str | None, str | None]:
    """(known, version, model JSON) of ``name``'s champion from the mirror (analytics.registry), without MLflow;
    ``known`` is False when the lake has an MLflow store but no mirror yet (then ask MLflow)."""
    index = registry.versions(lake)
    if index is None:
        return False, None, None
    entry = index.get(name)
    if entry is None:
        return True, None, None
    text = registry.model_text(lake, name)
    return (text is not None), entry["version"], text


def load_champion(lake, model: str = "istar") -> tuple[im.ImpactFit, str | None]:
    """(fit, version) of the champion of ``impact-<model>``; the published parameters and None if none yet.
    Read from the mirror when there is one (no MLflow import), else from the registry."""
    known, version, text = _mirrored(lake, registered_name(model))
    if known:
        if not text:
            return im.published(model), None
        return dataclasses.replace(im.ImpactFit.from_json(text), version=version), version
    mv = champion(lake, registered_name(model))
    if mv is None:
        return im.published(model), None
    return dataclasses.replace(load_fit(lake, mv.run_id), version=str(mv.version)), str(mv.version)


MODEL_ARTIFACTS = {"impact-istar": "model/fit.json", "impact-almgren": "model/fit.json",
                   "cost-learned": "model/cost_model.json"}  # fmt: skip


def sync_mirror(lake, c=None) -> dict:
    """Write every registered model's current champion (version, run, model JSON) to the mirror that cold pages
    read (analytics.registry); called after every promotion decision. Returns the index written."""
    c = c or client(lake)
    snap = {}
    for name, artifact in MODEL_ARTIFACTS.items():
        mv = champion(lake, name)
        if mv is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            p = c.download_artifacts(mv.run_id, artifact, tmp)
            snap[name] = (str(mv.version), mv.run_id, Path(p).read_text())
    registry.write(lake, snap)
    return registry.versions(lake)


def promote_if_better(
    lake,
    name: str,
    run_id: str,
    holdout_metric: float,
    margin: float = DEFAULT_MARGIN_BPS,
    champion_metric: float | None = None,
    metric: str = HOLDOUT_METRIC,
    published_metric: float | None = None,
) -> dict:
    """Promote run ``run_id``'s model version to ``champion`` of ``name`` iff ``holdout_metric`` (lower is
    better, bps) < the champion's - ``margin``. The champion's figure is ``champion_metric`` when given (the
    champion re-scored on the challenger's holdout: the fair comparison), else the one stored with its version.
    Without a champion the pages price with the published parameters, so they are the one to beat:
    ``published_metric`` (the published model on the same holdout) when given; with neither, the first version
    is promoted. Returns the ``ModelUpdateEvent`` (also logged as ``events/model_update.json`` on the run and
    as tags on the version)."""
    c = client(lake)
    versions = c.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")  # mlflow filter DSL, ids only
    if not versions:
        raise ValueError(f"run {run_id} has no version of {name}")
    ver = str(versions[0].version)
    cur = champion(lake, name)
    prev = str(cur.version) if cur is not None else None
    champ = champion_metric
    if cur is not None and champ is None:
        stored = (cur.tags or {}).get(metric)
        champ = float(stored) if stored not in (None, "None") else None
    against = "champion"
    if cur is None and published_metric is not None and np.isfinite(published_metric):
        champ, against = published_metric, "the published parameters"  # what the pages price with until then
    if cur is None and against == "champion":
        decision, reason = "promoted", "no champion yet"
    elif prev == ver:
        decision, reason = "unchanged", "already the champion"
    elif champ is None or not np.isfinite(champ):
        decision, reason = "promoted", "the champion has no holdout figure"
    elif holdout_metric < champ - margin:
        decision, reason = "promoted", f"{metric} {holdout_metric:.3f} < {against} {champ:.3f} - margin {margin:g}"
    else:
        decision, reason = (
            "rejected",
            f"{metric} {holdout_metric:.3f} does not beat {against} {champ:.3f} by {margin:g}",
        )
    if decision == "promoted":
        c.set_registered_model_alias(name, CHAMPION, ver)
    event = {
        "event_type": "ModelUpdateEvent",
        "model_name": name,
        "model_version": ver,
        "run_id": run_id,
        "previous_champion": prev,
        "champion": ver if decision == "promoted" else prev,
        "metrics": {"metric": metric, "challenger": holdout_metric, "champion": champ, "margin": margin},
        "decision": decision,
        "reason": reason,
        "ts": dt.datetime.now(dt.UTC).isoformat(),
        "code_version": CODE_VERSION,
    }
    c.set_model_version_tag(name, ver, "decision", decision)
    c.log_text(run_id, json.dumps(event, indent=1), "events/model_update.json")
    sync_mirror(lake, c)
    return event


def runs(lake, name: str | None = None) -> pl.DataFrame:
    """Every logged run (newest first): run_id, start, model, dataset, params and metrics as columns."""
    c = client(lake)
    e = c.get_experiment_by_name(EXPERIMENT)
    if e is None:
        return pl.DataFrame()
    rows = []
    for r in c.search_runs([e.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000):
        if name is not None and r.data.tags.get("model") != name.removeprefix("impact-"):
            continue
        rows.append({"run_id": r.info.run_id, "start": dt.datetime.fromtimestamp(r.info.start_time / 1000, dt.UTC),
                     "model": r.data.tags.get("model"), "dataset": r.data.params.get("dataset"), **r.data.metrics})  # fmt: skip
    return pl.DataFrame(rows) if rows else pl.DataFrame()


# ---------------------------------------------------------------------------------------------------
# One training run end to end (the CLI and the app's Retrain call this)
# ---------------------------------------------------------------------------------------------------
def _stored_orders(lake, start: dt.date | None, end: dt.date | None, step) -> pl.DataFrame:
    """The stored TCA order rows of ``start..end``, computing any missing day first."""
    from analytics import tca
    from analytics.filters import Filters

    step(0.0, "TCA")
    v = tca.ensure(lake, start, end)
    con = lake.connect(lake.manifest(v))  # the snapshot whose TCA was just ensured
    try:
        return tca.load_orders(lake, con, Filters(start=start, end=end), v)
    finally:
        con.close()


def dataset_ref(lake, dataset: str | None = None) -> str:
    """The dataset reference recorded with a run: ``dataset`` resolved to NAME@VERSION through
    ``analytics.datasets`` when that module is present (raises its DatasetError if unknown), else as given;
    without ``dataset``: ``tca@<lake version>`` (the stored TCA rows the impact models are fit on)."""
    if not dataset:
        return f"tca@{lake.version()}"
    try:
        from analytics import datasets
    except ImportError:
        return dataset
    m = datasets.manifest(lake, dataset)
    name, _ = datasets.parse_ref(dataset)
    return f"{name}@{m.get('version', dataset.partition('@')[2])}"


def train(
    lake,
    model: str = "istar",
    start: dt.date | None = None,
    end: dt.date | None = None,
    dataset: str | None = None,
    margin: float = DEFAULT_MARGIN_BPS,
    n_boot: int = 100,
    weights: str = "equal",
    seed: int = 0,
    progress=None,
) -> dict:
    """Ensure the TCA, fit ``model`` on all but the last 25% of days, score it and the current champion on that
    holdout (``impact_cost_bps``), log and register the run, promote per the margin rule. Returns a JSON-able
    dict: run_id, version, model, dataset, n_train, n_test, params, intervals, metrics, event."""

    if model == "learned":
        return train_learned(lake, start, end, dataset, margin, seed, progress)
    step = progress or (lambda frac, msg: None)
    ref = dataset_ref(lake, dataset)  # an unknown dataset fails before any work
    orders = _stored_orders(lake, start, end, step)
    tf = im.training_frame(orders)
    if tf.height < 50:
        raise ValueError(f"only {tf.height} usable orders: need at least 50 to fit")
    tr, te = holdout_split(tf["arrival_ts"])
    train_f, test_f = tf.filter(pl.Series(tr)), tf.filter(pl.Series(te))
    step(0.2, f"fitting {model} on {train_f.height} orders")
    fit = im.fit(train_f, model, n_boot=n_boot, weights=weights, seed=seed)
    step(0.7, "scoring the holdout")
    metrics = holdout_metrics(fit, test_f)
    name = registered_name(model)
    champ_fit, champ_ver = load_champion(lake, model)
    champ_metric = holdout_metrics(champ_fit, test_f)[HOLDOUT_METRIC] if champ_ver is not None else None
    metrics["published_holdout_mae_bps"] = holdout_metrics(im.published(model), test_f)[HOLDOUT_METRIC]
    pred = im.predict(fit, test_f)["expected_cost_bps"]
    plots = {"calibration": calibration_chart(test_f["impact_cost_bps"], pred)}
    step(0.85, "logging to MLflow")
    logged = log_fit(lake, name, fit, ref, metrics, plots)
    event = promote_if_better(lake, name, logged["run_id"], metrics[HOLDOUT_METRIC], margin, champ_metric,
                              published_metric=metrics["published_holdout_mae_bps"])  # fmt: skip
    step(1.0, f"{event['decision']}: {event['reason']}")
    return {
        "run_id": logged["run_id"], "version": logged["version"], "model": model, "registered_model": name,
        "dataset": ref, "n_train": train_f.height, "n_test": test_f.height, "weights": fit.weights, "params": fit.params,
        "intervals": {k: list(v) for k, v in fit.intervals.items()}, "metrics": metrics, "event": event,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# The learned cost model (analytics/cost_model.py): expected impact cost and its uncertainty, tracked the same way
# ---------------------------------------------------------------------------------------------------
COST_BUCKETS = 5  # "cost bucket accuracy": quintiles of the training orders' realised cost (the model's target)
LEARNED_TARGET = "impact_cost_bps"  # the learned model's target: the same impact cost the parametric models fit
BASELINES = ("constant", "sqrt_law", "istar", "istar_realised")


def bucket_accuracy(y_train, y, pred, k: int = COST_BUCKETS) -> float:
    """The seed's "model accuracy", defined: the share of holdout orders whose predicted cost falls in the same
    cost bucket as their realised cost, buckets = the ``k`` quantiles of the TRAINING orders' realised cost
    (so the buckets are fixed before the holdout is seen). Chance level is about 1/k."""
    edges = np.quantile(np.asarray(y_train, dtype=np.float64), np.linspace(0, 1, k + 1)[1:-1])
    return float(np.mean(np.digitize(np.asarray(pred), edges) == np.digitize(np.asarray(y), edges)))


def with_impact_cost(orders: pl.DataFrame) -> pl.DataFrame:
    """``orders`` (TCA rows) with :func:`analytics.impact_models.impact_cost_bps` (the learned model's target)."""
    return orders.with_columns(im.impact_cost_bps().alias(LEARNED_TARGET))


def _pretrade_pov(train: pl.DataFrame, frame: pl.DataFrame) -> np.ndarray:
    """The participation a pre-trade estimate assumes for each row of ``frame``: :func:`analytics.pretrade.planned_pov`
    over the TRAINING orders (the Pre-trade page's rule); never the order's own participation (an outcome)."""
    from analytics import pretrade

    return pretrade.planned_pov(train, frame.select("algo", "urgency")).to_numpy()


def _baseline_predictions(train: pl.DataFrame, test: pl.DataFrame, target: str) -> dict[str, dict]:
    """The baselines the learned model must beat, fitted on ``train`` only and predicted on ``test`` (target
    ``target``, bps): name -> {"pred", "lo", "hi"} (90% outcome interval, or None). constant = the training
    median (the best constant for MAE), interval = training 5% / 95% quantiles; sqrt_law = OLS on sigma_bps *
    sqrt(size / ADV) (:func:`analytics.impact.fit_sqrt_law`, pre-trade size), interval = its training residual
    quantiles; istar = I-Star refit (no bootstrap) on the training orders, predicted with pre-trade inputs (order
    size / ADV, the participation of :func:`_pretrade_pov`), interval = its outcome band; istar_realised = the
    same fit given each test order's executed size and realised participation (look-ahead: what the parametric
    model's own holdout uses, so a bound rather than a pre-trade estimate)."""
    from analytics import impact

    y = train[target].to_numpy()
    q05, q50, q95 = np.quantile(y, [0.05, 0.5, 0.95])
    out = {"constant": {"pred": np.full(test.height, q50), "lo": np.full(test.height, q05),
                        "hi": np.full(test.height, q95)}}  # fmt: skip
    law = impact.fit_sqrt_law(train, target)
    if law is not None:

        def x(d):
            return (
                d["daily_volatility"].fill_null(0.0) * 1e4 * d["size_pct_adv"].fill_null(0.0).clip(0).sqrt()
            ).to_numpy()

        r = y - (law.intercept + law.coefficient * x(train))
        lo, hi = np.nanquantile(r, [0.05, 0.95])
        p = law.intercept + law.coefficient * x(test)
        out["sqrt_law"] = {"pred": p, "lo": p + lo, "hi": p + hi}
    tf = im.training_frame(train)
    if tf.height >= 50:
        fit = im.fit(tf, "istar", n_boot=0)
        sigma = pl.col("daily_volatility").fill_null(pl.col("daily_volatility").median()).fill_null(0.02)
        planned = pl.Series("pov", _pretrade_pov(train, test))
        pre = test.select(
            pl.col("size_pct_adv").fill_null(0.0).clip(1e-8).alias("size_adv"), sigma.alias("sigma_daily"), planned
        )
        p = im.predict(fit, pre)
        out["istar"] = {"pred": p["expected_cost_bps"].to_numpy(), "lo": p["outcome_lo_bps"].to_numpy(),
                        "hi": p["outcome_hi_bps"].to_numpy()}  # fmt: skip
        post = test.select(
            (pl.col("filled_qty") / pl.col("adv")).fill_null(0.0).clip(1e-8).alias("exec_adv"),
            sigma.alias("sigma_daily"),
            pl.col("scheduled_participation").fill_null(planned).clip(im.POV_FLOOR, im.POV_MAX).alias("pov"),
        )
        p = im.predict(fit, post)
        out["istar_realised"] = {"pred": p["expected_cost_bps"].to_numpy(), "lo": p["outcome_lo_bps"].to_numpy(),
                                 "hi": p["outcome_hi_bps"].to_numpy()}  # fmt: skip
    return out


def learned_holdout(model, train: pl.DataFrame, test: pl.DataFrame, baselines: bool = True) -> dict:
    """Holdout figures of a fitted cost model on ``test`` (target: the model's, ``impact_cost_bps`` by default;
    added from the TCA columns when missing): :func:`evaluate` as ``holdout_*``, the seed's accuracy gates made
    explicit (``holdout_coverage``: the 90% interval's hit rate, the "prediction accuracy"; and
    ``holdout_bucket_accuracy``), and with ``baselines`` the same figures for every baseline of
    :func:`_baseline_predictions` on the same orders and target as ``baseline_<name>_<figure>`` (``mae_bps``,
    ``rmse_bps``, ``bias_bps``, ``coverage``, ``spearman``, ``bucket_accuracy``)."""
    from analytics import cost_model

    target = model.cfg.target
    if target not in test.columns:
        train, test = with_impact_cost(train), with_impact_cost(test)
    test = test.filter(pl.col(target).is_not_null() & pl.col(target).is_finite())
    train = train.filter(pl.col(target).is_not_null() & pl.col(target).is_finite())
    y, y_tr = test[target].to_numpy(), train[target].to_numpy()
    p = cost_model.predict(model, test)
    out = {
        f"holdout_{k}": v for k, v in evaluate(y, p["expected_cost_bps"], p["cost_lo_bps"], p["cost_hi_bps"]).items()
    }
    out["holdout_bucket_accuracy"] = bucket_accuracy(y_tr, y, p["expected_cost_bps"])
    if not baselines:
        return out
    for name, b in _baseline_predictions(train, test, target).items():
        m = evaluate(y, b["pred"], b["lo"], b["hi"])
        m["bucket_accuracy"] = bucket_accuracy(y_tr, y, b["pred"])
        out |= {f"baseline_{name}_{k}": v for k, v in m.items() if k != "n"}
    return out


def comparison(metrics: dict) -> dict[str, dict[str, float]]:
    """The learned model and its baselines side by side from :func:`learned_holdout`'s flat figures:
    {"learned": {"mae_bps": ..., ...}, "constant": {...}, ...}."""
    keys = ("mae_bps", "rmse_bps", "bias_bps", "coverage", "spearman", "bucket_accuracy")
    rows = {"learned": {k: metrics.get(f"holdout_{k}") for k in keys}}
    for name in BASELINES:
        if f"baseline_{name}_mae_bps" in metrics:
            rows[name] = {k: metrics.get(f"baseline_{name}_{k}") for k in keys}
    return rows


def train_learned(
    lake,
    start: dt.date | None = None,
    end: dt.date | None = None,
    dataset: str | None = None,
    margin: float = DEFAULT_MARGIN_BPS,
    seed: int = 0,
    progress=None,
) -> dict:
    """Fit the learned cost model (target ``impact_cost_bps``) on all but the last 25% of days, score it, its
    baselines and the current champion on that holdout, log it (params, metrics, ``model/cost_model.json``,
    calibration plot), register it as ``cost-learned`` and promote it per the margin rule. Same return shape as
    :func:`train`, plus ``target`` and ``comparison`` (learned and baselines side by side). A champion fitted
    on another target (total IS, before this change) cannot be scored on this one: the challenger replaces it."""
    from analytics import cost_model

    step = progress or (lambda frac, msg: None)
    ref = dataset_ref(lake, dataset)
    orders = with_impact_cost(_stored_orders(lake, start, end, step)).filter(
        pl.col(LEARNED_TARGET).is_not_null() & pl.col(LEARNED_TARGET).is_finite()
    )
    if orders.height < 50:
        raise ValueError(f"only {orders.height} usable orders: need at least 50 to fit")
    tr, te = holdout_split(orders["arrival_ts"])
    train_f, test_f = orders.filter(pl.Series(tr)), orders.filter(pl.Series(te))
    cfg = cost_model.CostModelConfig(seed=seed, target=LEARNED_TARGET)
    step(0.2, f"fitting the learned cost model on {train_f.height} orders")
    model = cost_model.fit(train_f, cfg)
    step(0.6, "scoring the holdout and the baselines")
    metrics = learned_holdout(model, train_f, test_f)
    name = registered_name("learned")
    champ_model, _ = load_learned_champion(lake)
    champ_metric = None
    if champ_model is not None:
        champ_metric = (
            learned_holdout(champ_model, train_f, test_f, baselines=False)[HOLDOUT_METRIC]
            if champ_model.cfg.target == cfg.target
            else float("nan")  # another target: no comparable figure, promote_if_better promotes
        )
    pred = cost_model.predict(model, test_f)["expected_cost_bps"]
    chart = calibration_chart(test_f[LEARNED_TARGET], pred, "Holdout: realised vs expected impact cost (bps)")
    step(0.85, "logging to MLflow")
    params = {k: str(v) for k, v in asdict(cfg).items()} | {
        "model": "learned",
        "dataset": ref,
        "n": str(train_f.height),
    }
    logged = _log_run(lake, name, "learned", ref, params, metrics, model.to_json(), "cost_model.json",
                      {"calibration": chart})  # fmt: skip
    rid = logged["run_id"]
    event = promote_if_better(lake, name, rid, metrics[HOLDOUT_METRIC], margin, champ_metric)
    step(1.0, f"{event['decision']}: {event['reason']}")
    return {
        "run_id": rid, "version": logged["version"], "model": "learned", "registered_model": name, "dataset": ref,
        "n_train": train_f.height, "n_test": test_f.height,
        "params": {k: v for k, v in asdict(cfg).items() if isinstance(v, int | float)},
        "intervals": {}, "metrics": metrics, "event": event, "target": cfg.target, "comparison": comparison(metrics),
    }  # fmt: skip


def load_learned_champion(lake):
    """(CostModel, version) of the ``cost-learned`` champion, or (None, None) before the first training."""
    from analytics import cost_model

    known, version, text = _mirrored(lake, registered_name("learned"))
    if known:
        return (cost_model.CostModel.from_json(text), version) if text else (None, None)
    mv = champion(lake, registered_name("learned"))
    if mv is None:
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        p = client(lake).download_artifacts(mv.run_id, "model/cost_model.json", tmp)
        return cost_model.CostModel.from_json(Path(p).read_text()), str(mv.version)


# ---------------------------------------------------------------------------------------------------
# Drift: realised vs expected cost over time (PredictiveAnalyticsEvent), and when to retrain
# ---------------------------------------------------------------------------------------------------
DRIFT_THRESHOLD_BPS = 2.0  # a period's mean error beyond this, with its 95% interval excluding 0, asks for a retrain


def drift(
    rows: pl.DataFrame,
    model_name: str,
    model_version: str | None,
    every: str = "1w",
    threshold_bps: float = DRIFT_THRESHOLD_BPS,
) -> pl.DataFrame:
    """``PredictiveAnalyticsEvent`` rows, one per period (``every``: a Polars duration, e.g. 1d, 1w, 1mo) of the
    orders' arrival, judged OUT OF SAMPLE only: ``rows`` are :func:`analytics.expectation.per_order` rows and
    only those with ``out_of_sample`` (arrived after the model's training data) count; a model is never judged
    on the orders it was fitted to. The figures are expectation.py's one definition: ``gap_bps`` = realised -
    expected, filled-notional weighted (positive = the orders cost more than the model expected), its 95%
    interval ``gap_lo_bps``/``gap_hi_bps``, ``n``, ``mae_bps`` (equal-weighted mean |realised - expected|);
    ``bias_bps`` (with ``bias_lo_bps``/``bias_hi_bps``) is the former column, kept: -gap_bps (expected -
    realised, + = the model over-estimates the cost), now weighted as the gap. ``retrain`` = the gap's interval
    excludes 0 and |gap| > ``threshold_bps`` (a drift both real and large enough to matter)."""
    from analytics import expectation as ex

    oos = rows.filter(pl.col("out_of_sample")) if "out_of_sample" in rows.columns else rows
    g = ex.gap_over_time(oos, every).join(
        oos.sort("arrival_ts")
        .group_by_dynamic("arrival_ts", every=every)
        .agg(pl.col("gap_bps").abs().mean().alias("mae_bps"))
        .rename({"arrival_ts": "period_start"}),
        on="period_start",
        how="left",
    )
    real = (pl.col("gap_lo_bps") > 0) | (pl.col("gap_hi_bps") < 0)
    return g.select(
        pl.lit("PredictiveAnalyticsEvent").alias("event_type"),
        pl.lit(model_name).alias("model_name"),
        pl.lit(model_version or "published").alias("model_version"),
        "period_start",
        "n",
        "mae_bps",
        "realised_bps",
        "expected_bps",
        "gap_bps",
        "gap_lo_bps",
        "gap_hi_bps",
        (-pl.col("gap_bps")).alias("bias_bps"),
        (-pl.col("gap_hi_bps")).alias("bias_lo_bps"),
        (-pl.col("gap_lo_bps")).alias("bias_hi_bps"),
        (real & (pl.col("gap_bps").abs() > threshold_bps)).fill_null(False).alias("retrain"),
        pl.lit(CODE_VERSION).alias("code_version"),
    )
