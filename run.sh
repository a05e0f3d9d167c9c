#!/usr/bin/env bash
# Set up (first time) and run the app on http://127.0.0.1:8501 . On an empty lake it builds demo data first.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup_env.sh requirements.txt
export MLFLOW_DISABLE_TELEMETRY=true
exec .venv/bin/streamlit run app.py --server.address 127.0.0.1 --server.port "${PORT:-8501}" \
  --browser.gatherUsageStats false "$@"
