"""SSL methods: one module per objective, all behind one contract (``base.SSLMethod``).

The registry maps a name to the method's class (imported when asked for), whose
``defaults`` hold its published training settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sslcli.registry import Registry

if TYPE_CHECKING:
    from sslcli.methods.base import SSLMethod

METHODS: Registry[type[SSLMethod]] = Registry("SSL method")


@METHODS.register(
    "simclr",
    "SimCLR: 2 views, NT-Xent with negatives from the global batch; LARS, lr 0.3 per 256, "
    "wd 1e-6, temperature 0.1, projector 2048-128",
)
def simclr() -> type[SSLMethod]:
    from sslcli.methods.simclr import SimCLR

    return SimCLR


@METHODS.register(
    "barlow",
    "Barlow Twins: 2 views, cross-correlation to the identity on the global batch, lambda "
    "0.0051; LARS, lr 0.2 per 256 (biases and BatchNorm 0.0048), wd 1.5e-6, projector "
    "8192-8192-8192",
)
def barlow() -> type[SSLMethod]:
    from sslcli.methods.barlow import BarlowTwins

    return BarlowTwins


@METHODS.register(
    "byol",
    "BYOL: 2 views, predictor and momentum target (0.996 -> 1), no negatives; LARS, lr 0.2 "
    "per 256, wd 1.5e-6, projector and predictor 4096-256",
)
def byol() -> type[SSLMethod]:
    from sslcli.methods.byol import BYOL

    return BYOL


@METHODS.register(
    "moco",
    "MoCo v3: 2 views, momentum encoder (0.99 -> 1), InfoNCE against the global batch's keys, "
    "temperature 1.0; LARS, lr 0.3 per 256, wd 1.5e-6, projector 4096-256 (BatchNorm on its "
    "output), predictor 4096-256",
)
def moco() -> type[SSLMethod]:
    from sslcli.methods.moco import MoCo

    return MoCo


@METHODS.register(
    "simsiam",
    "SimSiam: 2 views, predictor and stop-gradient, no negatives; SGD, lr 0.05 per 256 (the "
    "predictor's not decayed), wd 1e-4 on every parameter, projector 2048-2048-2048, "
    "predictor 512",
)
def simsiam() -> type[SSLMethod]:
    from sslcli.methods.simsiam import SimSiam

    return SimSiam


@METHODS.register(
    "vicreg",
    "VICReg: 2 views, no negatives; invariance 25, variance 25, covariance 1 on the global "
    "batch; LARS, lr 0.2 per 256, wd 1e-6, expander 8192-8192-8192",
)
def vicreg() -> type[SSLMethod]:
    from sslcli.methods.vicreg import VICReg

    return VICReg


@METHODS.register(
    "dino",
    "DINO: 2 global + local crops (dino preset), EMA teacher (0.996 -> 1) on the global "
    "crops, centring over the global batch, teacher temperature 0.04 -> 0.07, prototypes "
    "scaled to the data (65536 for ImageNet); AdamW, lr 5e-4 per 256, wd 0.04 -> 0.4, "
    "gradients clipped at 3, last layer frozen for the first epoch",
)
def dino() -> type[SSLMethod]:
    from sslcli.methods.dino import DINO

    return DINO


@METHODS.register(
    "ibot",
    "iBOT on DINO (DINOv2's two losses): DINO, plus the student's blockwise-masked patches "
    "(half of the global crops, 10-50% of their patches; --mask-ratio) predicting the "
    "teacher's at the same patches, through the same head; ViTs only",
)
def ibot() -> type[SSLMethod]:
    from sslcli.methods.ibot import IBOT

    return IBOT


@METHODS.register(
    "lejepa",
    "LeJEPA: 2 global + local crops (dino preset), views predict the global views' mean, "
    "SIGReg (Epps-Pulley on 1024 random directions a step) makes embeddings isotropic "
    "Gaussian; one trade-off --sigreg-weight 0.05; AdamW, lr 5e-4 per 256, wd 0.05, "
    "projector 2048-2048-64",
)
def lejepa() -> type[SSLMethod]:
    from sslcli.methods.lejepa import LeJEPA

    return LeJEPA


@METHODS.register(
    "distill",
    "distillation from a frozen teacher (--teacher RUN_OR_FOLDER): a linear projection of the "
    "student's features regresses the teacher's, standardised per dimension over the global "
    "batch, by MSE (after LightlyTrain's distillationv2); LARS, lr 1.5 per 256, wd 1e-6",
)
def distill() -> type[SSLMethod]:
    from sslcli.methods.distill import Distill

    return Distill


@METHODS.register(
    "latent",
    "latent-variable predictive architecture (train-latent): predictor g(s_x, z) with a "
    "regularised latent z inferred by gradient steps; target the other view's embedding "
    "(online, the default) or a momentum copy's (ema); VICReg variance and covariance; LARS, "
    "lr 0.2 per 256, wd 1e-6, expander 2048-2048-256, z of 16 dimensions",
)
def latent() -> type[SSLMethod]:
    from sslcli.methods.latent import LatentPredictive

    return LatentPredictive


@METHODS.register(
    "masked-latent",
    "masked latent prediction (train-latent --objective masked): I-JEPA's multi-block masks, "
    "a context encoder on the visible patches, an EMA target encoder, a narrow ViT predictor "
    "of the hidden blocks' patch representations given their positions and a regularised "
    "latent z (--latent-dim 0: none, I-JEPA); ViTs only; AdamW, lr 1.25e-4 per 256, "
    "wd 0.04 -> 0.4",
)
def masked_latent() -> type[SSLMethod]:
    from sslcli.methods.masked_latent import MaskedLatent

    return MaskedLatent


@METHODS.register(
    "mae",
    "masked autoencoder, the pixel baseline of masked prediction (train-latent --objective "
    "masked --predict pixels): 75% of the patches hidden at random (--mask-ratio), the "
    "encoder on the visible ones, a light decoder of the hidden patches' normalised pixels; "
    "no z; ViTs only; AdamW, lr 1.5e-4 per 256, wd 0.05",
)
def mae() -> type[SSLMethod]:
    from sslcli.methods.mae import MaskedAutoencoder

    return MaskedAutoencoder
