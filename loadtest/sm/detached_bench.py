#!/usr/bin/env python3
"""Memory per detached vs attached idle session (XEP-0198), all-in-one Switchyard, direct TLS.

    BIN_DIR=target/release python3 loadtest/sm/detached_bench.py [ROUNDS]

BIN_DIR holds release builds of `switchyard` and `switchyard-loadtest` (default
target/release); WORK (default /tmp/detached-bench) is scratch space. Per round: fresh data
dir, provision accounts, start the server (self-signed dev cert generated on first start),
read RSS/fds before; start `switchyard-loadtest idle --transport tls --sm`, wait for "N of M
sessions up", wait SETTLE s, read RSS/fds (attached); kill -9 the generator, read RSS/fds
at DETACHED_AT s after the kill (10 s and 30 s: detached10, detached30); stop the server.
Admin /metrics gauges (connections{listener="direct_tls"}, sm_detached_sessions, sessions)
are read at every reading. Everything on loopback. Default allocator settings:
_RJEM_MALLOC_CONF is removed from the server's environment.
"""
import json, os, re, signal, socket, statistics, subprocess, sys, threading, time, urllib.request, shutil

# Shared with the web idle benchmark (loadtest/web/idle_common.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "web"))
from idle_common import established, rss_kib  # noqa: E402

BIN_DIR = os.environ.get("BIN_DIR", "target/release")
SRV = os.path.join(BIN_DIR, "switchyard")
LT = os.path.join(BIN_DIR, "switchyard-loadtest")
WORK = os.environ.get("WORK", "/tmp/detached-bench")
PORT = 26223
ADMIN = 26400
PW = "benchpass123"
N = 2000
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
SETTLE = 10
DETACHED_AT = (10, 30)  # seconds after kill -9 of the generator
BASELINE = 5
UP_LINE = re.compile(r"^(\d+) of (\d+) sessions up after ([\d.]+) s")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])


def bg_threads(pid):
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().startswith("jemalloc_bg"):
                    n += 1
        except OSError:
            pass
    return n


def gauges():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError as e:
        return {"error": repr(e)}
    out = {"sessions": None, "sm_detached": None, "connections_direct_tls": None,
           "connections_all_listeners": 0, "raw": []}
    for line in text.splitlines():
        if line.startswith(("switchyard_edge_sessions", "switchyard_edge_sm_detached_sessions",
                            "switchyard_edge_connections")):
            out["raw"].append(line)
        if line.startswith("switchyard_edge_sessions "):
            out["sessions"] = int(float(line.split()[-1]))
        elif line.startswith("switchyard_edge_sm_detached_sessions "):
            out["sm_detached"] = int(float(line.split()[-1]))
        elif line.startswith("switchyard_edge_connections{"):
            v = int(float(line.split()[-1]))
            out["connections_all_listeners"] += v
            if 'listener="direct_tls"' in line:
                out["connections_direct_tls"] = v
    return out


def snap(pid, label):
    s = {"state": label, "t": round(time.time(), 1), "rss_kib": rss_kib(pid), "fds": fds(pid),
         "threads": threads(pid), "jemalloc_bg_threads": bg_threads(pid), "established": established(PORT), "gauges": gauges()}
    print(f"  {label}: {s}", file=sys.stderr, flush=True)
    return s


def server_env(data_dir):
    env = dict(os.environ)
    env.pop("_RJEM_MALLOC_CONF", None)  # default allocator settings only
    env.pop("MALLOC_CONF", None)
    env.update({
        "SWITCHYARD_DATA_DIR": data_dir,
        "SWITCHYARD_LISTEN__C2S": "",
        "SWITCHYARD_LISTEN__WEBSOCKET": "",
        "SWITCHYARD_LISTEN__COMPONENT": "",
        "SWITCHYARD_CLUSTER__RPC_LISTEN": "127.0.0.1:26740",
        "SWITCHYARD_LISTEN__C2S_DIRECT_TLS": f"127.0.0.1:{PORT}",
        "SWITCHYARD_ADMIN__LISTEN": f"127.0.0.1:{ADMIN}",
        "SWITCHYARD_LIMITS__MAX_CONNECTIONS_PER_IP": "100000",
        "SWITCHYARD_LIMITS__MAX_CONCURRENT_HANDSHAKES_PER_IP": "1000",
        "SWITCHYARD_TIMEOUTS__DRAIN_DELAY_SECS": "0",
        "SWITCHYARD_TIMEOUTS__SHUTDOWN_GRACE_SECS": "2",
        "RUST_LOG": "warn",
    })
    return env


