"""Training data: build versioned ML datasets from the lake, browse their labels, features, quality report,
lineage and model feedback, and download them."""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import polars as pl
import streamlit as st

from analytics import datasets, tca
from ui import charts, filters, state

f = filters.current()
lake = state.lake()
st.title("Training data")
st.caption(
    "Order rows (one per parent order: point-in-time features at arrival and at its decision) and decision rows (one "
    "per trading decision, traded or not: its context at its timestamp, only data stamped before); realized "
    "outcomes, labels excellent…bad, and the quality rules each row passed."
)


@st.cache_data(show_spinner=False, max_entries=16)
def _load(location: str, content_hash: str, part: str) -> pl.DataFrame:
    p = Path(location) / f"{part}.parquet"
    return pl.read_parquet(p) if p.exists() else pl.DataFrame()


with st.form("td_build_form"):
    c1, c2 = st.columns([2, 3])
    name = c1.text_input("Dataset name", value="execution", key="td_name")
    c2.caption(
        f"Orders arriving {f.start or 'from the start'} … {f.end or 'to the end'} (sidebar dates) · lake@{lake.version()}"
    )
    go = st.form_submit_button("Build dataset", type="primary")
if go:
    with st.status(f"Building {name}…", expanded=True) as status:
        bar = st.progress(0.0, text="starting")
        try:
            before = datasets.versions(lake, name)
            ev = datasets.build(
                lake, name, f.start, f.end, progress=lambda x, m: bar.progress(min(max(x, 0.0), 1.0), text=m)
            )
        except datasets.DatasetError as e:
            status.update(label=f"Build failed: {e}", state="error")
        else:
            st.session_state["td_ref"] = f"{ev['name']}@{ev['version']}"
            verb = "unchanged, same content hash" if ev["version"] in before else "built"
            nd = (ev.get("decisions") or {}).get("rows") or 0
            status.update(label=f"{ev['name']}@{ev['version']} {verb}: {ev['rows']:,} order rows, {nd:,} decision rows",
                          state="complete")  # fmt: skip

listing = pl.DataFrame(datasets.list_datasets(lake))
if listing.is_empty():
    st.info("No dataset yet: build one above.")
    st.stop()
st.subheader("Datasets and versions")
st.dataframe(listing, hide_index=True, width="stretch", key="td_list_df")
refs = [f"{n}@{v}" for n, v in listing.select("name", "version").iter_rows()][::-1]
if st.session_state.get("td_ref") not in refs:
    st.session_state["td_ref"] = refs[0]
ref = st.selectbox("Dataset version", refs, key="td_ref")
m = datasets.manifest(lake, ref)
which = st.segmented_control(
    "Rows", list(datasets.TABLES), format_func=datasets.TABLES.get, default="orders", key="td_table"
)
view = datasets.table_view(m, which or "orders")
if view is None:
    st.info(f"{ref} was built before decision rows existed: rebuild it to get them. Showing the order rows.")
    view = datasets.table_view(m, "orders")
data = _load(m["location"], m["content_hash"], view["part"])
q, fd = view["quality"], m["quality"]["fault_detection"]

c = st.columns(5)
c[0].metric("Rows", f"{view['rows']:,}", help="Order rows: one per parent order; decision rows: one per decision")
c[1].metric("Quality", f"{q['quality_pct']:.2f}%", help="Share of candidate rows passing every rule (promise: > 95%)")
c[2].metric("Rule precision", f"{100 * fd['precision']:.1f}%", help=f"On simulator faults: {fd['source']}")
c[3].metric(
    "Rule recall", f"{100 * fd['recall']:.1f}%", help=f"{fd['true_positives']:,} of {fd['faults']:,} faulty rows caught"
)
c[4].metric("Lake version", m["source_version"], help="The lake snapshot the rows were computed from")

tabs = st.tabs(["Labels", "Features", "Quality", "Lineage", "Model feedback", "Downloads"])
with tabs[0]:
    counts = pl.DataFrame(
        [{"outcome": o, "label": k, "rows": v} for o, lc in view["labels"].items() for k, v in lc.items()]
    )
    order = ["excellent", "good", "neutral", "poor", "bad", "pending", "null"]
    st.altair_chart(
        alt.Chart(charts.inline(counts)).mark_bar().encode(
            alt.X("label:N", sort=order, title=None), alt.Y("rows:Q"), alt.Color("label:N", sort=order, legend=None),
            alt.Column("outcome:N", title=None), tooltip=["outcome:N", "label:N", alt.Tooltip("rows:Q", format=",")],
        ).properties(width=260, height=220),
    )  # fmt: skip
    st.dataframe(counts, hide_index=True, key="td_labels_df")
    if which == "decisions":
        st.caption(f"Execution cost of the decision rows by source: {m['decisions']['cost_source_counts']}")
    st.json(m["label_definition"], expanded=False)
