#!/usr/bin/env python3
"""Summarizes one bench.sh run: reads the generator's JSON reports in DIR (named
SERVER-MEASUREMENT.json), writes DIR/summary.json and prints a markdown table with
Switchyard's ratio to each other server.

    python3 loadtest/summarize.py loadtest/results/20261124T200000Z-quick quick
"""

import json
import pathlib
import sys

SERVERS = ["switchyard", "ejabberd", "prosody"]


def load(d: pathlib.Path) -> dict:
    out: dict = {}
    for f in sorted(d.glob("*-*.json")):
        if f.name == "summary.json":
            continue
        server, name = f.stem.split("-", 1)
        try:
            out.setdefault(server, {})[name] = json.loads(f.read_text())
        except json.JSONDecodeError:
            print(f"warning: {f} is not JSON (run interrupted?)", file=sys.stderr)
    return out


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
    table = {s: figures(data[s]) for s in servers}
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
            cells.append(fmt(v[0] if v else None) + (f" {v[1]}" if v and v[1] not in ("", "/s") else ""))
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
        for name, r in sorted(data[s].items()):
            print(f"\n{s} {name}: generator CPU {r.get('generator_cpu_seconds', 0):.1f} s over "
                  f"{r.get('wall_seconds', 0):.0f} s wall; errors {r.get('errors')}")


if __name__ == "__main__":
    main()
