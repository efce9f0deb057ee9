"""The report's charts, drawn with matplotlib and embedded as inline SVG.

SVG keeps the file self-contained without scripts, scales on any screen, and
leaves the labels as text a reader can select. The figures are built with the
object API (no pyplot state), and the SVG is deterministic: no date in the
metadata and a fixed id salt per chart, so two renders of the same data are
byte-identical and the ids of two charts on one page never collide.
"""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipelines.report.palette import (
    POORLY_DOCUMENTED,
    SHARE_COLOURMAP,
    index_tiers,
    tier_colours,
    tier_label,
)

STYLE: dict[str, object] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "svg.fonttype": "none",
}


def tier_colour(category: str) -> str:
    """The tier's colour; the poorly documented low tier keeps the low colour."""
    colours = tier_colours()
    if category == POORLY_DOCUMENTED:
        return colours[index_tiers()[-1]]
    return colours[category]


def figure_svg(fig: Figure, name: str, description: str) -> str:
    """The figure as an inline <svg> element, tagged so that a test can find it."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": name, "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    svg = text[text.index("<svg") :]
    return re.sub(
        r"^<svg ",
        f'<svg class="chart" data-chart="{name}" role="img" aria-label="{description}" ',
        svg,
        count=1,
    )


def window_label(days: int) -> str:
    """'≤ 1 day', '≤ 14 days': the window as a reader says it."""
    return f"≤ {int(days)} day" + ("" if int(days) == 1 else "s")


def new_figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def tier_mix_chart(mix: pd.DataFrame) -> str:
    """Horizontal bars: index episodes per tier (column `category`, `n`, `hidden`)."""
    with matplotlib.rc_context(STYLE):
        fig = new_figure(7.5, 0.5 + 0.45 * len(mix))
        ax = fig.add_subplot()
        y = np.arange(len(mix))[::-1]
        shown = mix["n"].where(~mix["hidden"], 0).fillna(0).to_numpy(dtype=float)
        colours = [tier_colour(c) for c in mix["category"]]
        bars = ax.barh(y, shown, color=colours, height=0.7)
        for bar, category in zip(bars, mix["category"], strict=True):
            if category == POORLY_DOCUMENTED:
                bar.set_hatch("//")
                bar.set_edgecolor("white")
        labels = [
            "suppressed" if hidden else f"{int(n):,}"
            for n, hidden in zip(mix["n"], mix["hidden"], strict=True)
        ]
        ax.bar_label(bars, labels=labels, padding=4)
        ax.set_yticks(y, [tier_label(c) for c in mix["category"]])
        ax.set_xlabel("Index presentations (new back-pain episodes)")
        ax.set_xlim(0, max(shown.max(), 1) * 1.18)
        ax.grid(axis="y", visible=False)
        return figure_svg(fig, "tier_mix", "Index presentations by tier")


def referral_rate_chart(rates: pd.DataFrame, outcome_label: str) -> str:
    """Rate with its 95% interval per window, one colour per index tier.

    Columns: tier, window_days, rate, ci_low, ci_high, hidden. Hidden (suppressed)
    points are left out and named in the legend.
    """
    with matplotlib.rc_context(STYLE):
        fig = new_figure(9, 4.2)
        ax = fig.add_subplot()
        windows = sorted(rates["window_days"].unique())
        x_of = {w: i for i, w in enumerate(windows)}
        tiers = list(dict.fromkeys(rates["tier"]))
        width = 0.8 / max(len(tiers), 1)
        for i, tier in enumerate(tiers):
            part = rates[(rates["tier"] == tier) & ~rates["hidden"] & rates["rate"].notna()]
            x = (
                part["window_days"].map(x_of).to_numpy(dtype=float)
                + (i - (len(tiers) - 1) / 2) * width
            )
            rate = part["rate"].to_numpy(dtype=float) * 100
            # Clipped at 0: a rate of 100% can sit a rounding error above its upper bound.
            err = np.clip(
                np.vstack(
                    [
                        rate - part["ci_low"].to_numpy(dtype=float) * 100,
                        part["ci_high"].to_numpy(dtype=float) * 100 - rate,
                    ]
                ),
                0,
                None,
            )
            n_hidden = int((rates["tier"] == tier).sum() - len(part))
            label = tier_label(tier) + (f" ({n_hidden} suppressed)" if n_hidden else "")
            ax.errorbar(
                x,
                rate,
                yerr=err,
                fmt="o",
                color=tier_colour(tier),
                label=label,
                capsize=3,
                markersize=7,
                elinewidth=1.6,
            )
        ax.set_xticks(range(len(windows)), [window_label(w) for w in windows])
        ax.set_xlabel("Window after the index presentation")
        ax.set_ylabel(f"{outcome_label} (%)")
        ax.set_ylim(0, 104)  # room for a point at 100% and its cap
        ax.set_yticks(range(0, 101, 20))
        ax.grid(axis="x", visible=False)
        ax.legend(title="Index tier", loc="upper left", bbox_to_anchor=(1.01, 1))
        return figure_svg(fig, "referral_rate", f"{outcome_label} by index tier and window")


def km_chart(curves: pd.DataFrame) -> str:
    """Kaplan-Meier cumulative incidence of first imaging by tier, 95% band shaded.

    Columns: tier, day, cumulative_incidence, ci_low, ci_high.
    """
    with matplotlib.rc_context(STYLE):
        fig = new_figure(9, 4.6)
        ax = fig.add_subplot()
        for tier in dict.fromkeys(curves["tier"]):
            part = curves[curves["tier"] == tier].sort_values("day")
            day = part["day"].to_numpy(dtype=float)
            colour = tier_colour(tier)
            is_all = tier == "all"
            ax.fill_between(
                day,
                part["ci_low"].to_numpy(dtype=float) * 100,
                part["ci_high"].to_numpy(dtype=float) * 100,
                step="post",
                color=colour,
                alpha=0.0 if is_all else 0.15,  # the all-tiers line is a reference only
                linewidth=0,
            )
            ax.step(
                day,
                part["cumulative_incidence"].to_numpy(dtype=float) * 100,
                where="post",
                color=colour,
                linewidth=1.6 if is_all else 2.2,
                linestyle="--" if is_all else "-",
                zorder=3 if is_all else 2,
                label=tier_label(tier),
            )
        ax.set_xlim(0, 90)
        ax.set_xticks([0, 7, 14, 28, 60, 90])
        ax.set_ylim(0, 101)
        ax.set_xlabel("Days since the index presentation")
        ax.set_ylabel("Imaged (%)")
        ax.legend(title="Index tier", loc="upper left", bbox_to_anchor=(1.01, 1))
        return figure_svg(fig, "time_to_imaging", "Cumulative incidence of first imaging by tier")


def completeness_chart(shares: pd.DataFrame) -> str:
    """Heat map of the share of non-NULL values, fields down, tiers (and all) across.

    `shares` is indexed by field with one column per tier; NaN cells are hidden.
    """
    with matplotlib.rc_context(STYLE):
        n_fields, n_cols = shares.shape
        fig = new_figure(2.4 + 1.15 * n_cols, 0.8 + 0.34 * n_fields)
        ax = fig.add_subplot()
        values = shares.to_numpy(dtype=float)
        image = ax.imshow(
            np.ma.masked_invalid(values), cmap=SHARE_COLOURMAP, vmin=0, vmax=1, aspect="auto"
        )
        ax.set_xticks(range(n_cols), [tier_label(str(c)) for c in shares.columns])
        ax.xaxis.tick_top()
        ax.set_yticks(range(n_fields), [str(f).replace("_", " ") for f in shares.index])
        ax.grid(False)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        rows, cols = np.nonzero(np.isfinite(values))
        for r, c in zip(rows, cols, strict=True):
            v = values[r, c]
            ax.text(
                c,
                r,
                f"{v:.0%}",
                ha="center",
                va="center",
                fontsize=9,
                color="black" if v > 0.55 else "white",
            )
        fig.colorbar(image, ax=ax, shrink=0.6, label="Share recorded", format="{x:.0%}")
        return figure_svg(fig, "documentation", "Share of fields recorded by tier")
