#!/usr/bin/env python3
"""Summarizes one bench.sh run: reads the generator's JSON reports in DIR (named
SERVER-MEASUREMENT.json, or SERVER-MEASUREMENT.rN.json for repeated rounds), writes
DIR/summary.json and prints a markdown table with Switchyard's ratio to each other server.
A figure measured in several rounds is the median of the rounds, with their range.

    python3 loadtest/summarize.py loadtest/results/20261124T200000Z-quick quick
"""

import json
import pathlib
import statistics
import sys

SERVERS = ["switchyard", "ejabberd", "prosody"]


def load(d: pathlib.Path) -> dict:
    """server -> round -> measurement -> report (round 0 when not repeated)."""
    out: dict = {}
    for f in sorted(d.glob("*-*.json")):
        if f.name == "summary.json":
            continue
        server, name = f.stem.split("-", 1)
        name, _, rnd = name.partition(".r")
        try:
            report = json.loads(f.read_text())
        except json.JSONDecodeError:
            print(f"warning: {f} is not JSON (run interrupted?)", file=sys.stderr)
            continue
        out.setdefault(server, {}).setdefault(int(rnd or 0), {})[name] = report
    return out


def combined(rounds: dict) -> dict:
    """Measurement name -> (median value, unit, higher_is_better, (min, max, n))."""
    per_round = [figures(reports) for _, reports in sorted(rounds.items())]
    rows: dict = {}
    for k in dict.fromkeys(k for f in per_round for k in f):
        values = [f[k][0] for f in per_round if k in f and f[k][0] is not None]
        _, unit, high = next(f[k] for f in per_round if k in f)
        if not values:
            rows[k] = (None, unit, high, None)
            continue
        rows[k] = (statistics.median(values), unit, high, (min(values), max(values), len(values)))
    return rows


def figures(reports: dict) -> dict:
    """Measurement name -> (value, unit, higher_is_better)."""
    rows: dict = {}
    for name, r in sorted(reports.items()):
        if name.startswith("idle-"):
            i = r.get("idle") or {}
            rows[f"{name}: KiB per idle session"] = (i.get("kib_per_session"), "KiB", False)
            rows[f"{name}: sessions held"] = (i.get("sessions_held"), "", True)
        elif name.startswith("storm-"):
            rows[f"login storm {name[6:]}: logins/s"] = (r.get("logins_per_second"), "/s", True)
            rows[f"login storm {name[6:]}: login p99"] = (r["login_time"]["p99_ms"], "ms", False)
        elif name == "chat":
            sat, half = r.get("saturation"), r.get("half_saturation")
            if sat:
                rows["chat saturation (1,000 users): delivered msgs/s"] = (sat["delivered_per_second"], "/s", True)
                rows["chat at saturation: p99"] = (sat["latency"]["p99_ms"], "ms", False)
            if half:
                rows["chat at half saturation: p50"] = (half["latency"]["p50_ms"], "ms", False)
                rows["chat at half saturation: p99"] = (half["latency"]["p99_ms"], "ms", False)
                rows["server CPU s per 100k msgs (half saturation)"] = (half["server_cpu_seconds_per_100k"], "s", False)
                rows["generator CPU s per 100k msgs (half saturation)"] = (
                    half["generator_cpu_seconds"] * 100_000 / max(half["delivered"], 1), "s", False)
            if not sat and not half:  # fixed rates, or no good step: each step as it ran
                for step in r.get("steps", []):
                    at = f"chat at {step['offered_rate']:,.0f} msgs/s"
                    rows[f"{at}: p50"] = (step["latency"]["p50_ms"], "ms", False)
                    rows[f"{at}: p99"] = (step["latency"]["p99_ms"], "ms", False)
                    rows[f"{at}: lost"] = (step["lost"], "", False)
                    rows[f"{at}: good step (within --max-p99-ms and --min-delivery) 1, else 0"] = (
                        int(step["good"]), "", True)
                    rows[f"{at}: server CPU s per 100k msgs"] = (step["server_cpu_seconds_per_100k"], "s", False)
    for name, r in sorted(reports.items()):
        if r.get("errors"):
            rows[f"{name}: errors"] = (sum(r["errors"].values()), "", False)
    return rows


def fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return f"{v:,}"


def main() -> None:
    d = pathlib.Path(sys.argv[1])
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    data = load(d)
    servers = [s for s in SERVERS if s in data]
    table = {s: combined(data[s]) for s in servers}
    keys = list(dict.fromkeys(k for s in servers for k in table[s]))
    summary = {"mode": mode, "figures": {s: {k: v[0] for k, v in table[s].items()} for s in servers}}
    (d / "summary.json").write_text(json.dumps(summary, indent=2))
    others = [s for s in servers if s != "switchyard"]
    head = ["measurement"] + servers + [f"Switchyard vs {o}" for o in others if "switchyard" in servers]
    print(f"Benchmark ({mode}), {d.name}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for k in keys:
        cells = [k]
        better_high = True
        for s in servers:
            v = table[s].get(k)
            if v:
                better_high = v[2]
            cell = fmt(v[0] if v else None) + (f" {v[1]}" if v and v[1] not in ("", "/s") else "")
            if v and v[3] and v[3][2] > 1:
                cell += f" ({fmt(v[3][0])}–{fmt(v[3][1])}, n={v[3][2]})"
            cells.append(cell)
        if "switchyard" in servers:
            mine = table["switchyard"].get(k, (None,))[0]
            for o in others:
                theirs = table[o].get(k, (None,))[0]
                if mine and theirs and not any(w in k for w in ("errors", "held", "generator")):
                    ratio = mine / theirs if better_high else theirs / mine
                    cells.append(f"{ratio:.2f}× {'better' if ratio >= 1 else 'worse'}")
                else:
                    cells.append("–")
        print("| " + " | ".join(cells) + " |")
    for s in servers:
        for rnd, name, r in sorted((rnd, n, r) for rnd, rs in data[s].items() for n, r in rs.items()):
            name = f"{name}.r{rnd}" if rnd else name
            print(f"\n{s} {name}: generator CPU {r.get('generator_cpu_seconds', 0):.1f} s over "
                  f"{r.get('wall_seconds', 0):.0f} s wall; errors {r.get('errors')}")


if __name__ == "__main__":
    main()
