"""PPO on CartPole-v1: environment steps and wall time to a mean return of 475, and rollout throughput.

    python -m curriculum.benchmarks.ppo_cartpole              # seeds 0-9, up to 60k steps each
    python -m curriculum.benchmarks.ppo_cartpole --seeds 0 1 2 --parts 1 --threads 1

Part 1 trains `curriculum.solutions.chapter2.ppo.train_ppo` with its default (CartPole) arguments, the same
for every seed, and stops a seed once the mean of its last 20 finished episodes reaches 475. It prints a
table of environment steps and wall time per seed. Target: every seed within 60k steps.

Part 2 measures throughput in env steps per second against single-process, one-env references:
- acting only: `collect_rollout` over 8 and 32 synchronous sub-envs vs a plain loop over one `gym.make`
  env with one agent forward pass per step (what batching the policy's forward pass over envs buys);
- whole training: `train_ppo` with 8 envs x 32 steps vs 1 env x 256 steps, the same batch size, epochs
  and minibatches, so the only difference is the vectorised rollout.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from curriculum.solutions.chapter2.ppo import Agent, PPOArgs, collect_rollout, train_ppo
from curriculum.utils.rl import make_vec_env


def time_to_threshold(seeds: list[int], threshold: float, max_steps: int) -> list[dict]:
    rows = []
    for seed in seeds:
        result = train_ppo(PPOArgs(seed=seed, total_timesteps=max_steps), stop_at_return=threshold, progress=False)
        reached = len(result.tracker) >= 20 and result.tracker.mean_return(20) >= threshold
        rows.append(dict(seed=seed, reached=reached, steps=result.env_steps, seconds=result.seconds,
                         final=result.tracker.mean_return(20)))
    return rows


def print_table(rows: list[dict], threshold: float) -> None:
    print(f"| seed | reached {threshold:g} | env steps | wall time (s) | mean of last 20 episodes |")
    print("|---:|:---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['seed']} | {'yes' if r['reached'] else 'NO'} | {r['steps']} | {r['seconds']:.1f} | {r['final']:.1f} |")


def reference_loop_steps_per_second(n_steps: int, seed: int = 0) -> float:
    env = gym.make("CartPole-v1")
    agent = Agent((4,), 2)
    obs, _ = env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(n_steps):
        with torch.no_grad():
            action, _, _, _ = agent.get_action_and_value(torch.as_tensor(obs)[None])
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            obs, _ = env.reset()
    return n_steps / (time.perf_counter() - start)


def vectorised_steps_per_second(n_steps: int, num_envs: int, seed: int = 0) -> float:
    envs = make_vec_env("CartPole-v1", num_envs, seed)
    agent = Agent((4,), 2)
    obs = torch.as_tensor(envs.reset(seed=seed)[0])
    done = torch.zeros(num_envs, dtype=torch.bool)
    start = time.perf_counter()
    rollout = collect_rollout(agent, envs, obs, done, n_steps // num_envs)
    seconds = time.perf_counter() - start
    envs.close()
    return rollout.actions.numel() / seconds


def part1(a: argparse.Namespace) -> None:
    print(f"Part 1: steps to a mean return of {a.threshold} on CartPole-v1 (defaults of PPOArgs)")
    rows = time_to_threshold(a.seeds, a.threshold, a.max_steps)
    print_table(rows, a.threshold)
    steps = np.array([r["steps"] for r in rows])
    secs = np.array([r["seconds"] for r in rows])
    ok = all(r["reached"] and r["steps"] <= a.max_steps for r in rows)
    print(f"  steps: median {np.median(steps):.0f}, max {steps.max()}; wall time: median {np.median(secs):.1f}s, "
          f"max {secs.max():.1f}s; all seeds within {a.max_steps} steps: {ok}")


def training_steps_per_second(n_steps: int, num_envs: int, num_steps: int) -> float:
    result = train_ppo(PPOArgs(seed=0, num_envs=num_envs, num_steps=num_steps, total_timesteps=n_steps), progress=False)
    return result.env_steps / result.seconds


def part2(a: argparse.Namespace) -> None:
    print(f"Part 2: throughput ({a.throughput_steps} env steps each)")
    ref = reference_loop_steps_per_second(a.throughput_steps)
    print(f"  single-process reference loop (1 env):      {ref:8.0f} steps/s   1.00x")
    for n in (8, 32):
        vec = vectorised_steps_per_second(a.throughput_steps, n)
        print(f"  collect_rollout, {n:2d} sync envs:            {vec:8.0f} steps/s   {vec / ref:.2f}x")
    single = training_steps_per_second(a.throughput_steps, 1, 256)
    vec = training_steps_per_second(a.throughput_steps, 8, 32)
    print(f"  train_ppo, 1 env x 256 steps (reference):    {single:8.0f} steps/s   1.00x")
    print(f"  train_ppo, 8 envs x 32 steps (defaults):     {vec:8.0f} steps/s   {vec / single:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--threshold", type=float, default=475.0)
    ap.add_argument("--max-steps", type=int, default=60_000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny networks)")
    ap.add_argument("--throughput-steps", type=int, default=20_000)
    ap.add_argument("--parts", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if 1 in a.parts:
        part1(a)
    if 2 in a.parts:
        part2(a)


if __name__ == "__main__":
    main()
