"""Reference TCA in plain pandas, for benchmarks/tca.py: the straightforward implementation a user would write.

Reads the lake's Parquet files (the files of the current manifest) with pyarrow, then per parent order:

- ``arrival_price``: NBBO mid prevailing at the order's NEW (last quote with ts <= arrival, same UTC day); an
  order arriving before the day's first quote takes the first quote after it (as analytics.tca does).
- ``interval_vwap``: market trades of the arrival's day with arrival < ts <= end, end = first CANCEL/DONE,
  else last fill, else arrival: a per-(symbol, day) cumulative sum of price x size and of size, probed by
  ``merge_asof`` at both ends and differenced.
- ``markout_cost_bps_<h>``: per fill s (p - mid at t + h) / p * 1e4 with the mid prevailing at t + h on the
  fill's UTC day (a horizon past the day's last quote takes that last quote), quantity-weighted per order
  over the fills that have a mark.
- ``arrival_cost_bps`` = s (avg_fill - arrival) / arrival * 1e4, s = +1 BUY, -1 SELL.

Every mid is found by ONE ``merge_asof`` of all probes (each fill at t + h for every horizon, each order's
arrival) against the quotes sorted by time, ``by`` an integer (symbol, day) key.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from analytics.conventions import BPS, MARKOUT_HORIZONS_S, horizon_label
from analytics.store import Lake

US_PER_DAY = 86_400_000_000
KEY_SHIFT = 1 << 20  # key = day * KEY_SHIFT + symbol code (fewer than a million symbols)


def _read(files: list[Path], columns: list[str], symbols: Sequence[str] | None) -> pd.DataFrame:
    filters = [("symbol", "in", list(symbols))] if symbols is not None else None
    dictionary = ["symbol"] if "symbol" in columns else None  # read symbols as a pandas categorical
    tbl = pq.read_table([str(f) for f in files], columns=columns, filters=filters, read_dictionary=dictionary)
    df = tbl.to_pandas()
    if "ts" in df:
        df["ts"] = df["ts"].dt.as_unit("us").astype("int64")  # microseconds since the epoch, UTC
    return df


def load(lake_root: str | Path, symbols: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """The tables TCA needs, optionally only the given symbols' rows."""
    lake = Lake(lake_root)
    m = lake.manifest()
    return {
        "quotes": _read(lake.files("quotes", manifest=m), ["symbol", "ts", "bid", "ask"], symbols),
        "trades": _read(lake.files("trades", manifest=m), ["symbol", "ts", "price", "size"], symbols),
        "orders": _read(lake.files("orders", manifest=m), ["order_id", "ts", "action", "symbol", "side"], None),
        "fills": _read(lake.files("fills", manifest=m), ["order_id", "ts", "symbol", "quantity", "price"], symbols),
    }


