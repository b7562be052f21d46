"""Atari for PPO: the standard preprocessing (Mnih et al. 2015, Machado et al. 2018) as small wrappers.

    envs = make_atari_vec_env("ALE/Breakout-v5", num_envs=8, seed=0)   # obs uint8 [8, 4, 84, 84]

The stack, innermost first, is the one CleanRL's `ppo_atari.py` uses:

1. `RecordEpisodeStatistics`: records the *game's* return (all lives, unclipped rewards) before any
   wrapper below changes what an episode or a reward is.
2. `AtariPreprocessing` (ours, no OpenCV needed): up to 30 no-op actions on reset, repeat each action
   for 4 frames and max-pool the last two (Atari sprites flicker), grayscale, resize to 84x84.
3. `EpisodicLife`: losing a life ends the *training* episode (terminated=True, so no bootstrap), but
   the game only really resets when all lives are gone. Value estimates become much easier.
4. `FireReset`: games like Breakout wait for FIRE after each reset; press it so the agent need not learn to.
5. `ClipReward`: sign of the reward, so one learning rate fits games with scores of 1 or 1000.
6. `FrameStackObservation(4)`: one frame has no velocity; four do.
"""

from __future__ import annotations

from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
from PIL import Image

gym.register_envs(ale_py)


class AtariPreprocessing(gym.Wrapper):
    """No-op reset, frame skip with max-pooling, grayscale and resize (what gymnasium's wrapper does, minus cv2)."""

    def __init__(self, env: gym.Env, noop_max: int = 30, frame_skip: int = 4, screen_size: int = 84) -> None:
        super().__init__(env)
        if env.unwrapped.spec is not None and env.unwrapped.spec.kwargs.get("frameskip", 1) != 1:
            raise ValueError("make the base env with frameskip=1: this wrapper does the frame skipping")
        self.noop_max, self.frame_skip, self.screen_size = noop_max, frame_skip, screen_size
        self.ale = env.unwrapped.ale
        h, w = env.observation_space.shape[:2]
        self.frames = np.zeros((2, h, w), dtype=np.uint8)  # the last two raw frames, for max-pooling
        self.observation_space = gym.spaces.Box(0, 255, (screen_size, screen_size), dtype=np.uint8)

    def _obs(self) -> np.ndarray:
        frame = np.maximum(self.frames[0], self.frames[1])
        img = Image.fromarray(frame).resize((self.screen_size, self.screen_size), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)

    def reset(self, **kwargs) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = self.env.reset(**kwargs)
        for _ in range(self.env.unwrapped.np_random.integers(1, self.noop_max + 1) if self.noop_max else 0):
            _, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                _, info = self.env.reset()
        self.ale.getScreenGrayscale(self.frames[0])
        self.frames[1].fill(0)
        return self._obs(), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        total, terminated, truncated, info = 0.0, False, False, {}
        for t in range(self.frame_skip):
            _, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if t >= self.frame_skip - 2:
                self.ale.getScreenGrayscale(self.frames[t - (self.frame_skip - 2)])
            if terminated or truncated:
                break
        return self._obs(), total, terminated, truncated, info


class EpisodicLife(gym.Wrapper):
    """A lost life is a terminal state for learning; the emulator resets only on a real game over."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: int):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:  # continue the same game from where the life was lost
            obs, _, _, _, info = self.env.step(0)
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE after reset, for games that wait for it."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if env.unwrapped.get_action_meanings()[1] != "FIRE":
            raise ValueError("FireReset is only for games whose action 1 is FIRE")

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


def make_atari_env(env_id: str, **make_kwargs: Any) -> gym.Env:
    """One Atari env with the full preprocessing stack; observations uint8 [4, 84, 84]."""
    env = gym.make(env_id, frameskip=1, **make_kwargs)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = AtariPreprocessing(env)
    env = EpisodicLife(env)
    if "FIRE" in env.unwrapped.get_action_meanings():
        env = FireReset(env)
    env = gym.wrappers.TransformReward(env, lambda r: float(np.sign(r)))
    return gym.wrappers.FrameStackObservation(env, 4)


def make_atari_vec_env(env_id: str, num_envs: int, seed: int, vectorization_mode: str = "sync") -> gym.vector.VectorEnv:
    """Vector of preprocessed Atari envs. Episode statistics (infos["episode"]) are the real game's.

    "async" runs one process per env: worth it on a many-core GPU box, not on 2 CPU cores.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    fns = [lambda: make_atari_env(env_id) for _ in range(num_envs)]
    envs = gym.vector.AsyncVectorEnv(fns) if vectorization_mode == "async" else gym.vector.SyncVectorEnv(fns)
    envs.action_space.seed(seed)
    return envs


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/")
