"""Run every benchmark and print Markdown to paste into bench/RESULTS.md (`make bench`)."""

from __future__ import annotations

import bench_environments
import bench_large_upload
import bench_metric_ingest
import bench_mlflow
import bench_parallel
import bench_pipeline
import bench_run_log
import bench_server
import bench_server_memory
import bench_startup
import bench_studio

if __name__ == "__main__":
    for bench in (bench_run_log, bench_pipeline, bench_server, bench_studio, bench_environments):
        print("\n".join(bench.main()))
        print()
    for sized in (
        bench_server_memory,
        bench_large_upload,
        bench_parallel,
        bench_mlflow,
        bench_startup,
        bench_metric_ingest,
    ):  # take argv; run with their defaults here
        print("\n".join(sized.main([])))
        print()