def _key(df: pd.DataFrame, universe: pd.Index, ts_col: str = "ts") -> np.ndarray:
    """Integer (symbol, UTC day) key from the categorical ``symbol``; symbols outside ``universe`` get code -1
    (they match no quote)."""
    sym = df["symbol"].astype("category")
    lut = np.append(universe.get_indexer(sym.cat.categories), -1)  # code -1 (null) -> -1
    return (df[ts_col].to_numpy() // US_PER_DAY) * KEY_SHIFT + lut[sym.cat.codes.to_numpy()]


def compute(
    t: dict[str, pd.DataFrame], horizons: Sequence[float] = MARKOUT_HORIZONS_S, symbols: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per parent order (of ``symbols`` if given): order_id, arrival_price, interval_vwap,
    arrival_cost_bps, markout_cost_bps_<h>."""
    quotes, trades, orders, fills = t["quotes"], t["trades"], t["orders"], t["fills"]
    universe = pd.Index(quotes["symbol"].astype("category").cat.categories)

    # Orders: arrival (NEW), end (first CANCEL/DONE, else last fill, else arrival).
    new = orders.loc[orders["action"] == "NEW", ["order_id", "ts", "symbol", "side"]]
    if symbols is not None:
        new = new[new["symbol"].isin(list(symbols))]
    o = new.rename(columns={"ts": "arrival"}).reset_index(drop=True)
    o["s"] = np.where(o["side"] == "BUY", 1.0, -1.0)
    term = orders[orders["action"].isin(["CANCEL", "DONE"])].groupby("order_id")["ts"].min().rename("term")
    f = fills.merge(o[["order_id", "s"]], on="order_id", how="inner")
    last_fill = f.groupby("order_id")["ts"].max().rename("last_fill")
    o = o.join(term, on="order_id").join(last_fill, on="order_id")
    o["end"] = o["term"].fillna(o["last_fill"]).fillna(o["arrival"]).astype("int64")

    # Quotes sorted by time with their (symbol, day) key.
    q = pd.DataFrame({"ts": quotes["ts"], "key": _key(quotes, universe), "mid": (quotes["bid"] + quotes["ask"]) / 2})
    q = q.sort_values("ts", kind="stable", ignore_index=True)

    # All probes in one frame: fills at t + h (k = horizon index), order arrivals (k = -1).
    f["fkey"] = _key(f, universe)
    f["row"] = np.arange(len(f))
    probes = [
        pd.DataFrame({"pts": f["ts"] + round(h * 1e6), "key": f["fkey"], "id": f["row"], "k": i})
        for i, h in enumerate(horizons)
    ]
    probes.append(pd.DataFrame({"pts": o["arrival"], "key": _key(o, universe, "arrival"), "id": o.index, "k": -1}))
    p = pd.concat(probes, ignore_index=True).sort_values("pts", kind="stable")
    p = pd.merge_asof(p, q, left_on="pts", right_on="ts", by="key", direction="backward")

    # Arrival: the prevailing mid, else the first quote of the day after arrival.
    arr = p[p["k"] == -1].set_index("id")["mid"].sort_index()
    o["arrival_price"] = arr.reindex(o.index).to_numpy()
    miss = o["arrival_price"].isna()
    if miss.any():
        pm = pd.DataFrame(
            {"pts": o.loc[miss, "arrival"], "key": _key(o[miss], universe, "arrival"), "id": o.index[miss]}
        )
        pm = pd.merge_asof(pm.sort_values("pts"), q, left_on="pts", right_on="ts", by="key", direction="forward")
        o.loc[pm["id"].to_numpy(), "arrival_price"] = pm["mid"].to_numpy()

    # Markouts per (fill, horizon), then quantity-weighted per order over the fills that have a mark.
    fm = p[(p["k"] >= 0) & p["mid"].notna()]
    fid = fm["id"].to_numpy()
    price, qty = f["price"].to_numpy()[fid], f["quantity"].to_numpy()[fid].astype("float64")
    mo = f["s"].to_numpy()[fid] * (price - fm["mid"].to_numpy()) / price * BPS
    w = pd.DataFrame({"order_id": f["order_id"].to_numpy()[fid], "k": fm["k"].to_numpy(), "wm": qty * mo, "wq": qty})
    w = w.groupby(["order_id", "k"])[["wm", "wq"]].sum()
    mk = (w["wm"] / w["wq"].replace(0, np.nan)).unstack("k").reindex(columns=range(len(horizons)))
    mk.columns = [f"markout_cost_bps_{horizon_label(h)}" for h in horizons]
    f["pq"] = f["price"] * f["quantity"]
    fa = f.groupby("order_id").agg(q=("quantity", "sum"), pq=("pq", "sum")).join(mk)
    o = o.join(fa, on="order_id")
    o["avg_fill_price"] = o["pq"] / o["q"]
    o["arrival_cost_bps"] = o["s"] * (o["avg_fill_price"] - o["arrival_price"]) / o["arrival_price"] * BPS

    # Interval VWAP: cumulative sums per (symbol, day), probed at arrival (ts <= arrival) and end (ts <= end).
    tr = pd.DataFrame({"ts": trades["ts"], "key": _key(trades, universe), "pv": trades["price"] * trades["size"]})
    tr["v"] = trades["size"].astype("float64")
    tr = tr.sort_values(["key", "ts"], kind="stable", ignore_index=True)
    tr[["cpv", "cv"]] = tr.groupby("key")[["pv", "v"]].cumsum()
    tr = tr.sort_values("ts", kind="stable", ignore_index=True)[["ts", "key", "cpv", "cv"]]
    okey = _key(o, universe, "arrival")
    ends = {}
    for name, col in (("a", "arrival"), ("e", "end")):
        pr = pd.DataFrame({"pts": o[col], "key": okey, "id": o.index}).sort_values("pts", kind="stable")
        pr = pd.merge_asof(pr, tr, left_on="pts", right_on="ts", by="key", direction="backward")
        ends[name] = pr.set_index("id")[["cpv", "cv"]].reindex(o.index).fillna(0.0)
    dv = ends["e"]["cv"] - ends["a"]["cv"]
    o["interval_vwap"] = ((ends["e"]["cpv"] - ends["a"]["cpv"]) / dv.replace(0, np.nan)).to_numpy()

    cols = ["order_id", "arrival_price", "interval_vwap", "avg_fill_price", "arrival_cost_bps"]
    return o[cols + [f"markout_cost_bps_{horizon_label(h)}" for h in horizons]]


def run(lake_root: str | Path, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Load and compute: what the benchmark times."""
    return compute(load(lake_root, symbols), symbols=symbols)
