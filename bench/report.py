"""bench/run's output: the markdown table (results.md) and the PNG plots, from result rows."""
import os

from benchlib import format_value

SECTION_TITLES = {
    "plain": "Plain init",
    "signals": "Signal forwarding and reaping",
    "secrets": "Start with secrets (AppRole, OpenBao on loopback)",
    "fleet": "Fleet start against one OpenBao",
    "tls": "TLS: what one start costs Vault, by connection strategy",
    "steady": "Steady state while supervising",
    "redact": "--redact throughput",
    "size": "Binary size",
}


def ratio_text(row, by_case):
    peer = row.get("peer")
    if not peer or peer == row["tool"]:
        return ""
    other = by_case.get((row["section"], row["case"], peer))
    if not other or not other["median"] or other["median"] != other["median"]:
        return ""
    return f"{row['median'] / other['median']:.2f}x {peer}"


def markdown(rows, notes, machine, date, command, quick, out):
    by_case = {(r["section"], r["case"], r["tool"]): r for r in rows}
    runs = sorted({(r["date"], r.get("binary", "unknown")) for r in rows})
    sections_of = {run: sorted({r["section"] for r in rows if (r["date"], r.get("binary", "unknown")) == run},
                               key=list(SECTION_TITLES).index) for run in runs}
    lines = [
        "# vinit benchmark results",
        "",
        f"- machine: {machine}",
        f"- last run: `{command}`{' (quick mode)' if quick else ''}",
        *(f"- {run[0]}, vinit {run[1]}: {', '.join(sections_of[run])}" for run in runs),
        "- each cell: median [p25–p75] over n samples; ratio: median / the named peer's median, same case,"
        " same run (tools interleaved round by round)",
        "",
    ]
    for section, title in SECTION_TITLES.items():
        section_rows = [r for r in rows if r["section"] == section]
        if not section_rows and section not in notes:
            continue
        lines += [f"## {title}", ""]
        if section_rows:
            lines += ["| case | tool | median | p25–p75 | n | ratio |", "| --- | --- | ---: | ---: | ---: | --- |"]
            previous_case = None
            for r in section_rows:
                case = r["case"] if r["case"] != previous_case else ""
                previous_case = r["case"]
                spread = f"{format_value(r['p25'], r['unit'])}–{format_value(r['p75'], r['unit'])}" if r["n"] > 1 else ""
                detail = f" ({r['detail']})" if r.get("detail") else ""
                lines.append(f"| {case} | {r['tool']}{detail} | {format_value(r['median'], r['unit'])} | {spread} "
                             f"| {r['n']} | {ratio_text(r, by_case)} |")
            lines.append("")
        for note in notes.get(section, []):
            lines.append(f"- {note}")
        if notes.get(section):
            lines.append("")
    plots = [p for p in ("startup.png", "fleet.png") if os.path.exists(os.path.join(out, p))]
    for plot in plots:
        lines += [f"![{plot}]({plot})", ""]
    text = text_plot(rows)
    if text:
        lines += ["The start-up plot as text:", "", "```", text, "```", ""]
    return "\n".join(lines)


PID1_CASE = "INIT -- /bin/true, PID 1 (new PID namespace)"


def startup_rows(rows):
    """The rows the start-up plot shows: the plain init as PID 1, and every start with secrets."""
    return [r for r in rows if (r["section"] == "secrets" and not r["case"].startswith("vinit's own"))
            or (r["section"] == "plain" and r["case"] == PID1_CASE)]


def text_plot(rows, width=40):
    """startup.png as text (for a terminal, a closing note, a diff): one bar per tool and case,
    log scale, each bar's length proportional to log(median / the smallest median)."""
    import math
    startup = [r for r in startup_rows(rows) if r["median"] and r["median"] > 0]
    if not startup:
        return ""
    low = min(r["median"] for r in startup)
    high = max(r["median"] for r in startup)
    span = math.log10(high / low) or 1.0
    label_width = max(len(r["tool"]) for r in startup)
    lines = [f"time to the app's first step, ms, log scale ({low:.3g} to {high:,.0f})"]
    for case in dict.fromkeys(r["case"] for r in startup):
        lines += ["", case.replace(PID1_CASE, "plain init as PID 1") + ":"]
        for r in (r for r in startup if r["case"] == case):
            bar = "#" * (1 + round(width * math.log10(r["median"] / low) / span))
            value = f"{r['median']:,.0f}" if r["median"] >= 100 else f"{r['median']:.3g}"
            lines.append(f"  {r['tool']:<{label_width}} {bar} {value}")
    return "\n".join(lines)


def plots(rows, out, machine, date):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    startup = startup_rows(rows)
    if startup:
        cases = list(dict.fromkeys(r["case"] for r in startup))
        fig, ax = plt.subplots(figsize=(11, 5.5))
        labels, medians, lows, highs, colors = [], [], [], [], []
        palette = {"vinit": "#1f77b4"}
        for case in cases:
            for r in (r for r in startup if r["case"] == case):
                short = case.replace(PID1_CASE, "plain init as PID 1")
                labels.append(f"{short}: {r['tool']}")
                medians.append(r["median"])
                lows.append(max(r["median"] - r["p25"], 0))
                highs.append(max(r["p75"] - r["median"], 0))
                colors.append(palette.get(r["tool"], "#ff7f0e" if "Agent" in r["tool"] else "#999999"))
        y = range(len(labels))
        ax.barh(y, medians, xerr=[lows, highs], color=colors)
        ax.set_yticks(list(y), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("time to the app's first step, ms (log scale; median, p25–p75)")
        ax.set_title(f"Start-up per tool ({date}; {machine})", fontsize=8)
        for i, m in enumerate(medians):
            ax.text(m, i, f" {m:,.0f}" if m >= 100 else f" {m:.3g}", va="center", fontsize=6)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "startup.png"), dpi=110)
        plt.close(fig)

    fleet = [r for r in rows if r["section"] == "fleet" and r["case"].startswith("time to app start")]
    if fleet:
        fig, ax = plt.subplots(figsize=(8, 5))
        for index, variant in enumerate(dict.fromkeys(r["tool"] for r in fleet)):
            points = sorted((r["detail_n"], r["median"], r["p99"]) for r in fleet if r["tool"] == variant)
            ns = [p[0] for p in points]
            color = f"C{index}"
            ax.plot(ns, [p[1] for p in points], marker="o", color=color, label=f"{variant} p50")
            ax.plot(ns, [p[2] for p in points], marker="^", linestyle="--", color=color, label=f"{variant} p99")
        ax.set_xticks(sorted({r["detail_n"] for r in fleet}))
        ax.set_xlabel("vinit instances released at once")
        ax.set_ylabel("release to app start, ms")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.set_title(f"Fleet start against one OpenBao ({date}; {machine})", fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "fleet.png"), dpi=110)
        plt.close(fig)
