"""Fallback decoder for architectures the lean decoder does not cover: the model's own
forward with a transformers `DynamicCache`, still one token per call and logits for the last
position only."""

from __future__ import annotations

import torch


class HFDecoder:
    """Same interface as `LeanDecoder`: `prefill(ids)` then `step(id)`, float32 logits [vocab]."""

    def __init__(self, model) -> None:
        self.model = model
        self.cache = None
        self.length = 0

    @torch.inference_mode()
    def prefill(self, token_ids: list[int]) -> torch.Tensor:
        from transformers import DynamicCache

        if not token_ids:
            raise ValueError("prefill needs at least one token")
        self.cache = DynamicCache(config=self.model.config)
        self.length = 0
        return self._forward(torch.tensor([token_ids], dtype=torch.long))

    @torch.inference_mode()
    def step(self, token_id: int) -> torch.Tensor:
        return self._forward(torch.tensor([[token_id]], dtype=torch.long))

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        count = ids.shape[1]
        positions = torch.arange(self.length, self.length + count)
        out = self.model(input_ids=ids, past_key_values=self.cache, use_cache=True,
                         position_ids=positions.unsqueeze(0), cache_position=positions,
                         logits_to_keep=1)
        self.length += count
        return out.logits[0, -1].float()
