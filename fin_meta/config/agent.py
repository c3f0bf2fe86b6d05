"""The `agent` section of an experiment file (`AgentSection`): the algorithm, its budget and
device, validation and early stopping (`eval_every`, `patience`), and the algorithm's own
hyperparameters as further keys, checked against its model in the registry `fin_meta.agents.ALGOS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from fin_meta.agents import ALGOS, hparams_model
from fin_meta.config.sections import one_of
from fin_meta.config.yaml_io import field_error

__all__ = ["DEFAULT_EVALUATIONS", "AgentSection"]

DEFAULT_EVALUATIONS = 10
"""Validation evaluations over the budget when `agent.eval_every` is not given."""


def _known_algo(value: str) -> str:
    return one_of(value, ALGOS)


class AgentSection(BaseModel):
    """The agent: `algo`, its training budget and device, and its hyperparameters as further
    keys of the same section (`lr`, `num_envs`, `hidden_size`, ...), checked against the
    algorithm's own model (`fin_meta.agents.hparams_model(algo)`)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    algo: Annotated[str, AfterValidator(_known_algo)]
    """An algorithm of the registry `fin_meta.agents.ALGOS`: `rl2` (recurrent, adapts in
    context), `maml` (adapts by gradient steps), `ppo` (pooled, non-meta baseline) or `rppo`
    (recurrent PPO on long streams: memory without meta-learning, a control)."""
    iterations: int = Field(100, ge=1)
    """Training iterations (meta-iterations for rl2/maml)."""
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    """`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`."""
    eval_every: int | None = Field(None, ge=1)
    """With a validation period (`data.val_start`): walk the agent over it every this many
    iterations and keep the checkpoint with the best validation net Sharpe (the one tested).
    None: a tenth of the budget, `max(1, iterations // 10)`. Needs `data.val_start`."""
    patience: int | None = Field(None, ge=1)
    """Stop training after this many validation evaluations in a row without a better net
    Sharpe (early stopping); None: train the whole budget (the best checkpoint is still the
    one tested). Needs `data.val_start`."""

    _RESERVED: ClassVar[tuple[str, ...]] = ("seed",)

    @classmethod
    def config_keys(cls, raw: Mapping[str, Any]) -> dict[str, Any] | None:
        """Valid keys (-> annotation) of an agent section whose algo is `raw["algo"]` (None
        while the algo is unknown: its own error comes first)."""
        algo = raw.get("algo")
        if algo not in ALGOS:
            return None
        keys = {name: f.annotation for name, f in cls.model_fields.items()}
        for name, f in hparams_model(algo).model_fields.items():
            if name not in cls._RESERVED:
                keys.setdefault(name, f.annotation)
        return keys

    @model_validator(mode="after")
    def _check_hparams(self) -> AgentSection:
        extra = dict(self.__pydantic_extra__ or {})
        for key in self._RESERVED:
            if key in extra:
                raise field_error(
                    "AgentSection", (key,),
                    f"set the experiment's top-level `{key}` instead; one seed drives the data, "
                    "the tasks and the agent",
                    extra[key],
                )
        model = hparams_model(self.algo)
        shared = {k: getattr(self, k) for k in type(self).model_fields if k in model.model_fields}
        hparams = model.model_validate({**extra, **shared})
        own = set(type(self).model_fields) | set(self._RESERVED)
        # keep every hyperparameter (defaults included) so logged params describe the run fully
        self.__pydantic_extra__ = {k: getattr(hparams, k) for k in model.model_fields if k not in own}
        return self

    @property
    def evaluation_interval(self) -> int:
        """Iterations between validation evaluations: `eval_every`, else `max(1, iterations // 10)`."""
        return self.eval_every if self.eval_every is not None else max(1, self.iterations // DEFAULT_EVALUATIONS)

    @property
    def hparams(self) -> dict[str, Any]:
        """The algorithm's hyperparameters given in (or defaulted for) this section."""
        return dict(self.__pydantic_extra__ or {})