def wait_listening(proc, port, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("not listening")
            time.sleep(0.2)


def one_round(rnd):
    rec = {"round": rnd}
    data = os.path.join(WORK, f"data-r{rnd}")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    prov = [LT, "provision", "--data-dir", data, "--users", str(N), "--password", PW]
    rec["provision_cmd"] = " ".join(prov)
    t = time.monotonic()
    p = subprocess.run(prov, capture_output=True, text=True, timeout=300)
    rec["provision_rc"] = p.returncode
    rec["provision_out"] = (p.stdout + p.stderr)[-500:]
    rec["provision_secs"] = round(time.monotonic() - t, 1)
    if p.returncode != 0:
        raise RuntimeError(f"provision failed: {p.stderr[-500:]}")
    log_path = os.path.join(WORK, f"server-r{rnd}.log")
    log = open(log_path, "w")
    srv = subprocess.Popen([SRV, "serve"], env=server_env(data), stdout=log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
    pid = srv.pid
    rec["server_pid"] = pid
    gen = None
    try:
        wait_listening(srv, PORT)
        time.sleep(BASELINE)
        rec["cert_generated"] = os.path.exists(os.path.join(data, "dev-cert.pem"))
        before = snap(pid, "before")
        cmd = [LT, "idle", "--server", f"127.0.0.1:{PORT}", "--transport", "tls", "--sm",
               "--password", PW, "--users", str(N), "-n", str(N), "--arrival-rate", "500",
               "--concurrency", "50", "--duration-secs", "120", "--server-pid", str(pid),
               "--json", "--quiet"]
        rec["generator_cmd"] = " ".join(cmd)
        gen_err = open(os.path.join(WORK, f"gen-r{rnd}.stderr"), "w")
        gen_out = open(os.path.join(WORK, f"gen-r{rnd}.stdout"), "w")
        t0 = time.monotonic()
        gen = subprocess.Popen(cmd, stdout=gen_out, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
        rec["generator_pid"] = gen.pid
        up = threading.Event()
        info = {}
        lines = []

        def reader():
            for line in gen.stderr:
                lines.append(line.rstrip())
                gen_err.write(line)
                m = UP_LINE.match(line)
                if m and not up.is_set():
                    info.update(up=int(m[1]), of=int(m[2]), secs=float(m[3]))
                    up.set()

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        if not up.wait(180):
            raise RuntimeError(f"no 'sessions up' line within 180 s; stderr tail {lines[-5:]}")
        rec["up"] = info
        rec["up_wall_secs"] = round(time.monotonic() - t0, 2)
        samples = []
        t_up = time.monotonic()
        while time.monotonic() - t_up < SETTLE:
            time.sleep(1)
            samples.append(rss_kib(pid))
        rec["attached_samples_kib"] = samples
        attached = snap(pid, "attached")
        rec["generator_alive_at_attached"] = gen.poll() is None
        os.kill(gen.pid, signal.SIGKILL)
        t_kill = time.monotonic()
        gen.wait(10)
        th.join(5)
        gen_err.close(); gen_out.close()
        rec["generator_stderr_tail"] = lines[-5:]
        dsamples = []
        detached = {}
        for at in DETACHED_AT:
            while True:
                left = t_kill + at - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(1.0, left))
                if time.monotonic() - t_kill < at - 0.05:
                    dsamples.append({"t": round(time.monotonic() - t_kill, 1), "rss": rss_kib(pid), "fds": fds(pid)})
            d = snap(pid, f"detached{at}")
            d["secs_after_kill"] = round(time.monotonic() - t_kill, 2)
            detached[at] = d
        rec["detached_samples"] = dsamples
        rec["before"], rec["attached"] = before, attached
        for at in DETACHED_AT:
            rec[f"detached{at}"] = detached[at]
        held = info["up"]
        rec["sessions_up"] = held
        rec["kib_per_session_attached"] = round((attached["rss_kib"] - before["rss_kib"]) / N, 2)
        for at in DETACHED_AT:
            rec[f"kib_per_session_detached{at}"] = round((detached[at]["rss_kib"] - before["rss_kib"]) / N, 2)
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill(); gen.wait(10)
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(30); rec["server_stop"] = "sigterm"
            except subprocess.TimeoutExpired:
                srv.kill(); srv.wait(10); rec["server_stop"] = "sigkill"
        else:
            rec["server_stop"] = f"already-exited:{srv.returncode}"
        rec["server_rc"] = srv.returncode
        log.close()
        with open(log_path) as f:
            ll = f.readlines()
        rec["server_log_lines"] = len(ll)
        rec["server_log_warn_error"] = [l.rstrip()[:300] for l in ll if " WARN " in l or " ERROR " in l][-10:]
    return rec


def main():
    records = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for rnd in range(1, ROUNDS + 1):
        print(f"round {rnd}", file=sys.stderr, flush=True)
        try:
            rec = one_round(rnd)
        except Exception as e:
            rec = {"round": rnd, "failure": repr(e)}
        records.append(rec)
        print(f"round {rnd}: attached {rec.get('kib_per_session_attached')} KiB/s, detached@10 "
              f"{rec.get('kib_per_session_detached10')}, detached@30 {rec.get('kib_per_session_detached30')} "
              f"KiB/s, up {rec.get('up')}, failure {rec.get('failure')}",
              file=sys.stderr, flush=True)
        with open(os.path.join(WORK, "results.json"), "w") as f:
            json.dump({"started": started, "records": records}, f, indent=1)
        time.sleep(3)
    ok = [r for r in records if "failure" not in r]
    if ok:
        print("median attached", statistics.median(r["kib_per_session_attached"] for r in ok),
              "detached@10", statistics.median(r["kib_per_session_detached10"] for r in ok),
              "detached@30", statistics.median(r["kib_per_session_detached30"] for r in ok))


if __name__ == "__main__":
    main()
