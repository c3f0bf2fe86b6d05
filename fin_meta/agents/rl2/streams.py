"""Trials that span several iterations (`trial_iterations` K > 1): each env plays a
start-conditioned stream of K rollouts' worth of decisions, one stretch an iteration, and the
hidden state and feedback one stretch ends with are where the next one starts (truncated BPTT).

The streams belong to the agent, not to one `fit` call, and are saved in its training state, so
`fit(n1)` then `fit(n2)` (or a checkpoint, `load_agent`, `fit(n2)`) trains as `fit(n1 + n2)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fin_meta.agents.deploy import Feedback
from fin_meta.tasks import TaskSampler

__all__ = ["CarriedStreams"]

def _lengths(sampler: TaskSampler) -> torch.Tensor:
    return torch.as_tensor([len(p) for p in sampler.prices], dtype=torch.int64)


@dataclass
class CarriedStreams:
    """Each env's stream: its asset, the first decision bar of its next stretch, the stretches
    left in it, and the hidden state `[1, N, S]` and feedback the last stretch ended with.
    `steps`: decisions a stretch; `lengths`: bars of each asset of the sampler it was drawn from."""

    asset: np.ndarray
    start: np.ndarray
    left: np.ndarray
    hidden: torch.Tensor
    feedback: Feedback
    steps: int
    lengths: torch.Tensor

    @classmethod
    def begin(cls, sampler: TaskSampler, rng: np.random.Generator, *, n: int, k: int, steps: int,
              hidden: torch.Tensor) -> CarriedStreams:
        """`n` streams of `k` stretches of `steps` decisions from the zero state `hidden`,
        staggered: env i's first stream lasts 1 + i mod k stretches, so every later iteration
        mixes fresh and long contexts."""
        asset, start, _, _ = sampler.sample_stream_arrays(n, rng, length=k * steps)
        return cls(asset, start, 1 + np.arange(n) % k, hidden, Feedback.initial(n, hidden.device), steps,
                   _lengths(sampler))

    def fits(self, sampler: TaskSampler, steps: int, n: int) -> bool:
        """True when these streams can go on in `sampler` (same assets' lengths, stretch, envs)."""
        return (self.steps == steps and len(self.asset) == n
                and torch.equal(self.lengths, _lengths(sampler)))

    def stretch(self, sampler: TaskSampler, rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(asset, start)` of every env's next stretch: a used-up stream is replaced by a new one
        of `k` stretches, starting from the zero state and zero feedback."""
        fresh = self.left == 0
        if fresh.any():
            asset, start, _, _ = sampler.sample_stream_arrays(int(fresh.sum()), rng, length=k * self.steps)
            self.asset[fresh], self.start[fresh], self.left[fresh] = asset, start, k
            keep = torch.as_tensor(~fresh, dtype=self.hidden.dtype, device=self.hidden.device)
            fb = self.feedback
            self.hidden = self.hidden * keep[None, :, None]
            self.feedback = Feedback(fb.prev_position * keep, fb.prev_reward * keep, fb.done * keep, fb.bar)
        return self.asset.copy(), self.start.copy()

    def advance(self, hidden: torch.Tensor, feedback: Feedback) -> None:
        """Record where every stream got to after a stretch: the state and feedback it ended with."""
        self.start += self.steps
        self.left -= 1
        self.hidden, self.feedback = hidden.detach().clone(), feedback

    def state(self) -> dict[str, Any]:
        """Tensors and ints only (the training state is loaded with `weights_only=True`)."""
        fb = self.feedback
        return {"asset": torch.as_tensor(self.asset), "start": torch.as_tensor(self.start),
                "left": torch.as_tensor(self.left), "hidden": self.hidden,
                "feedback": [fb.prev_position, fb.prev_reward, fb.done, fb.bar], "steps": self.steps,
                "lengths": self.lengths}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> CarriedStreams:
        """Streams saved by `state`, their tensors on `device`."""
        position, reward, done, bar = (t.to(device) for t in state["feedback"])
        return cls(state["asset"].numpy().copy(), state["start"].numpy().copy(), state["left"].numpy().copy(),
                   state["hidden"].to(device), Feedback(position, reward, done, bar), int(state["steps"]),
                   state["lengths"].cpu())
