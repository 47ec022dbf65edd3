"""The evaluation's outputs: ``metrics.json``, ``report.html`` (tables, one bar chart per metric,
image strips, expression by region) and a table in the terminal.

Everything is rendered from the JSON-ready result, so a report can be rebuilt from its
``metrics.json``; image strips are JPEG files under ``strips/`` beside it.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from facereenact.errors import OutputError
from facereenact.evaluate.catalog import BY_KEY, CROSS, INSTRUMENTS, NATIVE, PROTOCOLS, SELF, VIDEO
from facereenact.io.atomic import atomic_output

#: Side of each picture in an image strip.
THUMBNAIL = 128
PROTOCOL_TITLES = {SELF: "Self-reenactment", CROSS: "Cross-identity", NATIVE: "Self-reenactment at native resolution", VIDEO: "Video-to-video"}


# ---- image strips ---------------------------------------------------------------------------------
def make_strip(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str]) -> bytes:
    """A JPEG grid: one row per frame, one column per picture (RGB crops), a label row on top."""
    cells = [[cv2.resize(np.ascontiguousarray(p), (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA) for p in row] for row in rows]
    header = np.full((22, THUMBNAIL * len(labels), 3), 255, np.uint8)
    for column, label in enumerate(labels):
        text = label if len(label) <= 18 else label[:17] + "~"
        cv2.putText(header, text, (column * THUMBNAIL + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    grid = np.concatenate([header] + [np.concatenate(row, axis=1) for row in cells], axis=0)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise OutputError("could not encode an image strip as JPEG")
    return encoded.tobytes()


# ---- formatting -----------------------------------------------------------------------------------
def format_value(value: Any, key: str = "") -> str:
    if value is None:
        return "—"
    if value == "inf":
        return "∞"
    number = float(value)
    if key == "face_found":
        return f"{100 * number:.1f}%"
    return f"{number:.2f}" if abs(number) >= 10 else f"{number:.3f}"


def format_summary(summary: dict[str, Any] | None, key: str) -> str:
    if not summary or summary.get("mean") is None:
        return "—"
    text = format_value(summary["mean"], key)
    if summary.get("ci95"):
        low, high = summary["ci95"]
        text += f" [{format_value(low, key)}, {format_value(high, key)}]"
    return text


def expression_instruments_note(regions: dict[str, Any]) -> str:
    """Which instrument checks expression by region independently of the pipeline: one that
    drives the pipeline would partly grade its own signal."""
    if regions["driven_by"] == "mediapipe":
        return (
            "Expression by region: the pipeline drives eyes, gaze, brows and mouth corners with MediaPipe's blendshapes, so MediaPipe "
            "partly grades its own signal; dlib's 68 landmarks are the independent check. r is left out (None) where a signal is constant."
        )
    return (
        "Expression by region: the pipeline's fitter reads neither instrument, so MediaPipe and dlib are both independent checks. "
        "r is left out (None) where a signal is constant."
    )


def _metric_label(key: str) -> str:
    metric = BY_KEY[key]
    arrow = {"higher": " ↑", "lower": " ↓"}.get(metric.better, "")
    unit = f" ({metric.unit})" if metric.unit else ""
    return f"{metric.label}{unit}{arrow}"


def _metric_keys(result: dict[str, Any], protocol: str) -> list[str]:
    present = {key for per_method in result[protocol]["aggregate"].values() for key in per_method}
    return [key for key in BY_KEY if key in present]


# ---- terminal ---------------------------------------------------------------------------------------
def print_tables(result: dict[str, Any], console: Console) -> None:
    """One table per protocol: metrics × methods, mean over clips [95 % bootstrap interval]."""
    for protocol in PROTOCOLS:
        if protocol not in result:
            continue
        part = result[protocol]
        done, total = part["counts"]["ok"], part["counts"]["total"]
        table = Table(title=f"{PROTOCOL_TITLES[protocol]}: {done} of {total} {part['unit']} evaluated (mean [95% CI])")
        table.add_column("metric")
        for method in result["methods"]:
            table.add_column(method, justify="right")
        for key in _metric_keys(result, protocol):
            table.add_row(_metric_label(key), *(format_summary(part["aggregate"][m].get(key), key) for m in result["methods"]))
        console.print(table)
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)


# ---- charts -----------------------------------------------------------------------------------------
def bar_chart(key: str, methods: Sequence[str], summaries: Sequence[dict[str, Any] | None]) -> str:
    """A PNG bar chart (base64) of one metric's means with their 95 % intervals."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # the eval extra
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.6, 2.4), dpi=96)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(methods))
    # cast: matplotlib's stub types Axes.text's x as float; at runtime it takes numpy's integers too.
    for position, summary in zip(positions, summaries):
        mean = None if not summary else summary.get("mean")
        if mean is None:
            axes.text(cast(float, position), 0, "n/a", ha="center", va="bottom", fontsize=8)
        elif mean == "inf":
            axes.text(cast(float, position), 0, "∞", ha="center", va="bottom", fontsize=12)
        else:
            interval = summary.get("ci95") if summary else None
            error = None
            if interval and "inf" not in interval:
                error = [[max(mean - interval[0], 0)], [max(interval[1] - mean, 0)]]
            axes.bar(position, mean, yerr=error, capsize=4, color=f"C{position}")
    axes.set_xticks(positions, [m if len(m) <= 14 else m[:13] + "…" for m in methods], fontsize=8)
    axes.set_title(_metric_label(key), fontsize=9)
    axes.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# ---- HTML ---------------------------------------------------------------------------------------------
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.charts img { margin: 0.3em; border: 1px solid #eee; }
.failed { color: #a00; }
details { margin: 1em 0; }
.strip { margin: 0.5em 0; }
.strip img { display: block; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def render_html(result: dict[str, Any]) -> str:
    e = html.escape
    methods = result["methods"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>facereenact evaluation</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>facereenact evaluation</h1>",
        (
            f"<p>Data: <code>{e(result['data'])}</code> · methods: {e(', '.join(methods))} · "
            f"{e(result['created'])} · {result['seconds']:.0f} s · seed {result['settings']['seed']}</p>"
        ),
        f"<p>Sampling: {e(result['sampling'])}.</p>",
        "<h2>Notes</h2><ul>" + "".join(f"<li>{e(note)}</li>" for note in result["notes"]) + "</ul>",
    ]
    for protocol in PROTOCOLS:
        if protocol in result:
            parts.append(_protocol_html(result, protocol))
    parts.append("<h2>Metrics</h2><table><tr><th>metric</th><th>what it measures</th></tr>")
    for key in result["metrics"]:
        parts.append(f"<tr><td>{e(_metric_label(key))}</td><td style='text-align:left'>{e(BY_KEY[key].description)}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def _protocol_html(result: dict[str, Any], protocol: str) -> str:
    e = html.escape
    part = result[protocol]
    methods = result["methods"]
    keys = _metric_keys(result, protocol)
    rows = part[part["unit"]]
    counts = f"{part['counts']['ok']} of {part['counts']['total']} {part['unit']} evaluated"
    out = [f"<h2>{PROTOCOL_TITLES[protocol]}</h2>", f"<p>{counts}; mean over them, with the 95% bootstrap interval (resampling them).</p>"]
    out.append("<table><tr><th>metric</th>" + "".join(f"<th>{e(m)}</th>" for m in methods) + "<th>n</th></tr>")
    for key in keys:
        cells = "".join(f"<td>{e(format_summary(part['aggregate'][m].get(key), key))}</td>" for m in methods)
        sample_counts = {str((part["aggregate"][m].get(key) or {}).get("n", 0)) for m in methods}
        out.append(f"<tr><td>{e(_metric_label(key))}</td>{cells}<td>{e('/'.join(sorted(sample_counts)))}</td></tr>")
    out.append("</table><div class='charts'>")
    for key in keys:
        chart = bar_chart(key, methods, [part["aggregate"][m].get(key) for m in methods])
        out.append(f"<img alt='{e(BY_KEY[key].label)}' src='data:image/png;base64,{chart}'>")
    out.append("</div>")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        out.append("<h3>Failed</h3><ul class='failed'>")
        out.extend(f"<li>{e(_row_name(r))}: {e(r['reason'])}</li>" for r in failed)
        out.append("</ul>")
    clip_keys = [k for k in keys if k != "frechet_dlib"]
    out.append(f"<details><summary>Per {part['unit'][:-1]} ({len(rows)})</summary><table><tr><th>{part['unit'][:-1]}</th><th>method</th>")
    out.append("".join(f"<th>{e(BY_KEY[k].label)}</th>" for k in clip_keys) + "</tr>")
    for row in rows:
        if row["status"] != "ok":
            out.append(f"<tr class='failed'><td>{e(_row_name(row))}</td><td colspan='{len(clip_keys) + 1}'>failed: {e(row['reason'])}</td></tr>")
            continue
        for method in methods:
            values = row["methods"][method]
            cells = "".join(f"<td>{e(format_value(values.get(k), k))}</td>" for k in clip_keys)
            out.append(f"<tr><td>{e(_row_name(row))}</td><td>{e(method)}</td>{cells}</tr>")
    out.append("</table></details>")
    strips = [r for r in rows if r.get("strip")]
    if strips:
        out.append(f"<details><summary>Image strips ({len(strips)})</summary>")
        if protocol == VIDEO:
            out.append(
                "<p>Each frame shown wider than the generated crop; the last columns are |output − source frame|, brightened, with the "
                "generated crop's edge outlined: the output may differ from its source frame only inside it, and a seam shows as an edge there.</p>"
            )
        out.extend(f"<div class='strip'><p>{e(_row_name(r))}</p><img loading='lazy' src='{e(r['strip'])}' alt='{e(_row_name(r))}'></div>" for r in strips)
        out.append("</details>")
    if part.get("expression_regions"):
        out.append(_expression_html(part["expression_regions"], methods, rows))
    return "\n".join(out)


def _expression_html(regions: dict[str, Any], methods: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """The cross-identity protocol's expression by region: r and amplitude ratio per signal and
    method, and the strips of each pair's rest, blink and brow frames."""
    e = html.escape
    out = [
        "<h3>Expression by region over consecutive frames</h3>",
        (
            f"<p>{regions['pairs']} pairs, each driven by up to {regions['frames']} consecutive frames from the clip's first tracked "
            "frame. <b>r</b>: Pearson correlation over time between the driver's and the output's signal, mean over pairs "
            "[95% bootstrap interval]; <b>ratio</b>: its amplitude, std(output) / std(driver), median over pairs (1: as far as "
            "the driver; 0: still). Frames where an instrument found no face are left out of its signals. "
            f"{e(expression_instruments_note(regions))}</p>"
        ),
        "<table><tr><th>signal</th>" + "".join(f"<th>{e(m)}: r</th><th>{e(m)}: ratio</th>" for m in methods) + "<th>n</th><th>what it follows</th></tr>",
    ]
    for instrument, names in regions["signals"].items():
        check = " (independent check)" if regions["independent_check"] in (instrument, "both") else ""
        out.append(f"<tr><th colspan='{2 * len(methods) + 3}'>{e(INSTRUMENTS[instrument])}{check}</th></tr>")
        for name, description in names.items():
            summaries = [regions["methods"][m][instrument][name] for m in methods]
            cells = "".join(f"<td>{e(format_summary(s['r'], name))}</td><td>{e(format_value(s['ratio']['median']))}</td>" for s in summaries)
            counts = "/".join(sorted({str(s["r"]["n"]) for s in summaries}))
            out.append(f"<tr><td>{e(name)}</td>{cells}<td>{e(counts)}</td><td style='text-align:left'>{e(description)}</td></tr>")
    out.append("</table>")
    strips = [r for r in rows if r.get("expression_strip")]
    if strips:
        out.append(f"<details><summary>Expression strips ({len(strips)}): the driver resting, blinking and moving its brows, beside each output</summary>")
        for row in strips:
            shown = ", ".join(f"{role} (frame {frame})" for role, frame in row["expression_window"]["strip_frames"].items())
            out.append(f"<div class='strip'><p>{e(_row_name(row))}; rows: {e(shown)}</p>"
                       f"<img loading='lazy' src='{e(row['expression_strip'])}' alt='{e(_row_name(row))}'></div>")  # fmt: skip
        out.append("</details>")
    return "\n".join(out)


def _row_name(row: dict[str, Any]) -> str:
    return row["clip"] if "clip" in row else f"{row['source']} driven by {row['driving']}"


# ---- files ----------------------------------------------------------------------------------------------
def write_report(result: dict[str, Any], strips: dict[str, bytes], folder: Path) -> tuple[Path, Path]:
    """Write ``metrics.json``, ``report.html`` and the strips into ``folder`` (created if needed),
    each file atomically."""
    try:
        (folder / "strips").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the report folder {folder}: {error.strerror or error}") from None
    for relative, data in strips.items():
        with atomic_output(folder / relative) as tmp:
            tmp.write_bytes(data)
    metrics_path, report_path = folder / "metrics.json", folder / "report.html"
    with atomic_output(metrics_path) as tmp:
        tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False, allow_nan=False))
    with atomic_output(report_path) as tmp:
        tmp.write_text(render_html(result), encoding="utf-8")
    return metrics_path, report_path
