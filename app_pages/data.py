"""Data: what the lake holds, recent ingests, the quarantine browser and an upload that ingests files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import streamlit as st

from analytics import catalog
from analytics.ingest import FORMATS, IngestError, format_of, held_status, ingest, table_hint
from analytics.schema import TABLES
from ui import state

lake = state.lake()
st.title("Data")
summary = lake.summary()
tables = pl.DataFrame(summary["tables"])
q_total = int(tables.filter(pl.col("table") == "quarantine")["rows"].sum())
c1, c2, c3, c4 = st.columns(4)
c1.metric("Lake version", summary["version"])
c2.metric("Fills", f"{int(tables.filter(pl.col('table') == 'fills')['rows'].sum()):,}")
c3.metric("Quotes", f"{int(tables.filter(pl.col('table') == 'quotes')['rows'].sum()):,}")
c4.metric("Quarantined rows", f"{q_total:,}")
st.caption(f"Lake at `{summary['lake']}`")

tab_tables, tab_ingests, tab_quarantine, tab_upload = st.tabs(["Tables", "Recent ingests", "Quarantine", "Upload"])

with tab_tables:
    st.dataframe(
        tables,
        hide_index=True,
        width="stretch",
        column_config={
            "rows": st.column_config.NumberColumn("Rows", format="localized"),
            "files": st.column_config.NumberColumn("Files"),
            "start": st.column_config.TextColumn("First date (UTC)"),
            "end": st.column_config.TextColumn("Last date (UTC)"),
        },
        height=(len(tables) + 1) * 35 + 3,
        key="tables_df",
    )
    st.download_button("Download table summary (CSV)", tables.write_csv(), "lake_tables.csv", "text/csv")

con = state.cursor()
with tab_ingests:
    ing = catalog.recent_ingests(con, limit=50)
    if ing.is_empty():
        st.info("No ingest yet.")
    else:
        st.dataframe(ing, hide_index=True, width="stretch", key="ingests_df")
        batch = st.selectbox("Files of batch", ing["batch_id"].to_list(), key="ingest_batch")
        if batch:
            st.dataframe(catalog.ingest_files(con, batch), hide_index=True, width="stretch")

with tab_quarantine:
    held = held_status(con)
    if held.height:
        st.caption(
            "Out of order: "
            + "; ".join(
                f"{r['table']}: {r['held']:,} held, {r['expired']:,} quarantined and still waiting, "
                f"{r['resolved']:,} quarantined then accepted (resolved)"
                for r in held.iter_rows(named=True)
            )
        )
    counts = catalog.quarantine_counts(con)
    if counts.is_empty():
        st.success("The quarantine is empty: every row ingested so far passed the contract's rules.")
    else:
        left, right = st.columns([1, 2])
        with left:
            st.dataframe(counts, hide_index=True, width="stretch", key="q_counts")
        with right:
            reasons = st.multiselect("Reason", counts["reason"].unique().sort().to_list(), key="q_reason")
            qtables = st.multiselect("Table", counts["table"].unique().sort().to_list(), key="q_table")
            sources = st.multiselect("Source file", catalog.quarantine_sources(con), key="q_source")
            rows = catalog.quarantine_rows(con, reasons=reasons, tables=qtables, sources=sources, limit=5000)
            st.caption(f"{rows.height:,} row(s) shown (newest first, at most 5,000)")
        st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            column_config={"raw": st.column_config.TextColumn("Raw row", width="large")},
            key="q_rows",
        )
        st.download_button("Download quarantined rows (CSV)", rows.write_csv(), "quarantine.csv", "text/csv")

with tab_upload:
    st.write(
        "Upload contract files (JSON Lines, CSV or Parquet, as in EVENTS.md). They go through the same "
        "ingest as `python -m analytics ingest`: invalid rows are quarantined with a reason, re-sent events "
        "are no-ops, and the batch is committed atomically."
    )
    uploads = st.file_uploader(
        "Files",
        type=[*(s.lstrip(".") for s in FORMATS), "gz"],
        accept_multiple_files=True,
        key="upload_files",
    )
    table_choice = st.selectbox(
        "Table (when neither the file name nor an event_type column says)",
        ["from file", *sorted(TABLES)],
        key="upload_type",
    )
    if st.button("Ingest", type="primary", disabled=not uploads, key="upload_go"):
        with tempfile.TemporaryDirectory(prefix="upload-") as tmp, st.status("Ingesting…") as status:
            paths, names = [], {}
            for i, up in enumerate(uploads):
                # The upload's name never chooses the path: only its (whitelisted) format and the table it
                # names (the same rule as the CLI's: benchmark_weights_*, factor_* included) are kept.
                name = Path(up.name).name
                fmt = format_of(name)
                suffix = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet", None: ".unknown"}[fmt]
                if name.lower().endswith(".gz"):
                    suffix += ".gz"
                path = Path(tmp) / f"{table_hint(name) or 'upload'}_{i:03d}{suffix}"
                path.write_bytes(up.getvalue())
                paths.append(path)
                names[str(path)] = up.name
            try:
                res = ingest(
                    paths,
                    lake,
                    type_name=None if table_choice == "from file" else table_choice,
                    display_names=names,
                    progress=lambda f, m: status.update(label=m),
                )
            except IngestError as e:
                status.update(label="Refused: nothing was written", state="error")
                st.error(str(e))
            else:
                status.update(label=f"Done: lake version {res.version}", state="complete")
                st.session_state["last_ingest"] = res.to_dict()
                st.cache_data.clear()
                st.rerun()  # redraw the whole page over the new lake version
    last = st.session_state.get("last_ingest")
    if last:
        t = last["totals"]
        st.success(
            f"Read {t['read']:,} rows: {t['accepted']:,} accepted, {t['duplicate']:,} duplicate, "
            f"{t['quarantined']:,} quarantined, {t.get('held', 0):,} held (waiting for their order or fill). "
            f"Lake version {last['version']}."
        )
        st.dataframe(
            pl.DataFrame([{"table": k, **v} for k, v in last["tables"].items()]),
            hide_index=True,
            key="upload_result",
        )
        if last["quarantine_reasons"]:
            st.write("Quarantined by reason: " + ", ".join(f"{k} ({v})" for k, v in last["quarantine_reasons"].items()))
