"""Per-reason exit counts of a kvmtrace dataset with PySpark (local mode), checked against
`kvmtrace exits --format json`. Run as a test: python3 spark_exits.py [DATASET]."""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def spark_counts(dataset):
    from pyspark.sql import SparkSession, functions as F
    spark = (SparkSession.builder.master("local[2]").appName("kvmtrace")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    committed = [p.stem for p in Path(dataset, "recordings").glob("*.json")]
    # basePath makes Spark read host= and recording= from the directory names (partition discovery).
    exits = spark.read.option("basePath", str(dataset)).parquet(str(Path(dataset, "exits")))
    rows = (exits.where(F.col("recording").isin(committed) & F.col("entry_time_ns").isNotNull())
            .groupBy("reason_name").count().collect())
    return {r["reason_name"]: r["count"] for r in rows}


def kvmtrace_counts(dataset):
    bin = os.environ.get("KVMTRACE_BIN", str(HERE / "../target/debug/kvmtrace"))
    out = subprocess.run([bin, "exits", str(dataset), "--format", "json"], check=True, capture_output=True, text=True).stdout
    return {r["reason_name"]: r["count"] for r in json.loads(out)}


if __name__ == "__main__":
    ds = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KVMTRACE_DATASET", HERE / "../target/kvmtrace-sample.dataset"))
    got, want = spark_counts(ds), kvmtrace_counts(ds)
    assert got == want, (got, want)
    print(f"spark_exits: {sum(got.values())} exits in {len(got)} reasons equal kvmtrace exits")
