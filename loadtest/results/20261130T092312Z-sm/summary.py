import json, pathlib, re, statistics, sys
out = pathlib.Path(sys.argv[1])
loads = {}
for line in (out / "load.log").read_text().splitlines():
    m = re.match(r"(\S+) (\S+) load (\S+) (\S+) (\S+) rustc=(\d+)", line)
    if m:
        loads[m.group(2)] = (float(m.group(3)), int(m.group(6)))
med = statistics.median
groups = {}
for p in sorted(out.glob("*.json")):
    base = re.sub(r"\.r\d+$", "", p.stem)
    groups.setdefault(base, []).append(p)
print("| run | rounds | load (1 min) at start | figure (median) | per round |")
print("| --- | --- | --- | --- | --- |")
for base, paths in groups.items():
    reps = [json.loads(p.read_text()) for p in paths]
    ld = [loads.get(p.stem, (float("nan"), 0))[0] for p in paths]
    rustc = sum(1 for p in paths if loads.get(p.stem, (0, 0))[1] > 0)
    lds = ", ".join(f"{x:.2f}" for x in ld) + (f" (rustc running at {rustc} of the starts)" if rustc else "")
    if reps[0]["scenario"] == "idle":
        k = [r["idle"]["kib_per_session"] for r in reps]
        held = [r["idle"]["sessions_held"] for r in reps]
        errs = [sum(r["errors"].values()) for r in reps]
        print(f"| {base} | {len(reps)} | {lds} | {med(k):.2f} KiB/session | " +
              "; ".join(f"{a:.2f} KiB ({h} held, {e} errors)" for a, h, e in zip(k, held, errs)) + " |")
    else:
        rs = [r["resume"] for r in reps]
        ps = [x["per_second"] for x in rs]
        back = [x["all_back_seconds"] for x in rs]
        p50 = [x["time"]["p50_ms"] for x in rs]
        p99 = [x["time"]["p99_ms"] for x in rs]
        cpu = [x["server_cpu_ms_per_success"] for x in rs]
        print(f"| {base} | {len(reps)} | {lds} | {med(ps):.0f}/s, all back {med(back):.2f} s, p50 {med(p50):.1f} ms, p99 {med(p99):.1f} ms, server CPU {med(cpu):.3f} ms each | " +
              "; ".join(f"{x['succeeded']}/{x['reconnects']} ok, {x['failed']} failed {x['failures'] or ''}, {x['per_second']:.0f}/s, {x['all_back_seconds']:.2f} s, p50 {x['time']['p50_ms']:.1f} p90 {x['time']['p90_ms']:.1f} p99 {x['time']['p99_ms']:.1f} max {x['time']['max_ms']:.1f} ms, CPU {x['server_cpu_seconds']:.2f} s, h-mismatch {x['h_mismatches']}, after {x['stanzas_after']}, login errors {sum(r['errors'].values())}"
                        for x, r in zip(rs, reps)) + " |")
