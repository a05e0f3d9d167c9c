"""Post-trade analytics: lake, ingest, simulator, TCA and friends.

Pure computation lives in this package; it never imports Streamlit.
"""

__version__ = "0.1.0"
