"""Streamlit glue shared by the pages: cached lake access and the sidebar filters. No formulas here."""
