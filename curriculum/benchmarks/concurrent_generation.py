"""Speed-up of concurrent over sequential question generation (section 3.1), against the loopback
server with a fixed latency per request. Ideal speed-up with w workers is w (while n >= w).

    python -m curriculum.benchmarks.concurrent_generation                 # 256 requests, 0.1 s each, 1..32 workers
    python -m curriculum.benchmarks.concurrent_generation --same-process  # server threads share the client's GIL

By default the server runs in its own process (`LoopbackProcess`), as a remote API would: the client's
worker threads then compete only with each other for the interpreter. `--same-process` shows what
sharing one interpreter costs at high concurrency. Each concurrent setting runs `--repeats` times and
the median is reported, with every run listed: on a shared 2-core machine one run can land 10% slower.

One run of `--workers 1 16 32 --repeats 7` on an otherwise idle 2-core CPU:

     workers  seconds  speed-up  ideal  of ideal
           1    26.76     1.00x     1x     100%
          16     1.81    14.76x    16x      92%   runs: 1.83, 1.81, 1.78, 1.78, 1.81, 1.82, 1.79
          32     0.98    27.20x    32x      85%   runs: 0.98, 1.09, 0.99, 0.96, 0.98, 0.98, 0.98

What limits 32 workers is the client's own CPU: about 1.4 ms per request in a plain loop (section
3.1 measures it), all of it on one interpreter, against the 3.1 ms a request's share of the ideal
run leaves (100 ms / 32). The SDK's `client.chat.completions.parse` costs about twice that per request
(it rebuilds the strict schema and checks the request against more parameter types):
`generate_structured_response` sends the same request with `create`. Measured side by side, 5
interleaved rounds of 256 requests at 32 workers: `parse` 62-73% of ideal (3.2-4.0 ms of client CPU
per request under load), `create` with the prebuilt schema 80-89% (1.7-2.0 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
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
    ap.add_argument("--repeats", type=int, default=3, help="runs per concurrent setting; the median is reported")
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
            runs = []
            for _ in range(1 if w == 1 else args.repeats):  # one sequential run: it takes requests * latency
                t0 = time.perf_counter()
                results = map_concurrently(ask, list(range(args.requests)), max_workers=w, desc=f"{w} workers")
                runs.append(time.perf_counter() - t0)
                assert len(results) == args.requests
            elapsed = statistics.median(runs)
            sequential = sequential or elapsed
            ideal = min(w, args.requests)
            speedup = sequential / elapsed
            spread = "" if len(runs) == 1 else f"   runs: {', '.join(f'{r:.2f}' for r in runs)}"
            print(f"{w:>8} {elapsed:>8.2f} {speedup:>8.2f}x {ideal:>5}x {speedup / ideal:>8.0%}{spread}")


if __name__ == "__main__":
    main()
