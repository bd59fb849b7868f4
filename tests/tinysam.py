"""A tiny random-weight Segment Anything model, saved as a transformers folder (tests, bench).

Encoder on a 64×64 input (8×8 patches of 8 px), 32 channels, 2 layers: the real code paths,
milliseconds of compute. Load it through `app.inference.segment`, never directly.
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_sam(folder: str | Path, *, image_size: int = 64, seed: int = 0) -> Path:
    import torch
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    torch.manual_seed(seed)
    config = SamConfig(
        vision_config=dict(
            hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2, image_size=image_size,
            patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=16, mlp_dim=64,
        ),
        prompt_encoder_config=dict(hidden_size=32, image_size=image_size, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32),
    )
    low_res = image_size // 2
    processor = SamProcessor(
        image_processor=SamImageProcessorPil(
            size={"longest_edge": image_size},
            pad_size={"height": image_size, "width": image_size},
            mask_size={"longest_edge": low_res},
            mask_pad_size={"height": low_res, "width": low_res},
        )
    )
    folder = Path(folder)
    SamModel(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
