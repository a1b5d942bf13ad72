"""How close an exported model is to the Keras model: thresholds, comparison, report."""

import logging

import numpy as np

from keras_dta.export._common import ExportCheckError

logger = logging.getLogger(__name__)

# Top-1 agreement with the Keras model below which an export fails. A spiking network turns
# small rounding errors into flipped spikes, so quantized modes cannot promise identity; these
# floors catch a broken conversion, not a slightly worse one.
DEFAULT_MIN_AGREEMENT = {"none": 1.0, "float16": 0.98, "dynamic": 0.95, "int8": 0.9}
# Largest absolute logit difference allowed; only float32 has a default.
DEFAULT_MAX_ABS_DIFF = {"none": 1e-4, "float16": None, "dynamic": None, "int8": None}
# The share of inputs whose logits must all lie within `max_abs_diff`. A spiking network
# amplifies rounding: when a membrane potential sits within float32 rounding of the threshold,
# TFLite's kernels (another summation order) can flip that spike, which moves that input's
# logits by far more than 1e-4. Such inputs are counted and reported, not hidden.
DEFAULT_MIN_LOGIT_MATCH = 0.99


def resolve_thresholds(quantize, min_agreement=None, max_abs_diff=None, min_logit_match=DEFAULT_MIN_LOGIT_MATCH):
    """The checks an export of mode `quantize` must pass, with the mode's defaults filled in.

    Returns:
        Dict with `min_agreement`, `max_abs_diff_allowed` (None: unchecked) and
        `min_logit_match` (None when logits are not checked).
    """
    if min_agreement is None:
        min_agreement = DEFAULT_MIN_AGREEMENT[quantize]
    if not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"`min_agreement` must be in [0, 1]. Received: min_agreement={min_agreement}")
    if max_abs_diff is None:
        max_abs_diff = DEFAULT_MAX_ABS_DIFF[quantize]
    if max_abs_diff is not None and max_abs_diff < 0:
        raise ValueError(f"`max_abs_diff` must be non-negative. Received: max_abs_diff={max_abs_diff}")
    if not 0.0 <= min_logit_match <= 1.0:
        raise ValueError(f"`min_logit_match` must be in [0, 1]. Received: min_logit_match={min_logit_match}")
    return {
        "min_agreement": min_agreement,
        "max_abs_diff_allowed": max_abs_diff,
        "min_logit_match": min_logit_match if max_abs_diff is not None else None,
    }


def check_report(report, output):
    """Raises `ExportCheckError` when `report` (comparison and thresholds) fails a check.

    Inputs whose logits moved beyond the tolerance but within `min_logit_match` are logged.
    """
    min_agreement = report["min_agreement"]
    max_abs_diff = report["max_abs_diff_allowed"]
    min_logit_match = report["min_logit_match"]
    failures = []
    if report["top1_agreement"] < min_agreement:
        failures.append(f"top-1 agreement {report['top1_agreement']:.4f} < min_agreement={min_agreement}")
    if max_abs_diff is not None and report["logit_match"] < min_logit_match:
        failures.append(
            f"logits within max_abs_diff={max_abs_diff} on {report['logit_match']:.2%} of the inputs "
            f"< min_logit_match={min_logit_match} (max |logit diff| {report['max_abs_diff']:.3g})"
        )
    elif max_abs_diff is not None and report["logit_match"] < 1.0:
        logger.warning(
            "%d of %d inputs differ by more than %g in their logits (max %.3g): spikes that sit "
            "at the threshold within float rounding flipped; top-1 agreement %.4f.",
            round((1 - report["logit_match"]) * report["num_examples"]), report["num_examples"],
            max_abs_diff, report["max_abs_diff"], report["top1_agreement"],
        )
    if failures:
        raise ExportCheckError(
            f"The {report['mode']} TFLite model disagrees with the Keras model on "
            f"{report['num_examples']} held-out inputs: {'; '.join(failures)}. "
            f"Nothing was written to {output!r}."
        )


def compare_logits(reference, candidate, labels=None, atol=None):
    """Agreement between two models' logits, and their accuracies where labels exist.

    Args:
        reference: array `(num_examples, num_classes)`, the Keras model's logits.
        candidate: array like `reference`, the exported model's logits.
        labels: optional class ids `(num_examples,)` or one-hot `(num_examples, classes)`.
        atol: optional float; `logit_match` is then the share of inputs whose logits all
            differ by at most `atol`.

    Returns:
        Dict with `num_examples`, `max_abs_diff`, `top1_agreement`, `logit_match` (None
        without `atol`), and `keras_accuracy`, `tflite_accuracy` (None without labels).
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(
            f"Logits must have the same shape. Received: reference.shape={reference.shape}, "
            f"candidate.shape={candidate.shape}"
        )
    per_input = np.abs(reference - candidate).reshape(len(reference), -1).max(axis=1)
    result = {
        "num_examples": int(len(reference)),
        "max_abs_diff": float(per_input.max()),
        "logit_match": None if atol is None else float(np.mean(per_input <= atol)),
        "top1_agreement": float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
        "keras_accuracy": None,
        "tflite_accuracy": None,
    }
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(-1)
        if labels.shape != (len(reference),):
            raise ValueError(
                f"`labels` must hold one class per example ({len(reference)}). "
                f"Received: labels.shape={labels.shape}"
            )
        result["keras_accuracy"] = float(np.mean(reference.argmax(-1) == labels))
        result["tflite_accuracy"] = float(np.mean(candidate.argmax(-1) == labels))
    return result


def format_report(reports):
    """A compact text table of `export_tflite` reports, one row per export."""
    header = ("mode", "size KiB", "median ms", "p90 ms", "max|dlogit|", "within tol", "top-1 agree", "acc keras",
              "acc tflite", "delegate", "partitions", "min spike agree")

    def pct(value):
        return "-" if value is None else f"{100 * value:.2f}%"

    def ms(value):
        return "-" if value is None else f"{value:.3f}"

    rows = [header]
    for r in reports:
        rows.append((
            r["mode"],
            f"{r['size_bytes'] / 1024:.1f}",
            ms(r.get("median_ms")),
            ms(r.get("p90_ms")),
            f"{r['max_abs_diff']:.2e}",
            pct(r.get("logit_match")),
            pct(r["top1_agreement"]),
            pct(r["keras_accuracy"]),
            pct(r["tflite_accuracy"]),
            r["delegate"],
            "-" if r.get("partitions") is None else str(r["partitions"]),
            "-" if not r.get("spike_agreement") else pct(min(r["spike_agreement"].values())),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_spike_agreement(report):
    """A text table of a report's per-LIF-layer spike agreement (see `export.spikes`)."""
    agreement = report.get("spike_agreement") or {}
    if not agreement:
        return "(no spike agreement measured)"
    width = max(len(name) for name in agreement)
    lines = [f"{'LIF layer'.ljust(width)}  equal spikes", f"{'-' * width}  ------------"]
    lines += [f"{name.ljust(width)}  {100 * value:.3f}%" for name, value in agreement.items()]
    return "\n".join(lines)
