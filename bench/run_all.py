"""Run every benchmark and print Markdown to paste into bench/RESULTS.md (`make bench`)."""

from __future__ import annotations

import bench_run_log

if __name__ == "__main__":
    print("\n".join(bench_run_log.main()))
