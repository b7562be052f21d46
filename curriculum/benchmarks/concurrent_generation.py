"""Speed-up of concurrent over sequential question generation (section 3.1), against the loopback
server with a fixed latency per request. Ideal speed-up with w workers is w (while n >= w).

    python -m curriculum.benchmarks.concurrent_generation                 # 256 requests, 0.1 s each, 1..32 workers
    python -m curriculum.benchmarks.concurrent_generation --same-process  # server threads share the client's GIL

By default the server runs in its own process (`LoopbackProcess`), as a remote API would: the client's
worker threads then compete only with each other for the interpreter. `--same-process` shows what
sharing one interpreter costs at high concurrency.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import openai

from curriculum.solutions.chapter3.dataset_generation import QuestionGeneration, generate_structured_response, map_concurrently
from curriculum.utils.mcq_standin import mcq_responder
from curriculum.utils.openai_server import LoopbackProcess, LoopbackServer

RESPONDER = "curriculum.utils.mcq_standin:mcq_responder"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.1, help="seconds the server waits before each reply")
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--same-process", action="store_true", help="run the server in this process's threads")
    args = ap.parse_args()

    server = (LoopbackServer(mcq_responder, latency=args.latency, record=False) if args.same_process
              else LoopbackProcess(RESPONDER, latency=args.latency))
    with server, contextlib.closing(openai.OpenAI(base_url=server.base_url, api_key="loopback", max_retries=0)) as client:
        def ask(i: int) -> dict:
            messages = [{"role": "user", "content": f"Write 4 questions about power-seeking (batch {i})."}]
            return generate_structured_response(client, "gpt-4o-mini", messages, QuestionGeneration)

        for i in range(max(args.workers)):  # warm up the connection pool and pydantic's schema cache
            ask(-1 - i)
        where = "in this process" if args.same_process else "in its own process"
        print(f"{args.requests} structured-output requests, {args.latency} s server latency each, server {where}")
        print(f"{'workers':>8} {'seconds':>8} {'speed-up':>9} {'ideal':>6} {'of ideal':>9}")
        sequential = None
        for w in [1] + [w for w in args.workers if w != 1]:  # sequential first: it is the baseline
            t0 = time.perf_counter()
            results = map_concurrently(ask, list(range(args.requests)), max_workers=w, desc=f"{w} workers")
            elapsed = time.perf_counter() - t0
            assert len(results) == args.requests
            sequential = sequential or elapsed
            ideal = min(w, args.requests)
            speedup = sequential / elapsed
            print(f"{w:>8} {elapsed:>8.2f} {speedup:>8.2f}x {ideal:>5}x {speedup / ideal:>8.0%}")


if __name__ == "__main__":
    main()
