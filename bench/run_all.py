"""Run every benchmark and print Markdown to paste into bench/RESULTS.md (`make bench`)."""

from __future__ import annotations

import bench_pipeline
import bench_run_log

if __name__ == "__main__":
    for bench in (bench_run_log, bench_pipeline):
        print("\n".join(bench.main()))
        print()
