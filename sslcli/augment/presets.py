"""Named view recipes of the published methods (SimCLR, BYOL, VICReg, MoCo v2, DINO), and one
measured on handwritten digits.

A preset is a tuple of recipes; view k uses recipe k, and views past the last recipe reuse
it (so DINO's local crops all use its last recipe).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sslcli.augment.recipe import ViewRecipe
from sslcli.registry import Registry


@dataclass(frozen=True)
class Preset:
    recipes: tuple[ViewRecipe, ...]
    default_views: int
    global_views: int
    """Views 0..global_views-1 are global; later ones are local crops (DINO)."""

    def recipe(self, view: int) -> ViewRecipe:
        return self.recipes[min(view, len(self.recipes) - 1)]


PRESETS: Registry[Preset] = Registry("augmentation preset")

_BYOL_1 = ViewRecipe(blur_prob=1.0)
_BYOL_2 = ViewRecipe(blur_prob=0.1, solarize_prob=0.2)


@PRESETS.register("simclr", "SimCLR: crop 0.08-1, flip, strong jitter 0.8 (p .8), grey .2, blur .5")
def simclr() -> Preset:
    recipe = ViewRecipe(jitter=(0.8, 0.8, 0.8, 0.2), blur_prob=0.5)
    return Preset((recipe,), default_views=2, global_views=2)


@PRESETS.register("byol", "BYOL: jitter .4/.4/.2/.1, blur 1.0 vs .1, solarize 0 vs .2")
def byol() -> Preset:
    return Preset((_BYOL_1, _BYOL_2), default_views=2, global_views=2)


@PRESETS.register("vicreg", "VICReg: the BYOL recipe (as the VICReg paper's code)")
def vicreg() -> Preset:
    return Preset((_BYOL_1, _BYOL_2), default_views=2, global_views=2)


@PRESETS.register("moco-v2", "MoCo v2: crop 0.2-1, jitter .4/.4/.4/.1, grey .2, blur .5")
def moco_v2() -> Preset:
    recipe = ViewRecipe(crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), blur_prob=0.5)
    return Preset((recipe,), default_views=2, global_views=2)


@PRESETS.register("dino", "DINO multi-crop: 2 global (0.4-1) + 6 local 96 px crops (0.05-0.4)")
def dino() -> Preset:
    first = ViewRecipe(crop_scale=(0.4, 1.0), blur_prob=1.0)
    second = ViewRecipe(crop_scale=(0.4, 1.0), blur_prob=0.1, solarize_prob=0.2)
    local = ViewRecipe(size=96, crop_scale=(0.05, 0.4), blur_prob=0.5)
    return Preset((first, second, local), default_views=8, global_views=2)


@PRESETS.register("minimal", "crop 0.08-1 and flip only")
def minimal() -> Preset:
    recipe = ViewRecipe(jitter=(0.0, 0.0, 0.0, 0.0), jitter_prob=0.0, grayscale_prob=0.0)
    return Preset((recipe,), default_views=2, global_views=2)


@PRESETS.register(
    "digits",
    "handwriting, characters, small grey images: crop 0.6-1, no flip, rotation +-15 deg, "
    "brightness/contrast .4 (p .8), blur .5",
)
def digits() -> Preset:
    """SimCLR's recipe made for upright strokes: a mild crop keeps the whole character, no
    mirror image, a small turn for the writer's slant, no colour. On the OpenCV digits it
    took both SimCLR and VICReg past raw pixels in kNN accuracy (benchmarks/RESULTS.md)."""
    recipe = ViewRecipe(
        crop_scale=(0.6, 1.0),
        flip_prob=0.0,
        jitter=(0.4, 0.4, 0.0, 0.0),
        grayscale_prob=0.0,
        blur_prob=0.5,
        rotation=15.0,
    )
    return Preset((recipe,), default_views=2, global_views=2)


def customise(preset: Preset, global_changes: dict, local_changes: dict) -> Preset:
    """A copy of ``preset`` with fields replaced in its global and its local recipes."""
    recipes = tuple(
        replace(recipe, **(global_changes if index < preset.global_views else local_changes))
        for index, recipe in enumerate(preset.recipes)
    )
    return replace(preset, recipes=recipes)
