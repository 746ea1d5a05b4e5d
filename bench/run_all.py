"""Run every benchmark and print Markdown to paste into bench/RESULTS.md (`make bench`)."""

from __future__ import annotations

import bench_pipeline
import bench_run_log
import bench_server
import bench_studio

if __name__ == "__main__":
    for bench in (bench_run_log, bench_pipeline, bench_server, bench_studio):
        print("\n".join(bench.main()))
        print()
