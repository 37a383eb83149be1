"""Croc stages as configs of one loop: which parameter groups train, their learning rates, and
which stage-1.5 machinery is on (docs/training-croc.md, "Stages").

| stage | trained (default)                  | lr (default)                              | attention |
|-------|------------------------------------|-------------------------------------------|-----------|
| 1     | projector                          | projector 1e-3                            | causal    |
| 1.5   | lm, projector, pool, recon_head    | lm, projector 2e-5; pool, recon_head 2e-4 | image     |
| 2     | lm, projector                      | 2e-5                                      | causal    |

The paper gives 2e-5 for stage 1.5 but no separate rate for the pool and head; regionset gives
the freshly initialised pool and head 10× that by default. Every entry can be overridden in
``croc.train`` / ``croc.lr``; ``training/configs/croc-released-*.yaml`` and ``victor-released-*.yaml``
set them (and the matching, pool, attention and head options) as the authors' released code does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from regionset.training.croc.attention import AttentionMode
from regionset.training.croc.matching import MatchMode
from regionset.training.croc.pool import PoolInit
from regionset.training.croc.recon import HeadNorm

GROUPS = ("vision", "projector", "lm", "pool", "recon_head")

DEFAULT_TRAIN: dict[str, list[str]] = {
    "1": ["projector"],
    "1.5": ["lm", "projector", "pool", "recon_head"],
    "2": ["lm", "projector"],
}
DEFAULT_LR: dict[str, dict[str, float]] = {
    "1": {"projector": 1e-3},
    "1.5": {"lm": 2e-5, "projector": 2e-5, "pool": 2e-4, "recon_head": 2e-4},
    "2": {"lm": 2e-5, "projector": 2e-5},
}
DEFAULT_ATTENTION: dict[str, AttentionMode] = {"1": "causal", "1.5": "image", "2": "causal"}


@dataclass
class CrocMethodConfig:
    """The Croc method settings of a run.

    Args:
        stage: ``1`` (alignment), ``1.5`` (cross-modal comprehension) or ``2`` (instruction tuning),
            as a string or a number.
        train: parameter groups to train (subset of vision, projector, lm, pool, recon_head);
            empty = the stage's default.
        lr: per-group learning rates; missing groups take the stage's default (or ``default_lr``).
        default_lr: learning rate of a trained group with no stage default.
        attention: ``image``, ``prefix`` or ``causal``; empty = the stage's default.
        pool_size: prompt pool size P (stage 1.5).
        pool_init: ``unit`` (default) or ``normal``.
        mask_ratio: fraction of visual tokens replaced per image (stage 1.5).
        matching: ``hungarian`` (one-to-one, default) or ``nearest`` (per-row argmin, may reuse).
        match_threads: threads solving per-sample assignments concurrently.
        recon_weight: weight of the reconstruction loss.
        recon_beta: SmoothL1 β.
        recon_heads: attention heads of each of the reconstruction head's transformer layers.
        recon_head_dim: when > 0, heads = LM width // this (the released head: 64) instead of
            ``recon_heads``.
        recon_layers: transformer layers of the head (1; 0 = a single linear map, as ViCToR).
        recon_norm: ``pre`` (pre-norm layer, default) or ``post`` (BERT-style post-norm, as released).
        recon_mlp_ratio: the layers' feed-forward width as a multiple of the LM width.
        recon_dropout: dropout inside the head's layers (released: 0.1).
        recon_positions: learned position embeddings, one per image token (as released).
        recon_init_std: when > 0, the head's weights start N(0, std) with zero biases (released:
            0.02, the LM's ``initializer_range``); 0 = PyTorch's default initialisation.
        init_from: model weights to start from (e.g. the stage-1 checkpoint); parts absent there
            (pool, head) keep their initialisation.
        seed: seed of the per-step masking draws.
    """

    stage: str | float = "1.5"
    train: list[str] = field(default_factory=list)
    lr: dict[str, float] = field(default_factory=dict)
    default_lr: float = 2e-5
    attention: AttentionMode | None = None
    pool_size: int = 2048
    pool_init: PoolInit = "unit"
    mask_ratio: float = 0.75
    matching: MatchMode = "hungarian"
    match_threads: int = 2
    recon_weight: float = 10.0
    recon_beta: float = 0.01
    recon_heads: int = 8
    recon_head_dim: int = 0
    recon_layers: int = 1
    recon_norm: HeadNorm = "pre"
    recon_mlp_ratio: float = 4.0
    recon_dropout: float = 0.0
    recon_positions: bool = False
    recon_init_std: float = 0.0
    init_from: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        # YAML reads an unquoted 1.5 as a number: accept 1, 1.5, 2 in either form
        stage = f"{self.stage:g}" if isinstance(self.stage, int | float) else str(self.stage)
        if stage not in DEFAULT_TRAIN:
            raise ValueError(f"method.stage: expected one of {list(DEFAULT_TRAIN)}, got {self.stage!r}")
        self.stage = stage

    @property
    def uses_pool(self) -> bool:
        """Stage 1.5 machinery (pool, masking, matching, reconstruction) is on."""
        return self.stage == "1.5"

    def trained_groups(self) -> list[str]:
        """The parameter groups this stage trains (validated)."""
        groups = list(self.train) or DEFAULT_TRAIN[self.stage]
        bad = [g for g in groups if g not in GROUPS]
        if bad:
            raise ValueError(f"croc.train: unknown group {bad[0]!r}; groups are {list(GROUPS)}")
        if not self.uses_pool and any(g in ("pool", "recon_head") for g in groups):
            raise ValueError(f"croc.train: pool/recon_head exist only in stage 1.5, not stage {self.stage}")
        return groups

    def group_lr(self, group: str) -> float:
        """Learning rate of ``group``: ``lr`` entry, else the stage default, else ``default_lr``."""
        bad = [g for g in self.lr if g not in GROUPS]
        if bad:
            raise ValueError(f"croc.lr: unknown group {bad[0]!r}; groups are {list(GROUPS)}")
        return float(self.lr.get(group, DEFAULT_LR[self.stage].get(group, self.default_lr)))

    def recon_head_options(self, num_tokens: int) -> dict:
        """Keyword arguments of :class:`regionset.training.croc.recon.ReconstructionHead` (besides the width).

        Args:
            num_tokens: visual tokens per image (the count of position embeddings, when on).
        """
        return {"heads": self.recon_heads, "head_dim": self.recon_head_dim, "layers": self.recon_layers,
                "norm": self.recon_norm, "mlp_ratio": self.recon_mlp_ratio, "dropout": self.recon_dropout,
                "positions": num_tokens if self.recon_positions else 0, "init_std": self.recon_init_std}

    def attention_mode(self) -> AttentionMode:
        """The attention mode in effect."""
        return self.attention or DEFAULT_ATTENTION[self.stage]
