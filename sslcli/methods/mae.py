"""Masked autoencoder: the pixel-space baseline of masked prediction (``train-latent
--objective masked --predict pixels``). He et al. 2022, "Masked Autoencoders Are Scalable
Vision Learners", Sec. 3, and the authors' ``models_mae.py`` (``random_masking``,
``forward_decoder``, ``forward_loss`` with ``norm_pix_loss``).

- Masks: 75% of the patches hidden (``--mask-ratio``), at random per image
  (``augment.patch_masks.random_masks``), drawn for the global batch from the run's seed and
  the step as masked latent prediction draws its own (``MaskedPrediction``).
- Encoder: the backbone on the visible patches alone (``models.tokens.visible_tokens``).
- Decoder: the narrow transformer of masked latent prediction (``MaskedPredictor``, width
  192, 4 blocks; MAE's light decoder is 512 wide and 8 deep at ViT-L scale) without z: the
  visible tokens and mask tokens at the hidden positions, each with its own position
  embedding, then a linear layer to the patch's pixels (MAE's ``decoder_pred``). MAE's
  decoder also takes the class token; this one takes the patch tokens alone, as the latent
  predictor does, so the two differ in their targets only.
- Loss: the mean squared error between the predicted and the real pixels of the hidden
  patches, each real patch normalised by its own mean and variance (``norm_pix_loss``,
  eps 1e-6): averaged over a patch's pixels, then over the hidden patches.
- Optimiser: AdamW, lr 1.5e-4 per 256, weight decay 0.05 (Appendix A.1; torch's betas,
  where MAE uses 0.9, 0.95); the ``minimal`` views (crop 0.08-1 and flip; MAE crops 0.2-1:
  ``--crop-scale 0.2,1``).
- The collapse guard and the online probe watch the encoder's visible tokens, averaged per
  image; ``held_out`` gives the pixel error on evaluation images, with fixed masks.

There is one answer per hidden region here: no z. It is the baseline the design argues
against (predicting every pixel of a region that has many right completions).
"""

from __future__ import annotations

import torch
from torch import nn

from sslcli.augment.patch_masks import MAE_MASK_RATIO, MultiBlockMasks, random_masks
from sslcli.engine.contract import StepOutput
from sslcli.methods.base import TrainingDefaults
from sslcli.methods.masked_latent import MaskedPrediction, MaskedPredictor, gather_rows
from sslcli.models.tokens import patch_grid

PIXEL_EPS = 1e-6
"""Added to each patch's variance before it divides (``norm_pix_loss``)."""


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, patches, patch * patch * C), patches row-major as a ViT embeds them,
    each patch's pixels row by row, channels last (MAE's ``patchify``)."""
    count, channels, height, width = images.shape
    rows, columns = height // patch, width // patch
    x = images.reshape(count, channels, rows, patch, columns, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(count, rows * columns, patch * patch * channels)


def normalised_patches(patches: torch.Tensor) -> torch.Tensor:
    """Each patch's pixels less their mean, over the square root of their variance + eps."""
    mean = patches.mean(dim=-1, keepdim=True)
    variance = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (variance + PIXEL_EPS).sqrt()


class MaskedAutoencoder(MaskedPrediction):
    defaults = TrainingDefaults(
        optimizer="adamw",
        lr_per_256=1.5e-4,
        weight_decay=0.05,
        preset="minimal",
    )

    def __init__(self, backbone: nn.Module, mask_ratio: float = MAE_MASK_RATIO) -> None:
        super().__init__(backbone)
        rows, columns = backbone.patch_embed.grid_size
        self.patch = backbone.patch_embed.patch_size[0]
        pixels = self.patch * self.patch * backbone.patch_embed.proj.in_channels
        self.decoder = MaskedPredictor(backbone.out_dim, rows * columns, 0, out_dim=pixels)
        self.mask_ratio = mask_ratio

    def draw_masks(
        self, count: int, rows: int, columns: int, generator: torch.Generator
    ) -> MultiBlockMasks:
        return random_masks(count, rows * columns, generator, self.mask_ratio)

    def pixel_error(
        self, images: torch.Tensor, masks: MultiBlockMasks
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pixel error per image (fp32) and the encoder's visible tokens."""
        context = self.context(images, masks)
        predicted = self.decoder(context, masks)[:, 0].float()  # (N, hidden, pixels)
        real = normalised_patches(patchify(images.float(), self.patch))
        wanted = gather_rows(real, masks.targets[:, 0])
        return (predicted - wanted).pow(2).mean(dim=-1).mean(dim=-1), context

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        images = views[0]  # one view: the masks hide what is predicted
        rows, columns = patch_grid(self.backbone, *images.shape[-2:])
        masks = self.masks(len(images), rows, columns, images.device)
        error, context = self.pixel_error(images, masks)
        return StepOutput(error.mean(), context.detach().float().mean(dim=1))

    def held_out(self, images: torch.Tensor) -> dict[str, float]:
        """The pixel error on images the run does not train on, in eval mode, with masks from
        the held-out seed (the same at every evaluation)."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            error, _ = self.pixel_error(images, self.held_out_masks(images))
        self.train(was_training)
        return {"held_out_pixel_error": float(error.mean())}
