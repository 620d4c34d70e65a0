"""Reports the commands write: strict JSON (:func:`~caterpillar.software.storage.write_json`)
and figures, to paths checked before the work that fills them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from caterpillar.app.plots import training_figure
from caterpillar.software.storage import check_figure_kind, check_output, write_json

__all__ = ["check_outputs", "Outputs"]


@dataclass
class Outputs:
    """The report files of a command, checked before its work: ``json`` and ``plot``."""

    json: Path | None = None
    plot: Path | None = None

    def write(self, report: dict) -> None:
        """Write the report to every output asked for."""
        if self.json is not None:
            write_json(self.json, report)
        if self.plot is not None:
            training_figure(report, self.plot)


def check_outputs(*, json=None, plot=None, npz=None, npz_flag="--save") -> Outputs:
    """Check the output paths a command was given (before any work; missing folders are
    created) and return them."""
    if plot is not None:
        check_figure_kind(plot)
    if npz is not None:
        check_output(npz, npz_flag, suffix=".npz")
    return Outputs(json=check_output(json, "--json") if json is not None else None,
                   plot=check_output(plot, "--plot") if plot is not None else None)
