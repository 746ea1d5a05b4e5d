"""What recording and checking a step output costs: describe_output (hash every file, write the
manifest) and verify_output (the check reuse makes before trusting an output still on disk).

Cases: one 1 GiB file; 1 GiB in 8 files of 128 MiB (hashed by several threads); 10,000 files of 1 KiB.
The files are written first, so they sit in the page cache: the numbers are hashing and syscall cost,
not disk reads. verify_output of an untouched output only stats files; after `touch` of every file it
rehashes them all (the worst case of the cheap check).

    python bench/bench_output_manifest.py [--gib 1] [--files 10000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from runyard.engine.data_paths import describe_output, verify_output
from runyard.engine.output_manifest import HASH_THREADS


def make(root: Path, count: int, size: int) -> Path:
    root.mkdir(parents=True)
    block = os.urandom(min(size, 1 << 20))
    for index in range(count):
        sub = root / f"part-{index // 1000:03d}"
        sub.mkdir(exist_ok=True)
        with (sub / f"file-{index:05d}.bin").open("wb") as fh:
            left = size
            while left > 0:
                fh.write(block[: min(left, len(block))])
                left -= len(block)
    return root


def timed(label: str, action: object) -> float:
    start = time.perf_counter()
    result = action()  # type: ignore[operator]
    seconds = time.perf_counter() - start
    print(f"  {label:<34} {seconds:8.3f} s   {result if isinstance(result, str) else ''}")
    return seconds


def case(name: str, root: Path, manifest: Path) -> None:
    print(f"{name}:")
    recorded: dict[str, object] = {}

    def describe() -> str:
        recorded.update(describe_output(root, manifest))
        return f"({recorded['files']} files, {int(recorded['size']) / 2**20:.0f} MiB)"  # type: ignore[call-overload]

    timed("describe_output (hash + manifest)", describe)
    recorded.update({"output": "out", "run_id": "bench"})
    timed("verify_output, untouched (stat)", lambda: verify_output(recorded) or "ok")
    for path in root.rglob("*.bin"):
        os.utime(path, ns=(10**18, 10**18))
    timed("verify_output, all touched (rehash)", lambda: verify_output(recorded) or "ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    total = int(args.gib * 2**30)
    print(f"{os.cpu_count()} CPUs, {HASH_THREADS} hashing threads")
    with tempfile.TemporaryDirectory(prefix="runyard-bench-") as tmp:
        base = Path(tmp)
        case(f"one file of {args.gib:g} GiB", make(base / "one", 1, total), base / "m1.json")
        case(f"{args.gib:g} GiB in 8 files", make(base / "eight", 8, total // 8), base / "m8.json")
        case(f"{args.files} files of 1 KiB", make(base / "many", args.files, 1024), base / "mn.json")


if __name__ == "__main__":
    main()
