"""Plots of spike statistics."""

import os

import numpy as np


def plot_firing_rates(rates, path, title="Firing rate per LIF layer"):
    """Writes a bar chart of per-layer firing rates to an image file (PNG by extension).

    Uses Matplotlib's object API with the Agg canvas, so no global backend is changed.

    Args:
        rates: dict `{layer_name: rate}` from `firing_rates` (per-step arrays are averaged).
        path: str or path-like, the output file.
        title: str, the chart title.

    Returns:
        The path written, as a string.
    """
    if not rates:
        raise ValueError(f"`rates` is empty. Received: rates={rates}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    names = list(rates)
    values = [float(np.mean(rates[n])) for n in names]
    fig = Figure(figsize=(max(6.0, 0.35 * len(names) + 2.0), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("spikes / neuron / step")
    ax.set_ylim(0, max(values + [1e-3]) * 1.15)
    ax.axhline(float(np.mean(values)), color="tab:red", linestyle="--", linewidth=1,
               label=f"mean {np.mean(values):.3f}")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
