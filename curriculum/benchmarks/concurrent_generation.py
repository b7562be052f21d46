"""Speed-up of concurrent over sequential question generation (section 3.1), against the loopback
server with a fixed latency per request. Ideal speed-up with w workers is w (while n >= w).

    python -m curriculum.benchmarks.concurrent_generation [--latency 0.25] [--requests 32]
"""

from __future__ import annotations

import argparse
import time

from curriculum.solutions.chapter3.dataset_generation import QuestionGeneration, generate_structured_response, map_concurrently
from curriculum.utils.mcq_standin import mcq_responder
from curriculum.utils.secrets import llm_endpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.25, help="seconds the server waits before each reply")
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = ap.parse_args()

    with llm_endpoint(responder=mcq_responder, offline=True, latency=args.latency, max_retries=0) as llm:
        def ask(i: int) -> dict:
            messages = [{"role": "user", "content": f"Write 4 questions about power-seeking (batch {i})."}]
            return generate_structured_response(llm.client, llm.model, messages, QuestionGeneration)

        ask(-1)  # warm up the connection pool and pydantic's schema cache
        print(f"{args.requests} structured-output requests, {args.latency} s server latency each")
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
