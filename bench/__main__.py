"""Run one named benchmark: `python -m bench NAME [--n N]`.

Each benchmark is a module `bench/<name>.py` with `DEFAULT_N` and
`run(n: int) -> dict`. The harness adds `name`, `n`, `wall_s` and
`peak_rss_mb` when the benchmark did not set them, writes the result to
`bench/results/<name>.json` and prints it as the last line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from bench._common import peak_rss_mb


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("name", choices=available())
    parser.add_argument("--n", type=int, default=None)
    args = parser.parse_args(argv)
    module = importlib.import_module(f"bench.{args.name}")
    n = args.n if args.n is not None else module.DEFAULT_N
    started = time.perf_counter()
    result = module.run(n)
    result.setdefault("name", args.name)
    result.setdefault("n", n)
    result.setdefault("wall_s", round(time.perf_counter() - started, 3))
    result.setdefault("peak_rss_mb", peak_rss_mb())
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
