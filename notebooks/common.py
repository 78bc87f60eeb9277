"""Shared helpers of the kvmtrace notebooks: where the dataset is, and truth.json when it applies."""
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASET = Path(os.environ.get("KVMTRACE_DATASET", HERE / "../target/kvmtrace-sample.dataset")).resolve()
SAMPLE = DATASET == (HERE / "../target/kvmtrace-sample.dataset").resolve()
TRUTH = json.loads((HERE / "../testdata/synth-small/truth.json").read_text()) if SAMPLE else None


def table(name):
    """Glob of every part of one table (hive-style: TABLE/host=H/recording=R/part-<k>.parquet)."""
    return str(DATASET / name / "**" / "*.parquet")


def committed():
    """Recording ids whose manifest exists (the commit point); only those may be read."""
    return sorted(p.stem for p in (DATASET / "recordings").glob("*.json"))
