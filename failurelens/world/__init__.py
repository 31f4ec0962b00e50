"""The benchmark world: procedurally rendered 64x64 images with planted failure modes.

No pretrained weights or real datasets are needed: classes are shapes, drawn in named colours on
textured scenes; in the biased splits (``train``/``val``/``test``) each class mostly sits on its
dominant background (some also in a dominant colour), and the configured *planted slices*
(class x rare background or colour) occur at exactly their fraction. ``balanced`` samples every
attribute uniformly. A classifier trained on ``train`` learns the shortcuts and fails on the
planted slices; failurelens has to find them.

    from failurelens.world import default_config, generate_world, render
    world = generate_world(default_config(), "out/world", workers=2)
    img = render("star", "water", "yellow", seed=3)        # one image, deterministic

CLI: ``failurelens world generate --out DIR`` / ``failurelens world register DIR --name N``.
"""

from .config import (
    BACKGROUND_PHRASES,
    COLOR_RGB,
    CORRUPTIONS,
    DEFAULT_CONFIG_PATH,
    SHAPES,
    ClassBias,
    PlantedSlice,
    WorldConfig,
    WorldConfigError,
    attribute_distribution,
    config_from_dict,
    default_config,
    load_config,
)
from .generate import (
    MANIFEST_COLUMNS,
    WorldManifest,
    generate_world,
    image_rng,
    load_world,
    measure_frequencies,
    plan_split,
    plan_world,
    planted_slice_mask,
    quota,
)
from .render import (
    DEFAULT_SIZES,
    ImageAttributes,
    RenderLayers,
    caption,
    contact_sheet,
    render,
    render_background,
    render_image,
    render_layers,
    shape_mask,
)

__all__ = [
    "BACKGROUND_PHRASES",
    "COLOR_RGB",
    "CORRUPTIONS",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_SIZES",
    "MANIFEST_COLUMNS",
    "SHAPES",
    "ClassBias",
    "ImageAttributes",
    "PlantedSlice",
    "RenderLayers",
    "WorldConfig",
    "WorldConfigError",
    "WorldManifest",
    "attribute_distribution",
    "caption",
    "config_from_dict",
    "contact_sheet",
    "default_config",
    "generate_world",
    "image_rng",
    "load_config",
    "load_world",
    "measure_frequencies",
    "plan_split",
    "plan_world",
    "planted_slice_mask",
    "quota",
    "render",
    "render_background",
    "render_image",
    "render_layers",
    "shape_mask",
]
