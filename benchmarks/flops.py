"""MACs (and FLOPs = 2 x MACs) per image of MS-ResNet-18/34, per time step and over T.

Counts convolutions, dense layers and the DTA block with `keras_dta.stats.count_macs`; the
model is only built, never run. With `--rates_from_random` it also runs a few random batches
through the (untrained) model to show the SOP/energy report layout; for real figures use the
rates of a trained model (`keras_dta.stats.firing_rates` on the test set).

Usage:

    python benchmarks/flops.py --model ms_resnet18 --attn dta,none --T 4,6 --output results/flops.json
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ms_resnet18", choices=("ms_resnet18", "ms_resnet34"))
    parser.add_argument("--attn", default="dta,none", help="comma list of dta, txa, tna, none")
    parser.add_argument("--T", default="4,6", help="comma list of time steps")
    parser.add_argument("--num_classes", type=int, default=None, help="default: 10 (18) or 1000 (34)")
    parser.add_argument("--input_shape", default=None, help="H,W,C; default 32,32,3 (18) or 224,224,3 (34)")
    parser.add_argument("--per_layer", action="store_true", help="print the per-layer table of each model")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras_dta  # noqa: PLC0415
    from keras_dta import stats  # noqa: PLC0415

    big = args.model == "ms_resnet34"
    num_classes = args.num_classes or (1000 if big else 10)
    input_shape = tuple(common.parse_list(args.input_shape)) if args.input_shape else (
        (224, 224, 3) if big else (32, 32, 3))
    build = getattr(keras_dta.models, args.model)
    rows, details = [], {}
    for attn in [a.strip() for a in args.attn.split(",") if a.strip()]:
        for T in common.parse_list(args.T):
            model = build(attn=attn, T=T, num_classes=num_classes, input_shape=input_shape)
            macs = stats.count_macs(model)
            if args.per_layer:
                print(f"\n{model.name}, T={T}")
                print(stats.format_macs_table(macs))
            per_step = sum(m["macs_per_step"] for m in macs.values())
            total = sum(m["macs"] for m in macs.values())
            by_input = {kind: sum(m["macs"] for m in macs.values() if m["input"] == kind)
                        for kind in ("spikes", "real", "rate")}
            rows.append({
                "model": args.model, "attn": attn, "T": T,
                "trainable_params": sum(math.prod(w.shape) for w in model.trainable_weights),
                "macs_per_step": per_step, "macs": total, "gflops": 2 * total / 1e9,
                "macs_spike_input": by_input["spikes"], "macs_real_input": by_input["real"] + by_input["rate"],
                "dta_macs": macs["dta"]["macs"] if "dta" in macs else 0,
                "ann_energy_uj": total * stats.E_MAC_PJ / 1e6,
            })
            details[f"{attn}_T{T}"] = macs
    columns = [
        ("attn", "attn", None), ("T", "T", None), ("trainable_params", "trainable params", "{:,}"),
        ("macs_per_step", "MACs/step", "{:,}"), ("macs", "MACs", "{:,}"), ("gflops", "GFLOPs", "{:.2f}"),
        ("macs_spike_input", "MACs on spikes", "{:,}"), ("macs_real_input", "MACs on reals", "{:,}"),
        ("dta_macs", "DTA MACs", "{:,}"), ("ann_energy_uj", "ANN uJ", "{:.0f}"),
    ]
    print(common.format_table(rows, columns))
    common.write_json(args.output, {"benchmark": "flops", "model": args.model, "input": list(input_shape),
                                    "num_classes": num_classes, "results": rows, "layers": details})


if __name__ == "__main__":
    main()
