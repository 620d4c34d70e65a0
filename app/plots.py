"""Figures of a training report: loss and accuracy per epoch, utilization per phase."""

from __future__ import annotations

from caterpillar.software.storage import FIGURE_SUFFIXES

__all__ = ["training_figure", "FIGURE_SUFFIXES"]


def training_figure(report: dict, path) -> None:
    """Write ``report``'s (``caterpillar train --json``) curves and phase utilization to
    ``path`` (any format matplotlib writes, e.g. ``.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = report["epochs"]
    x = [e["epoch"] for e in epochs]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
    left.plot(x, [e["loss"] for e in epochs], marker="o")
    left.set(xlabel="epoch", ylabel="training loss", title="loss")
    middle.plot(x, [100 * e["train_accuracy"] for e in epochs], marker="o", label="train")
    middle.plot(x, [100 * e["test_accuracy"] for e in epochs], marker="s", label="test")
    middle.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    middle.legend()
    for axis in (left, middle):
        axis.set_xticks(x)
    phases = [p for p, v in epochs[-1]["phases"].items() if v["cycles"]]
    util = [100 * epochs[-1]["phases"][p]["utilization"] for p in phases]
    share = [100 * epochs[-1]["phases"][p]["cycles"] / max(epochs[-1]["cycles"], 1)
             for p in phases]
    pos = range(len(phases))
    right.bar([p - 0.2 for p in pos], util, width=0.4, label="utilization")
    right.bar([p + 0.2 for p in pos], share, width=0.4, label="share of cycles")
    right.set_xticks(list(pos), phases)
    right.set(ylabel="%", title=f"per phase (total {100 * epochs[-1]['utilization']:.1f}%)")
    right.legend(loc="best")
    g = report["graph"]
    fig.suptitle(f"{'-'.join(map(str, g['sizes']))} {g['algorithm']} on {report['dataset']}, "
                 f"config {report['config']['name']}, backend {report['backend']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