with tabs[1]:
    st.dataframe(pl.DataFrame(view["features"]).drop("anchors"), hide_index=True, width="stretch", key="td_features_df")
    num = datasets.numeric_features(data, view["columns"])
    feat = st.selectbox("Distribution of", num, key="td_feature")
    if feat and feat in data.columns and data[feat].drop_nulls().len():
        st.altair_chart(charts.histogram(tca.histogram(data.drop_nulls(feat), feat), feat), width="stretch")
    st.dataframe(datasets.feature_summary(data, view["columns"]), hide_index=True, width="stretch", key="td_summary_df")
    corr = datasets.correlations(data, [c for c in num if not c.startswith("dec_")] + [view["z"]])
    st.altair_chart(
        alt.Chart(charts.inline(corr)).mark_rect().encode(
            alt.X("a:N", title=None), alt.Y("b:N", title=None),
            alt.Color("corr:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1])),
            tooltip=["a:N", "b:N", alt.Tooltip("corr:Q", format=".2f")],
        ).properties(height=520, title=f"Correlations (Pearson) of the features, with {view['z']}"),
        width="stretch",
    )  # fmt: skip
with tabs[2]:
    rules = pl.DataFrame(q["rules"]).with_columns(
        pl.col("name").replace_strict(q["excluded_by_rule"], default=0, return_dtype=pl.Int64).alias("rows_failing")
    )
    st.caption(
        f"{q['passing_rows']:,} of {q['candidate_rows']:,} candidate rows pass every rule ({q['quality_pct']:.2f}%)."
    )
    st.dataframe(rules, hide_index=True, width="stretch", key="td_rules_df")
    st.markdown(
        f"**Row rules vs simulator faults** ({fd['source']}): precision {fd['precision']:.3f}, recall {fd['recall']:.3f}"
    )
    st.dataframe(pl.DataFrame(fd["by_fault"]), hide_index=True, key="td_faults_df")
    failures = _load(m["location"], m["content_hash"], view["failures"])
    st.caption(f"{failures.height:,} excluded row(s), with the rules they failed:")
    st.dataframe(failures, hide_index=True, width="stretch", key="td_failures_df")
    st.download_button("Download excluded rows (CSV)", failures.write_csv(), f"{ref}_{view['failures']}.csv",
                       "text/csv", key="dl_td_fail")  # fmt: skip
with tabs[3]:
    cur = lake.version()
    if m["lake_version"] != cur:
        st.warning(
            f"Built from lake@{m['lake_version']}; the lake is now at version {cur}. Rebuild to include new data."
        )
    lineage = {k: m.get(k) for k in ("source_version", "lake_root", "code_version", "content_hash", "location", "built",
                                     "start", "end")} | {k: view[k] for k in ("table_content_hash", "table_schema_hash")}  # fmt: skip
    st.dataframe(pl.DataFrame({"field": list(lineage), "value": [str(v) for v in lineage.values()]}), hide_index=True,
                 width="stretch", key="td_lineage_df")  # fmt: skip
    st.dataframe(
        pl.DataFrame(view["schema"], schema=["column", "dtype"], orient="row"), hide_index=True, key="td_schema_df"
    )
with tabs[4]:
    fb = _load(m["location"], m["content_hash"], "feedback")
    st.caption(
        "Per decision model and month: expected vs realized alpha over the horizon, hit rate, IC (Spearman), calibration."
    )
    st.dataframe(fb, hide_index=True, width="stretch", column_config=charts.number_formats(fb), key="td_feedback_df")
    st.download_button("Download feedback events (JSON)", json.dumps(m["feedback_events"], default=str),
                       f"{ref}_feedback.json", "application/json", key="dl_td_feedback")  # fmt: skip
with tabs[5]:
    st.download_button(f"Download {datasets.TABLES[which or 'orders'].lower()} (Parquet)",
                       (Path(m["location"]) / f"{view['part']}.parquet").read_bytes(), f"{ref}_{view['part']}.parquet",
                       "application/octet-stream", key="dl_td_parquet")  # fmt: skip
    st.download_button("Download (CSV)", lambda: data.write_csv(), f"{ref}_{view['part']}.csv", "text/csv",
                       key="dl_td_csv")  # fmt: skip
    st.download_button("Download manifest (JSON)", json.dumps(m, indent=1, default=str), f"{ref}_manifest.json",
                       "application/json", key="dl_td_manifest")  # fmt: skip
