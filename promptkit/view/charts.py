"""Inline SVG for the prompt page: score per version with its 95% interval."""

from __future__ import annotations

from dataclasses import dataclass

from promptkit.report.html import esc


@dataclass
class ChartPoint:
    label: str  # v3
    value: float
    low: float | None
    high: float | None
    href: str = ""


def version_chart(points: list[ChartPoint], metric: str, width: int = 640, height: int = 240) -> str:
    if not points:
        return '<p class="note">no finished run of a published version on its suite yet</p>'
    left, right, top, bottom = 48, 16, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for p in points for v in (p.value, p.low, p.high) if v is not None]
    lo, hi = min(0.0, min(values)), max(1.0, max(values)) if max(values) <= 1 else max(values) * 1.1

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / ((hi - lo) or 1))

    step = plot_w / max(1, len(points))
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{esc(metric)} per version">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#64748b"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#64748b"/>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>'
                     f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#f1f5f9"/>')
    line = []
    for i, p in enumerate(points):
        x = left + step * (i + 0.5)
        line.append(f"{x:.1f},{y(p.value):.1f}")
        if p.low is not None and p.high is not None:
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y(p.low):.1f}" y2="{y(p.high):.1f}" stroke="#93c5fd" '
                         'stroke-width="6" stroke-linecap="round"/>')
        dot = (f'<circle class="point" data-version="{esc(p.label)}" cx="{x:.1f}" cy="{y(p.value):.1f}" r="5" '
               f'fill="#1d4ed8"><title>{esc(p.label)}: {p.value:.3f}</title></circle>')
        parts.append(f'<a href="{esc(p.href)}">{dot}</a>' if p.href else dot)
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{esc(p.label)}</text>')
    parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#1d4ed8" stroke-width="1.5"/>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">{esc(metric)} per version '
                 '(95% interval)</text></svg>')
    return "".join(parts)
