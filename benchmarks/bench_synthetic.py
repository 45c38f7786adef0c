"""Synthetic rows benchmark (issue 15): see ``_bench_synthetic.py``.

``python benchmarks/bench_synthetic.py [--quick] [--seeds 0,1,2]
[--datasets penguins,adult] [--draws 1]`` prints Markdown tables.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_synthetic import run_synthetic  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default="penguins,adult")
    parser.add_argument(
        "--sdv-epochs",
        type=int,
        default=300,
        help="training epochs of SDV's TVAE and CTGAN",
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=1,
        help="synthetic draws per fitted generator, scores averaged over them",
    )
    parser.add_argument(
        "--methods",
        default="",
        help="comma-separated generators to run (default: all), e.g. "
        "'GaussianMixture,skvae support,TVAE,CTGAN'",
    )
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    return args


if __name__ == "__main__":
    run_synthetic(parse_args())
