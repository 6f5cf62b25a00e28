"""The ROC-AUC that scores F on true against wrong continuations, and the targets' encoder."""

import numpy as np

from sslcli.engine.runtime import make_runtime
from sslcli.eval.features import extract_features
from sslcli.inference.continuations import roc_auc
from sslcli.inference.energy import TargetEncoder
from sslcli.methods.latent import LatentPredictive
from sslcli.models.backbones import BackboneOptions, build_backbone


def test_roc_auc_is_the_share_of_wrong_continuations_above_true_ones_ties_half() -> None:
    rng = np.random.default_rng(0)
    true, wrong = rng.normal(0, 1, 40).round(1), rng.normal(0.5, 1, 30).round(1)
    pairs = [(w > t) + 0.5 * (w == t) for w in wrong for t in true]
    assert roc_auc(true, wrong) == sum(pairs) / len(pairs)
    assert roc_auc(np.zeros(3), np.ones(2)) == 1.0
    assert roc_auc(np.ones(3), np.zeros(2)) == 0.0
    assert roc_auc(np.ones(3), np.ones(2)) == 0.5


def test_embedding_targets_leaves_a_loaded_latent_model_in_eval_mode() -> None:
    """extract_features restores the mode of the module it is given: a TargetEncoder made in
    train mode around an eval-mode model turned the model's BatchNorm to training."""
    latent = LatentPredictive(build_backbone("tiny-cnn", BackboneOptions()), 32, 16, 4).eval()
    extract_features(
        TargetEncoder(latent), np.zeros((2, 16, 16, 3), np.uint8), make_runtime("cpu", "fp32", 0)
    )
    assert not latent.training and not latent.backbone.training
