"""The LLaVA-style Croc model: vision encoder -> 2-layer MLP projector (L2-normalised) -> causal LM.

Stage 1.5 parts (prompt token pool, reconstruction head) are built when the stage needs them and
live on the model so that they are checkpointed with it. Sequences carry exactly one image span
of ``num_visual_tokens`` positions, read off the encoder; the image positions of ``input_ids``
hold a placeholder id and are overwritten with the projected visual tokens.
"""

from __future__ import annotations

import inspect
import time

import torch
from torch import nn
from torch.nn import functional as F

from regionset.training.croc.attention import AttentionMode, build_attention_mask
from regionset.training.croc.lm import LMConfig, build_lm
from regionset.training.croc.method import CrocMethodConfig
from regionset.training.croc.pool import PoolInit, PromptTokenPool, replace_tokens
from regionset.training.croc.recon import ReconstructionHead, gather_image_states
from regionset.training.croc.vision import VisionConfig, build_vision_encoder


class Projector(nn.Module):
    """Linear -> GELU -> Linear, outputs L2-normalised (every stage and at inference).

    Args:
        in_dim: vision token width.
        out_dim: LM hidden size.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, N, in_dim) to unit-norm (B, N, out_dim)."""
        return F.normalize(self.fc2(F.gelu(self.fc1(x))), dim=-1)


