"""Build tiny random CLIP models in OpenAI state-dict format for tests.

The layout matches OpenAI's released files (the keys `clip.load` and open_clip's
`build_model_from_openai_state_dict` read), so tests go through the same loading
code a user hits with ``--clip-weights PATH``. Weights are float16, like OpenAI's.
"""

from __future__ import annotations

from pathlib import Path


def tiny_openai_state_dict(
    *,
    vision_width: int = 64,
    vision_layers: int = 5,
    patch_size: int = 32,
    image_size: int = 64,
    text_width: int = 64,
    text_layers: int = 5,
    embed_dim: int = 32,
    context_length: int = 77,
    vocab_size: int = 49408,
    seed: int = 0,
) -> dict:
    """Return a random CLIP state dict with OpenAI key names (float16 tensors)."""
    import torch

    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int, std: float = 0.02) -> "torch.Tensor":
        return (torch.randn(*shape, generator=gen) * std).half()

    def ones(n: int) -> "torch.Tensor":
        return (1.0 + 0.1 * torch.randn(n, generator=gen)).half()

    def block(prefix: str, width: int) -> dict:
        return {
            f"{prefix}.attn.in_proj_weight": randn(3 * width, width, std=width**-0.5),
            f"{prefix}.attn.in_proj_bias": randn(3 * width),
            f"{prefix}.attn.out_proj.weight": randn(width, width, std=width**-0.5),
            f"{prefix}.attn.out_proj.bias": randn(width),
            f"{prefix}.ln_1.weight": ones(width),
            f"{prefix}.ln_1.bias": randn(width),
            f"{prefix}.mlp.c_fc.weight": randn(4 * width, width, std=width**-0.5),
            f"{prefix}.mlp.c_fc.bias": randn(4 * width),
            f"{prefix}.mlp.c_proj.weight": randn(width, 4 * width, std=(4 * width) ** -0.5),
            f"{prefix}.mlp.c_proj.bias": randn(width),
            f"{prefix}.ln_2.weight": ones(width),
            f"{prefix}.ln_2.bias": randn(width),
        }

    grid = image_size // patch_size
    sd: dict = {
        "visual.conv1.weight": randn(vision_width, 3, patch_size, patch_size, std=0.05),
        "visual.class_embedding": randn(vision_width, std=0.5),
        "visual.positional_embedding": randn(grid * grid + 1, vision_width, std=0.5),
        "visual.ln_pre.weight": ones(vision_width),
        "visual.ln_pre.bias": randn(vision_width),
        "visual.ln_post.weight": ones(vision_width),
        "visual.ln_post.bias": randn(vision_width),
        "visual.proj": randn(vision_width, embed_dim, std=vision_width**-0.5),
        "token_embedding.weight": randn(vocab_size, text_width, std=0.5),
        "positional_embedding": randn(context_length, text_width, std=0.1),
        "ln_final.weight": ones(text_width),
        "ln_final.bias": randn(text_width),
        "text_projection": randn(text_width, embed_dim, std=text_width**-0.5),
        "logit_scale": torch.tensor(4.6052, dtype=torch.float16),
        # OpenAI files carry these three scalars; loaders must tolerate them.
        "input_resolution": torch.tensor(image_size),
        "context_length": torch.tensor(context_length),
        "vocab_size": torch.tensor(vocab_size),
    }
    for i in range(vision_layers):
        sd.update(block(f"visual.transformer.resblocks.{i}", vision_width))
    for i in range(text_layers):
        sd.update(block(f"transformer.resblocks.{i}", text_width))
    return sd


def write_tiny_openai_clip(path: str | Path, **kwargs) -> Path:
    """Save a tiny CLIP state dict (see ``tiny_openai_state_dict``) to ``path`` with torch.save."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_openai_state_dict(**kwargs), path)
    return path
