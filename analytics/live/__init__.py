"""The real-time engine (issue 17): live intake, live TCA of the current day, alerts, the live simulator feed.

Modules: ``book`` (the day's typed events, deduplicated on the lake's keys), ``state`` (live TCA: working orders
and today's venue / broker / algo board, tca.py's definitions on what has arrived so far), ``alerts`` (rules,
the open-alert book, the alert log under ``<lake>/live/``), ``config`` (engine and rule settings, defaults in
``alerts.toml``), ``baseline`` (trailing 20-order-day baselines of the board from the stored TCA, order-clustered
intervals), ``pnl`` (portfolios' intraday P&L marked to live mids and drawdown from the day's peak), ``delivery``
(raised alerts to a loopback webhook / NATS subject, in background threads), ``sources`` (NATS JetStream pull consumer and a watched folder), ``engine`` (spool -> ingest
-> ack loop, state refresh, snapshot), ``feed`` (the simulator's day streamed in accelerated time), ``natsd``
(a loopback ``nats-server`` for tests, benchmarks and the embedded demo).

Nothing in ``analytics`` imports this package; the CLI and the Live page do.
"""
