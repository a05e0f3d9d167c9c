"""Security universe: tickers, reference data and the per-symbol market parameters.

Every symbol belongs to a liquidity tier (mega/large/mid/small) that drives its price level,
quoted spread (bps of the mid), annualised volatility (decimal), average daily volume
(ADV, shares) and market capitalisation (USD). All securities trade in USD on a US venue;
a few are foreign issuers (ADRs) with a non-US ``country``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

TIERS = ("mega", "large", "mid", "small")
TIER_SHARE = (0.10, 0.25, 0.35, 0.30)

# price: (median USD, lognormal sigma, min, max); spread_bps, vol (annual), cap (USD): uniform /
# log-uniform ranges; adv: (median shares, lognormal sigma, min, max); lots: mean displayed
# quote size in round lots.
TIER_PARAMS: dict[str, dict[str, tuple[float, ...]]] = {
    "mega": {
        "price": (250.0, 0.5, 40.0, 800.0),
        "spread_bps": (1.0, 2.0),
        "vol": (0.15, 0.30),
        "adv": (45e6, 0.3, 20e6, 90e6),
        "cap": (5e11, 3e12),
        "lots": (25.0,),
    },
    "large": {
        "price": (120.0, 0.6, 15.0, 800.0),
        "spread_bps": (3.0, 6.0),
        "vol": (0.20, 0.40),
        "adv": (6e6, 0.4, 2e6, 15e6),
        "cap": (3e10, 3e11),
        "lots": (10.0,),
    },
    "mid": {
        "price": (55.0, 0.6, 8.0, 400.0),
        "spread_bps": (8.0, 20.0),
        "vol": (0.25, 0.50),
        "adv": (1.2e6, 0.4, 5e5, 3e6),
        "cap": (3e9, 2e10),
        "lots": (5.0,),
    },
    "small": {
        "price": (18.0, 0.6, 5.0, 120.0),
        "spread_bps": (25.0, 60.0),
        "vol": (0.35, 0.70),
        "adv": (2.5e5, 0.4, 1e5, 5e5),
        "cap": (3e8, 2.5e9),
        "lots": (3.0,),
    },
}

SECTORS: dict[str, tuple[str, ...]] = {
    "Information Technology": ("Software", "Semiconductors", "Technology Hardware"),
    "Health Care": ("Pharmaceuticals", "Biotechnology", "Health Care Equipment"),
    "Financials": ("Banks", "Insurance", "Capital Markets"),
    "Consumer Discretionary": ("Specialty Retail", "Automobiles", "Hotels & Leisure"),
    "Communication Services": ("Media", "Telecom Services", "Interactive Media"),
    "Industrials": ("Aerospace & Defense", "Machinery", "Transportation"),
    "Consumer Staples": ("Food Products", "Beverages", "Household Products"),
    "Energy": ("Oil & Gas", "Energy Equipment"),
    "Utilities": ("Electric Utilities", "Gas Utilities", "Water Utilities"),
    "Real Estate": ("REITs", "Real Estate Management"),
    "Materials": ("Chemicals", "Metals & Mining", "Containers & Packaging"),
}
FOREIGN = (("GB", "Europe"), ("NL", "Europe"), ("CA", "North America"), ("IE", "Europe"),
           ("CH", "Europe"), ("JP", "Asia"), ("IL", "Middle East"))  # fmt: skip
_PREFIX = ("Ar", "Bel", "Cor", "Del", "Ev", "Fal", "Gal", "Hal", "Is", "Jun", "Kel", "Lum", "Mar",
           "Nor", "Or", "Pel", "Quin", "Ros", "Sol", "Tor", "Ul", "Ver", "Wes", "Xan", "Yor", "Zen")  # fmt: skip
_MIDDLE = ("a", "e", "i", "o", "on", "an", "en", "ar")
_SUFFIX = ("tech", "gen", "dyne", "corp", "tron", "ex", "ia", "is", "ora", "ant", "ward", "field",
           "stone", "max", "view", "point")  # fmt: skip
_FORM = ("Inc.", "Corp.", "Holdings", "Group", "Co.")


@dataclass(frozen=True)
class Universe:
    """Reference data (``securities``) plus aligned numpy parameter arrays, one entry per symbol.

    Symbols are sorted ascending; index ``i`` of every array refers to ``symbols[i]``.
    """

    securities: pl.DataFrame
    symbols: np.ndarray  # str
    tier: np.ndarray  # int index into TIERS
    price0: np.ndarray  # USD, close before the first prior day
    spread_bps: np.ndarray  # typical quoted spread, bps of mid, midday
    vol_annual: np.ndarray  # decimal
    adv: np.ndarray  # shares/day
    shares_outstanding: np.ndarray  # int64
    quote_lots: np.ndarray  # mean displayed size, round lots
    exchange: np.ndarray  # str: listing exchange MIC

    @property
    def n(self) -> int:
        return len(self.symbols)

    @property
    def sigma_daily(self) -> np.ndarray:
        """Daily volatility, decimal (annual / sqrt(252))."""
        return self.vol_annual / np.sqrt(252.0)


def _tickers(n: int, rng: np.random.Generator) -> list[str]:
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    seen: set[str] = set()
    while len(seen) < n:
        k = 2 * (n - len(seen)) + 8
        lengths = rng.choice([3, 4], size=k, p=[0.45, 0.55])
        draws = rng.integers(0, 26, size=(k, 4))
        for length, row in zip(lengths, draws, strict=True):
            seen.add("".join(letters[row[:length]]))
            if len(seen) == n:
                break
    return sorted(seen)


def _tier_counts(n: int) -> np.ndarray:
    counts = np.floor(np.array(TIER_SHARE) * n).astype(int)
    if n >= len(TIERS):
        counts = np.maximum(counts, 1)
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    while counts.sum() < n:
        counts[2] += 1
    return counts


def build_universe(n: int, rng: np.random.Generator) -> Universe:
    """Draw ``n`` symbols (n >= 4 gives at least one of each tier); deterministic given ``rng``."""
    symbols = np.array(_tickers(n, rng))
    tier = rng.permutation(np.repeat(np.arange(len(TIERS)), _tier_counts(n)))
    price = np.empty(n)
    spread = np.empty(n)
    vol = np.empty(n)
    adv = np.empty(n)
    cap = np.empty(n)
    lots = np.empty(n)
    for k, name in enumerate(TIERS):
        m = tier == k
        c = int(m.sum())
        p = TIER_PARAMS[name]
        price[m] = np.clip(p["price"][0] * np.exp(p["price"][1] * rng.standard_normal(c)), *p["price"][2:])
        spread[m] = rng.uniform(*p["spread_bps"], c)
        vol[m] = rng.uniform(*p["vol"], c)
        adv[m] = np.clip(p["adv"][0] * np.exp(p["adv"][1] * rng.standard_normal(c)), *p["adv"][2:])
        cap[m] = np.exp(rng.uniform(np.log(p["cap"][0]), np.log(p["cap"][1]), c))
        lots[m] = p["lots"][0]
    price = np.round(price, 2)
    shares_out = np.round(cap / price, -3).astype(np.int64)

    sector_names = list(SECTORS)
    sector_idx = rng.integers(0, len(sector_names), n)
    sectors = [sector_names[i] for i in sector_idx]
    industry_draw = rng.random(n)
    industries = [SECTORS[s][int(u * len(SECTORS[s]))] for s, u in zip(sectors, industry_draw, strict=True)]
    foreign = rng.random(n) < 0.10
    foreign_pick = rng.integers(0, len(FOREIGN), n)
    country = [FOREIGN[j][0] if f else "US" for f, j in zip(foreign, foreign_pick, strict=True)]
    region = [FOREIGN[j][1] if f else "North America" for f, j in zip(foreign, foreign_pick, strict=True)]
    exchange = np.where(rng.random(n) < 0.55, "XNYS", "XNAS")
    pre = rng.integers(0, len(_PREFIX), n)
    mid = rng.integers(0, len(_MIDDLE), n)
    suf = rng.integers(0, len(_SUFFIX), n)
    form = rng.integers(0, len(_FORM), n)
    names = [
        f"{_PREFIX[a]}{_MIDDLE[b]}{_SUFFIX[c]} {'plc' if ctry == 'GB' else _FORM[d]}"
        for a, b, c, d, ctry in zip(pre, mid, suf, form, country, strict=True)
    ]
    securities = pl.DataFrame(
        {
            "symbol": symbols.tolist(),
            "name": names,
            "asset_class": ["Equity"] * n,
            "sector": sectors,
            "industry": industries,
            "country": country,
            "currency": ["USD"] * n,
            "shares_outstanding": shares_out,
            "region": region,
            "exchange": exchange.tolist(),
        }
    )
    return Universe(
        securities=securities,
        symbols=symbols,
        tier=tier,
        price0=price,
        spread_bps=spread,
        vol_annual=vol,
        adv=adv,
        shares_outstanding=shares_out,
        quote_lots=lots,
        exchange=exchange,
    )
