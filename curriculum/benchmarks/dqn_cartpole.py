"""DQN on CartPole-v1: env steps and wall time until the mean return of the last 20 episodes is >= 475.

    python -m curriculum.benchmarks.dqn_cartpole                       # seeds 0-9, up to 100k env steps each
    python -m curriculum.benchmarks.dqn_cartpole --seeds 3 --steps 50000 --jobs 1
    python -m curriculum.benchmarks.dqn_cartpole --plot /tmp/dqn_cartpole.html  # also save the reward curves (plotly; .png needs kaleido)

Each seed trains `curriculum.solutions.chapter2.dqn.train_dqn` with its default DQNConfig (the one the notebook
uses), on the CPU with one torch thread, and stops once solved. Targets: every seed solved within
100k env steps, and at least 2,300 env steps/s in one process (--jobs 1). A seed's result does not
depend on how it is launched (each run seeds its own generators and uses one thread). `--jobs N`
runs N seeds in parallel processes; on a shared machine the wall times then include contention, so
compare steps/s only between runs with the same --jobs.

One run, --jobs 1, on a 2-core CPU: seeds 0-9 solved at 57,272 / 41,416 / 58,076 / 44,508 / 76,632 /
73,596 / 67,776 / 46,460 / 43,500 / 42,056 env steps (the same steps with --jobs 2); 551,292 env
steps in 219 s, 2,517 env steps/s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from dataclasses import replace

TARGET_STEPS = 100_000


def run_seed(args: tuple[int, int, float, int, bool]) -> dict:
    from curriculum.solutions.chapter2.dqn import DQNConfig, train_dqn

    seed, steps, threshold, window, stop = args
    cfg = replace(DQNConfig(), seed=seed, total_timesteps=steps, solve_return=threshold, solve_window=window,
                  stop_when_solved=stop, device="cpu")
    start = time.perf_counter()
    result = train_dqn(cfg, progress=False)
    wall = time.perf_counter() - start
    return dict(seed=seed, solved_at=result.solved_at_step, solved_time=result.solved_at_time, steps=result.env_steps,
                wall=wall, episodes=len(result.tracker), final_mean=result.tracker.mean_return(window),
                returns=result.tracker.returns, steps_at_end=result.tracker.steps_at_end)


def save_plot(rows: list[dict], path: str, threshold: float, window: int) -> None:
    """Reward curves with plotly: .html works anywhere; .png needs kaleido and a Chrome/Chromium."""
    import plotly.graph_objects as go

    from curriculum.utils.plotting import smooth_series

    fig = go.Figure()
    for r in rows:
        fig.add_scatter(x=r["steps_at_end"], y=smooth_series(r["returns"], window), mode="lines", name=f"seed {r['seed']}")
    fig.add_hline(y=threshold, line_dash="dash", annotation_text=f"solved ({threshold:g})")
    fig.update_layout(title=f"DQN on CartPole-v1 (mean of {window} episodes)", xaxis_title="environment step",
                      yaxis_title="episode return", width=900, height=450)
    if path.endswith(".html"):
        fig.write_html(path)
    else:
        fig.write_image(path)
    print(f"saved {path}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--steps", type=int, default=TARGET_STEPS, help="env-step budget per seed")
    ap.add_argument("--threshold", type=float, default=475.0)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    ap.add_argument("--plot", default=None, help="save the reward curves to this PNG")
    ap.add_argument("--keep-going", action="store_true", help="train for all --steps instead of stopping when solved")
    args = ap.parse_args(argv)

    work = [(s, args.steps, args.threshold, args.window, not args.keep_going) for s in args.seeds]
    print(f"DQN CartPole-v1, {len(work)} seeds, budget {args.steps} env steps, solved = mean of last "
          f"{args.window} returns >= {args.threshold}; {os.cpu_count()} CPUs, {args.jobs} job(s)")
    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            rows = pool.map(run_seed, work)
    else:
        rows = [run_seed(w) for w in work]

    print(f"\n| seed | solved at env step | wall time to solve (s) | steps run | steps/s | episodes | last-{args.window} mean |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        solved = f"{r['solved_at']:,}" if r["solved_at"] is not None else "not solved"
        t = f"{r['solved_time']:.1f}" if r["solved_time"] is not None else "-"
        print(f"| {r['seed']} | {solved} | {t} | {r['steps']:,} | {r['steps'] / r['wall']:.0f} | {r['episodes']} | "
              f"{r['final_mean']:.1f} |")
    solved = [r for r in rows if r["solved_at"] is not None]
    print(f"\nsolved {len(solved)}/{len(rows)} seeds; within {TARGET_STEPS:,} steps: "
          f"{sum(r['solved_at'] <= TARGET_STEPS for r in solved)}/{len(rows)}")
    if solved:
        worst = max(r["solved_at"] for r in solved)
        print(f"worst steps-to-solve / target = {worst / TARGET_STEPS:.2f}")
    total_steps, total_wall = sum(r["steps"] for r in rows), sum(r["wall"] for r in rows)
    print(f"throughput over all seeds: {total_steps:,} env steps in {total_wall:.0f} s = {total_steps / total_wall:,.0f} env steps/s "
          f"per process ({args.jobs} job(s))")
    if args.plot:
        save_plot(rows, args.plot, args.threshold, args.window)


if __name__ == "__main__":
    main()
