"""Test accuracy against wall time of a training run: the `cpu_small` preset on a folder of
images (real CIFAR-10 JPEGs for the README's curve).

Runs `trainers/fit.py` (rerun: it resumes, or does nothing if the run is complete), then prints
each epoch's wall time (the run's own clock, `elapsed_s` in `history.csv`: training and
evaluation, over every resume), training and test accuracy, whether the target was met, and
the best model's firing rates and energy estimate (`spike_stats.json`).

    tar xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp
    python benchmarks/accuracy_vs_time.py --data_dir /tmp/cifar10-jpeg --model_dir runs/c10_cpu

Extra flags after `--` go to the trainer (`-- --epochs 8`). `--print_only` prints an existing
run directory.
"""

import argparse
import csv
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", help="the image folder (train/<class>/..., test/<class>/...)")
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--preset", default="cpu_small")
    parser.add_argument("--target_accuracy", type=float, default=0.70)
    parser.add_argument("--target_minutes", type=float, default=30.0)
    parser.add_argument("--print_only", action="store_true", help="print the run in --model_dir")
    args, trainer_args = parser.parse_known_args(argv)
    trainer_args = [a for a in trainer_args if a != "--"]
    if not args.print_only and not args.data_dir:
        parser.error("--data_dir is required unless --print_only")
    return args, trainer_args


def curve_rows(model_dir):
    """`[(epoch, minutes, train accuracy, test accuracy)]` from the run's history.csv."""
    with open(os.path.join(model_dir, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    if rows and "elapsed_s" not in rows[0]:
        raise SystemExit(f"{model_dir}/history.csv has no elapsed_s column (a run of an older keras_dta).")
    return [(int(r["epoch"]) + 1, float(r["elapsed_s"]) / 60, float(r["accuracy"]), float(r["val_accuracy"]))
            for r in rows]


def report(model_dir, target_accuracy, target_minutes):
    rows = curve_rows(model_dir)
    print(f"{'epoch':>5}  {'minutes':>7}  {'train acc':>9}  {'test acc':>8}")
    for epoch, minutes, train, test in rows:
        print(f"{epoch:>5}  {minutes:>7.1f}  {train:>9.4f}  {test:>8.4f}")
    within = [test for _, minutes, _, test in rows if minutes <= target_minutes]
    best_within = max(within, default=None)
    met = best_within is not None and best_within >= target_accuracy
    print(f"best test accuracy within {target_minutes:g} min: "
          f"{'none' if best_within is None else f'{best_within:.4f}'} (target {target_accuracy:.2f}: "
          f"{'met' if met else 'NOT met'})")
    stats_path = os.path.join(model_dir, "spike_stats.json")
    if os.path.exists(stats_path):
        with open(stats_path) as f:
            stats = json.load(f)
        rates = stats["firing_rates"]
        energy = stats["energy"]
        print("firing rates of the best model: " + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))
        print(f"mean firing rate {sum(rates.values()) / len(rates):.3f}; energy per image: "
              f"SNN {energy['snn_energy_pj'] / 1e6:.1f} uJ, ANN equivalent {energy['ann_energy_pj'] / 1e6:.1f} uJ")
    return {"rows": rows, "best_within_target": best_within, "met": met}


def main(argv=None):
    args, trainer_args = _parse_args(argv)
    if not args.print_only:
        cmd = [sys.executable, os.path.join(REPO, "trainers", "fit.py"), "--dataset=image_folder",
               f"--data_dir={args.data_dir}", f"--model_dir={args.model_dir}", f"--preset={args.preset}",
               *trainer_args]
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return report(args.model_dir, args.target_accuracy, args.target_minutes)


if __name__ == "__main__":
    main()
