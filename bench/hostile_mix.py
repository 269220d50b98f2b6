"""Hostile load beside normal load (issue #31): do 20 normal clients stay fast, with no 5xx and the server's
memory bounded, while hostile clients send the probe's cases?

    HF_HUB_OFFLINE=1 .venv/bin/python bench/hostile_mix.py [--library corpus] [--clients 20] [--seconds 60]

Copies the library into a temporary folder, indexes it (not timed), starts `assistant serve` on a free
loopback port (an api_token, an admin_token, loopback links allowed, a small question_log_rows) and runs two
phases of --seconds, each with --clients normal clients asking the questions of bench/api_load.py over
POST /api/ask in a loop:

1. quiet: the normal clients alone;
2. hostile: the same normal clients, and beside them one client per case (each in a loop; an upload or a
   link waits for its job to end before it is sent again):
   - an Office zip bomb: a ~0.4 MB .docx whose main part, not named .xml, unpacks to 400 MB;
   - a 3 KB PDF whose page draws nested forms, 100 M characters of text (pypdf stops at 5,000 form
     invocations: 4.5 M characters, under max_file_chars, are indexed: ~11,000 passages to embed);
   - a 40 MB .csv of 1.6 M rows;
   - links: one whose server sends its headers a byte every 0.5 s (a loopback server), one with a NUL in its
     host, one at an IPv6 form of 127.0.0.1;
   - JSON nested 100,000 deep to /v1/chat/completions;
   - questions over max_question_chars, and 2,000-character worst-case questions;
   - a flood of the question log (--flood clients asking new questions, past question_log_rows);
   - an admin reading Insights and downloading questions.csv every 5 s.

Prints per phase the normal clients' p50/p95, the ratio of the hostile phase's p95 to the quiet one's (the
aim: at most 1.5x), each hostile case's replies and its jobs' outcomes, every 5xx, and the peak RSS of the
server and of its reader process (sampled every 0.25 s; the server's VmHWM too). Loopback only, bounded in
time. Exit status 1 on a 5xx or a failed normal question.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The hostile files are the probe test's own (tests/test_probe.py), built the same way here.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from api_load import QUESTIONS, _peak_rss_kb, percentile, serving  # noqa: E402
from mixed_load import WORST, ask_loop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKEN, ADMIN = "mixed-load-token", "mixed-load-admin"  # mixed_load's ask_loop sends TOKEN
AUTH, ADMIN_AUTH = {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": f"Bearer {ADMIN}"}
# Seconds a job sent during the hostile phase is followed after it (not timed) for its outcome.
JOB_GRACE = 240
LOG_ROWS = 2000  # question_log_rows of the server: the flood goes past it within a phase


def docx_bomb(unpacked_mb: int) -> bytes:
    """A real Word file whose main part is `word/document.bin` (the relationships say so), padded with white
    space after its root element: small to send, `unpacked_mb` MB unpacked (the probe test's own file)."""
    from test_probe import write_docx

    with tempfile.TemporaryDirectory() as folder:
        return write_docx(Path(folder) / "bomb.docx", unpacked_mb).read_bytes()


def pdf_bomb(depth: int = 6, fan: int = 10) -> bytes:
    """A one-page PDF of a few KB whose page draws a form that draws the next `fan` times, `depth` deep:
    1,000 x fan ** (depth - 1) characters of text (the probe test's own file)."""
    from test_probe import form_bomb

    with tempfile.TemporaryDirectory() as folder:
        return form_bomb(Path(folder) / "bomb.pdf", depth, fan).read_bytes()


def big_csv(mb: int) -> bytes:
    row = b"SKU-000000,Widget with a long enough description,12.50\n"
    return b"sku,name,price\n" + row * (mb * 1_000_000 // len(row))


class SlowHeaders(BaseHTTPRequestHandler):
    """A loopback page whose header line never ends: a byte every 0.5 s."""

    def do_GET(self):  # noqa: N802 (the standard library's name)
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: ")
            while True:
                self.wfile.write(b"a")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            return  # the client gave up

    def log_message(self, *args):
        pass


class Tally:
    """Each hostile case's replies (status codes, or the exception's name) and its jobs' outcomes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.replies: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def reply(self, case: str, r: httpx.Response | Exception) -> httpx.Response | None:
        with self.lock:
            self.replies[case][r.status_code if isinstance(r, httpx.Response) else type(r).__name__] += 1
        return r if isinstance(r, httpx.Response) else None

    def fivexx(self) -> int:
        return sum(n for c in self.replies.values() for code, n in c.items() if isinstance(code, int) and code >= 500)


def hostile_cases(slow_url: str, flood: int) -> list[tuple[str, object]]:
    """(case, one round(client, tally, stop)) for each hostile client."""
    bomb, pdf, csv = docx_bomb(400), pdf_bomb(), big_csv(40)
    links = [slow_url, "http://exa\x00mple.com/page", "http://[::127.0.0.1]/", "http://[::ffff:127.0.0.1]/"]
    nested = b'{"model": "seller-assistant", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    def job(case: str, c: httpx.Client, tally: Tally, stop, **request) -> None:
        """Send a library change, then wait for its job to end (or the phase), and tally each file's outcome."""
        r = tally.reply(case, _try(lambda: c.post("/api/documents", headers=ADMIN_AUTH, **request)))
        if r is None or r.status_code != 202:
            time.sleep(1)  # a refusal (429: changes waiting): try again soon
            return
        given_up = time.monotonic() + JOB_GRACE  # past the phase too: its outcome is what the case shows
        while time.monotonic() < given_up:
            state = c.get(r.json()["url"], headers=ADMIN_AUTH).json()
            if state["state"] in ("done", "failed"):
                with tally.lock:
                    for f in state["files"] or [{"status": "failed", "reason": state["error"]}]:
                        tally.outcomes[case][f"{f['status']}: {(f['reason'] or '; '.join(f['warnings']))[:90]}"] += 1
                return
            time.sleep(0.5)

    def upload(case: str, name: str, data: bytes, kind: str):
        return lambda c, t, stop: job(case, c, t, stop, files=[("files", (name, data, kind))])

    def ask(case: str, question: str | None = None):
        def round_(c: httpx.Client, tally: Tally, stop) -> None:
            text = question or f"{QUESTIONS[0]} #{time.monotonic_ns()}"  # a new question each time
            tally.reply(case, _try(lambda: c.post("/api/ask", headers=AUTH, json={"question": text})))
        return round_

    def worst(c: httpx.Client, tally: Tally, stop) -> None:
        for question in WORST:
            tally.reply("worst-case question", _try(lambda: c.post("/api/ask", headers=AUTH, json={"question": question})))

    def insights(c: httpx.Client, tally: Tally, stop) -> None:
        tally.reply("insights", _try(lambda: c.get("/api/insights", headers=ADMIN_AUTH)))
        tally.reply("questions.csv", _try(lambda: c.get("/api/insights/questions.csv", headers=ADMIN_AUTH)))
        time.sleep(5)

    return [
        ("zip bomb .docx", upload("zip bomb .docx", "bomb.docx", bomb, "application/octet-stream")),
        ("100 M-character .pdf", upload("100 M-character .pdf", "forms.pdf", pdf, "application/pdf")),
        ("40 MB .csv", upload("40 MB .csv", "big.csv", csv, "text/csv")),
        ("slow and bad links", lambda c, t, stop: job("slow and bad links", c, t, stop, json={"urls": links})),
        ("nested JSON to /v1", lambda c, t, stop: t.reply("nested JSON to /v1", _try(lambda: c.post(
            "/v1/chat/completions", content=nested, headers={**AUTH, "content-type": "application/json"})))),
        ("oversize question", ask("oversize question", "直播" * 1001)),
        ("worst-case question", worst),
        *[("question-log flood", ask("question-log flood")) for _ in range(flood)],
        ("insights", insights),
    ]


def _try(send) -> httpx.Response | Exception:
    try:
        return send()
    except httpx.HTTPError as exc:
        return exc


class Memory:
    """Samples the resident memory of the server and of its children (the reader process) until stopped."""

    def __init__(self, pid: int):
        self.pid, self.server, self.children, self.total = pid, 0, 0, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(0.25):
            server = _rss_kb(self.pid)
            children = sum(_rss_kb(p) for p in _children(self.pid) if _is_reader(p))
            self.server, self.children = max(self.server, server), max(self.children, children)
            self.total = max(self.total, server + children)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def _is_reader(pid: int) -> bool:
    """The reader process once it runs its own code (between fork and exec a child shows the server's pages)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"_serve" in f.read()
    except OSError:
        return False


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and of its children that it waited for."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def _children(pid: int) -> list[int]:
    """The processes any thread of `pid` started (the reader process is started by the library's thread)."""
    children = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return children


def phase(url: str, name: str, clients: int, seconds: float, cases: list | None = None, server: int = 0) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    tally = Tally()
    finished = threading.Event()
    until = finished.is_set

    def hostile(round_) -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            while not until():
                round_(client, tally, until)

    started, cpu = time.perf_counter(), (_cpu_seconds(server), time.process_time())
    threads = [threading.Thread(target=ask_loop, args=(url, until, latencies, failures, lock, i)) for i in range(clients)]
    threads += [threading.Thread(target=hostile, args=(round_,)) for _, round_ in cases or []]
    for t in threads:
        t.start()
    time.sleep(seconds)
    finished.set()
    for t in threads[:clients]:
        t.join()
    wall = time.perf_counter() - started
    server_cpu, own_cpu = _cpu_seconds(server) - cpu[0], time.process_time() - cpu[1]
    for t in threads[clients:]:  # the jobs sent are followed to their end (JOB_GRACE), not timed
        t.join()
    fivexx = sum("50" in f[:40] or "status_code=5" in f for f in failures) + tally.fivexx()
    result = {"name": name, "answers": len(latencies), "failures": failures, "fivexx": fivexx,
              "p50": percentile(latencies, 0.5) if latencies else float("nan"),
              "p95": percentile(latencies, 0.95) if latencies else float("nan")}
    print(f"{name:<8} {len(latencies):>5} normal answers ({len(latencies) / wall:5.2f}/s), {len(failures)} failed, "
          f"p50 {result['p50'] * 1000:6.0f} ms, p95 {result['p95'] * 1000:6.0f} ms, 5xx {fivexx}; CPU: server "
          f"{server_cpu / wall:.2f} cores, these clients {own_cpu / wall:.2f}", flush=True)
    for failure in failures[:3]:
        print("   failure:", failure)
    for case, replies in tally.replies.items():
        print(f"   {case:<22} replies {dict(replies)}")
        for outcome, n in tally.outcomes.get(case, {}).items():
            print(f"   {'':<22} {n} x {outcome}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", default=str(ROOT / "corpus"), help="library folder to copy and index")
    parser.add_argument("--clients", type=int, default=20, help="normal clients")
    parser.add_argument("--flood", type=int, default=2, help="clients flooding the question log")
    parser.add_argument("--seconds", type=float, default=60, help="length of each phase")
    parser.add_argument("--only", action="append", help="run only the hostile cases whose name holds this")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ASSISTANT_API_TOKEN": TOKEN, "ASSISTANT_ADMIN_TOKEN": ADMIN,
           "ASSISTANT_ALLOWED_FETCH_HOSTS": "127.0.0.1", "ASSISTANT_QUESTION_LOG_ROWS": str(LOG_ROWS)}
    slow = ThreadingHTTPServer(("127.0.0.1", 0), SlowHeaders)
    slow.daemon_threads = True
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        library, index = Path(tmp) / "library", Path(tmp) / "index"
        shutil.copytree(args.library, library, ignore=shutil.ignore_patterns("uploads", ".removed", ".uploading"))
        print(f"indexing {args.library} (not timed)", flush=True)
        subprocess.run([sys.executable, "-m", "assistant.cli", "index", str(library), "--index", str(index)],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        cases = [(name, round_) for name, round_ in hostile_cases(
            f"http://127.0.0.1:{slow.server_address[1]}/slow-headers", args.flood)
                 if not args.only or any(o in name for o in args.only)]
        server_log = open(Path(tmp) / "server.log", "w+")
        with server_log, serving(index, env, cwd=Path(tmp), stderr=server_log) as (url, server):
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.post(url + "/api/ask", json={"question": QUESTIONS[0]}, headers=AUTH,
                                  timeout=60).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    server_log.seek(0)
                    print("the server did not start:", server_log.read()[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.2)
            memory = Memory(server.pid)
            quiet = phase(url, "quiet", args.clients, args.seconds, server=server.pid)
            quiet_rss = memory.server
            hostile = phase(url, "hostile", args.clients, args.seconds, cases, server=server.pid)
            memory.stop()
            hwm = _peak_rss_kb(server.pid)
            alive = server.poll() is None
    slow.shutdown()
    print(f"hostile p95 {hostile['p95'] / quiet['p95']:.2f}x the quiet phase's (aim <= 1.5x), "
          f"p50 {hostile['p50'] / quiet['p50']:.2f}x; 5xx {quiet['fivexx'] + hostile['fivexx']}")
    print(f"server peak RSS {memory.server / 1024:.0f} MB (quiet phase {quiet_rss / 1024:.0f} MB; VmHWM "
          f"{hwm / 1024:.0f} MB), reader process {memory.children / 1024:.0f} MB, together {memory.total / 1024:.0f} MB; "
          f"server {'alive' if alive else 'DIED'} at the end")
    ok = alive and not (quiet["failures"] or hostile["failures"] or quiet["fivexx"] or hostile["fivexx"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