class CrocModel(nn.Module):
    """Vision encoder, projector, LM and the optional stage 1.5 parts.

    Args:
        vision: a module from :func:`build_vision_encoder`.
        lm: a ``transformers`` causal LM.
        pool_size: prompt pool size P (0 = no pool).
        pool_init: ``unit`` or ``normal``.
        recon: keyword arguments of the reconstruction head (see
            :meth:`regionset.training.croc.method.CrocMethodConfig.recon_head_options`); None = no head.
    """

    def __init__(self, vision: nn.Module, lm: nn.Module, pool_size: int = 0, pool_init: PoolInit = "unit",
                 recon: dict | None = None) -> None:
        super().__init__()
        self.vision = vision
        self.lm = lm
        hidden = lm.get_input_embeddings().weight.shape[1]
        self.hidden_size = hidden
        self.projector = Projector(vision.width, hidden)
        self.pool = PromptTokenPool(pool_size, hidden, pool_init) if pool_size else None
        self.recon_head = ReconstructionHead(hidden, **recon) if recon is not None else None
        # optimizer steps taken; seeds the masking draws, saved with the weights so resume redraws alike
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.timings: dict[str, float] = {}
        self.sync_timings = False  # benchmarks: synchronise CUDA at each timing point

    @property
    def num_visual_tokens(self) -> int:
        """Visual tokens per image, as the encoder produces them."""
        return int(self.vision.num_tokens)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, image_mask: torch.Tensor,
                answer_mask: torch.Tensor, padding_mask: torch.Tensor, attention: AttentionMode = "causal",
                mask_positions: torch.Tensor | None = None, matcher=None,
                train_vision: bool = False) -> dict[str, torch.Tensor]:
        """The whole forward of one batch (one call, so that DDP can wrap the model).

        Args:
            images: (B, 3, S, S) normalised images.
            input_ids: (B, L) ids with placeholders at the image span.
            image_mask: (B, L) image positions (N per row).
            answer_mask: (B, L) supervised positions.
            padding_mask: (B, L) real tokens.
            attention: ``image``, ``prefix`` or ``causal``.
            mask_positions: (B, M) visual tokens to replace by matched pool vectors (stage 1.5).
            matcher: callable ``(masked tokens, pool weight) -> pool indices`` (stage 1.5).
            train_vision: run the encoder with gradients.

        Returns:
            ``logits`` (B, K, V) for the last K positions only (those from just before the batch's
            first answer token on: image positions need no vocabulary projection) and
            ``logits_offset`` = L - K; with ``mask_positions``: ``target`` (B, N, hidden) detached
            original visual tokens and ``recon`` (B, N, hidden) reconstruction head outputs.
        """
        t0 = self._now()
        visual = self.encode_images(images, train_vision)
        t1 = self._now()
        inputs = visual
        if mask_positions is not None and mask_positions.shape[1] > 0:
            d = visual.shape[-1]
            masked = torch.gather(visual.detach(), 1, mask_positions.unsqueeze(-1).expand(-1, -1, d))
            index = matcher(masked, self.pool.weight)
            inputs = replace_tokens(visual, mask_positions, self.pool(index))
        t2 = self._now()
        embeds = self.embed(input_ids, image_mask, inputs)
        want_recon = mask_positions is not None and self.recon_head is not None
        keep = logits_needed(answer_mask)
        out = self.run_lm(embeds, image_mask, answer_mask, padding_mask, attention, hidden_states=want_recon,
                          logits_to_keep=keep)
        result = {"logits": out.logits, "logits_offset": embeds.shape[1] - out.logits.shape[1]}
        if want_recon:
            hidden = gather_image_states(out.hidden_states[-1], image_mask, visual.shape[1])
            result["recon"] = self.recon_head(hidden.to(self.recon_head.proj.weight.dtype))
            result["target"] = visual.detach()
        self.timings = {"vision_s": t1 - t0, "match_s": t2 - t1, "lm_fwd_s": self._now() - t2}
        return result

    def _now(self) -> float:
        if self.sync_timings and torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def encode_images(self, images: torch.Tensor, train_vision: bool = False) -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, N, hidden) unit-norm visual tokens.

        Args:
            images: pixel tensor.
            train_vision: run the encoder with gradients (only when the vision group is trained).
        """
        with torch.set_grad_enabled(train_vision and torch.is_grad_enabled()):
            feats = self.vision(images.to(next(self.vision.parameters()).dtype))
        return self.projector(feats.to(self.projector.fc1.weight.dtype))

    def embed(self, input_ids: torch.Tensor, image_mask: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """Text embeddings with the image span replaced by ``visual``.

        Args:
            input_ids: (B, L) ids (placeholder ids at image positions).
            image_mask: (B, L) bool, exactly N True per row.
            visual: (B, N, hidden) visual tokens (possibly with pool vectors swapped in).
        """
        embeds = self.lm.get_input_embeddings()(input_ids)
        counts = image_mask.sum(dim=1)
        if not bool((counts == visual.shape[1]).all()):
            raise ValueError(f"every sample needs one image span of {visual.shape[1]} tokens; got {counts.tolist()}")
        out = embeds.clone()
        out[image_mask] = visual.reshape(-1, visual.shape[-1]).to(embeds.dtype)
        return out

    def run_lm(self, embeds: torch.Tensor, image_mask: torch.Tensor, answer_mask: torch.Tensor,
               padding_mask: torch.Tensor, attention: AttentionMode, hidden_states: bool = False,
               logits_to_keep: int = 0):
        """Run the LM on ``embeds`` with Croc's 4-D mixed attention mask.

        Args:
            embeds: (B, L, hidden) input embeddings.
            image_mask: (B, L) image positions.
            answer_mask: (B, L) supervised answer positions.
            padding_mask: (B, L) real tokens.
            attention: ``image``, ``prefix`` or ``causal``.
            hidden_states: also return all hidden states (the last is read by the reconstruction head).
            logits_to_keep: compute logits for the last this many positions only (0: all), where the
                LM supports it.
        """
        dtype = embeds.dtype
        if torch.is_autocast_enabled(embeds.device.type):  # the kernels see q/k in the autocast dtype
            dtype = torch.get_autocast_dtype(embeds.device.type)
        mask = build_attention_mask(image_mask, answer_mask, padding_mask, attention, dtype)
        positions = torch.arange(embeds.shape[1], device=embeds.device).unsqueeze(0).expand(embeds.shape[0], -1)
        extra = {"logits_to_keep": logits_to_keep} if logits_to_keep and self._keeps_logits else {}
        return self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                       output_hidden_states=hidden_states, use_cache=False, **extra)

    @property
    def _keeps_logits(self) -> bool:
        return "logits_to_keep" in inspect.signature(self.lm.forward).parameters


def logits_needed(answer_mask: torch.Tensor) -> int:
    """How many trailing positions need logits: from just before the batch's first answer token.

    Args:
        answer_mask: (B, L) supervised positions.
    """
    length = answer_mask.shape[1]
    if not bool(answer_mask.any()):
        return length
    first = int(answer_mask.any(dim=0).int().argmax())
    return length - max(first - 1, 0)


def build_croc_model(vision_cfg: VisionConfig, lm_cfg: LMConfig, tokenizer, pool_size: int = 0,
                     pool_init: PoolInit = "unit",
                     recon: CrocMethodConfig | None = None) -> CrocModel:
    """Build the Croc model from its config sections.

    Args:
        vision_cfg: encoder section.
        lm_cfg: LM section.
        tokenizer: the tokenizer (sizes a random-init LM and gives its special ids).
        pool_size: prompt pool size (stage 1.5), 0 for none.
        pool_init: pool initialisation.
        recon: the method config whose ``recon_*`` options shape the reconstruction head (stage 1.5),
            None for no head.
    """
    vision = build_vision_encoder(vision_cfg)
    lm = build_lm(lm_cfg, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id,
                  tokenizer.pad_token_id)
    head = recon.recon_head_options(int(vision.num_tokens)) if recon is not None else None
    return CrocModel(vision, lm, pool_size, pool_init, head)
