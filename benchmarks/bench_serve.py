"""Benchmark: 300 students checking at the deadline, on loopback only.

    python benchmarks/bench_serve.py [--students 300] [--concurrency 50] [--timeout 300]

A course of ``--students`` (the sample assignment, checks unlimited) is created in a temp
folder; ``pset serve --port 0`` runs in its own process. Every student checks every
problem once (right answers for half of them, a wrong number for the rest), all at once
through ``--concurrency`` client threads. Reported: throughput, p50/p99 latency, and in
the same run the in-process cost of the same checks -- the judge alone (``Problem.judge``)
and the whole :meth:`CheckService.check` (token, policy, parsing, judge, SQLite write) --
so the ratio shows what HTTP and the server add; then every student opens a fresh practice
page at once. Bounded: ``--timeout`` seconds in all.
Results go to benchmarks/out/serve.json. Timings, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from convpset.notebooks.course import init_course, load_course  # noqa: E402
from convpset.notebooks.variants import problems_for  # noqa: E402
from convpset.problems.checking import solved  # noqa: E402
from convpset.service.judge import CheckService  # noqa: E402
from convpset.service.store import AttemptStore  # noqa: E402
from convpset.service.tokens import make_token  # noqa: E402
from convpset.service.wire import submitted  # noqa: E402


def _requests(course, students: int) -> list[tuple[str, bytes, object, dict]]:
    spec = course.assignment("conv1")
    out = []
    for i, s in enumerate(course.roster()[:students]):
        token = make_token(course.secret, "conv1", s.student_id)
        for prob in problems_for(course, spec, s.student_id):
            key = solved(prob.fam, prob.variant)
            answers = {p.name: _plain(p, key[prob.base_name(p.name)]) for p in prob.parts()}
            if i % 2:      # half the class is one number off in the first part
                first = prob.parts()[0]
                if first.kind == "shapes":
                    answers[first.name] = answers[first.name][:-1]
                else:
                    answers[first.name] = (np.asarray(answers[first.name]) + 1).tolist()
            body = json.dumps({"problem": prob.number, "answers": answers}).encode()
            out.append((token, body, prob, answers))
    return out


def _plain(part, value) -> object:
    """A key value as the notebook's check(N) sends it (plain lists of floats)."""
    if part.kind == "shapes":
        return [[float(x) for x in row] for row in value]
    return np.asarray(value, dtype=float).tolist()


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _post(url: str, token: str, body: bytes) -> tuple[int, float]:
    req = urllib.request.Request(url + "/api/check", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as err:
        status = err.code
    return status, time.perf_counter() - start


def _get(url: str) -> tuple[int, float]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()
        return r.status, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "course"
        init_course(root, students=args.students, seed=1)
        with (root / "pset.toml").open("a", encoding="utf-8") as fh:
            fh.write('\n[assignments.conv1.check]\nattempts = "unlimited"\n')
        course = load_course(root)
        reqs = _requests(course, args.students)

        # in process, the same checks: the judge alone, then the whole service call
        t = time.perf_counter()
        for _, _, prob, answers in reqs:
            prob.judge({k: submitted(v) for k, v in answers.items()})
        judge_s = (time.perf_counter() - t) / len(reqs)
        service = CheckService(course, store=AttemptStore(Path(tmp) / "inproc.sqlite"))
        t = time.perf_counter()
        for token, body, _, _ in reqs:
            assert service.check(token, body).status == 200
        inproc_s = (time.perf_counter() - t) / len(reqs)

        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "convpset", "serve", "--course",
                                 str(root), "--port", "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env)
        try:
            url = re.search(r"http://[\d.]+:\d+", proc.stdout.readline()).group(0)
            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                futures = [pool.submit(_post, url, tok, body) for tok, body, _, _ in reqs]
                results = [f.result(timeout=max(1.0, deadline - time.monotonic()))
                           for f in futures]
            wall = time.perf_counter() - start
            # the practice page: one fresh variant per student, all at once
            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                pages = list(pool.map(lambda _: _get(url + "/practice/conv_as_matrix/1"),
                                      range(args.students)))
            page_wall = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    lat = [r[1] for r in results]
    out = {
        "students": args.students, "checks": len(reqs), "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "ok": sum(r[0] == 200 for r in results),
        "throughput_per_s": round(len(reqs) / wall, 1),
        "p50_ms": round(1000 * statistics.median(lat), 1),
        "p99_ms": round(1000 * _pct(lat, 0.99), 1),
        "judge_ms_per_check": round(1000 * judge_s, 3),
        "service_in_process_ms_per_check": round(1000 * inproc_s, 3),
        "http_ms_per_check_at_throughput": round(1000 * wall / len(reqs), 3),
    }
    page_lat = [p[1] for p in pages]
    out["practice"] = {"pages": len(pages), "ok": sum(p[0] == 200 for p in pages),
                       "throughput_per_s": round(len(pages) / page_wall, 1),
                       "p50_ms": round(1000 * statistics.median(page_lat), 1),
                       "p99_ms": round(1000 * _pct(page_lat, 0.99), 1)}
    out["overhead_ratio"] = round(out["http_ms_per_check_at_throughput"]
                                  / out["judge_ms_per_check"], 1)
    (REPO / "benchmarks" / "out").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "out" / "serve.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
