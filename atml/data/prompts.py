"""What CLIP is told about each dataset's classes: the text that names a class in a prompt, and
the prompt ensembles CLIP's authors published (openai/CLIP, data/prompts.md) for the datasets
atml reads. FashionMNIST has none: CLIP's paper did not evaluate it."""

from __future__ import annotations

PUBLISHED = "published"  # a zero-shot strategy that means "CLIP's own ensemble for this dataset"

_CIFAR_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)
PUBLISHED_TEMPLATES: dict[str, tuple[str, ...]] = {
    "stl10": ("a photo of a {}.", "a photo of the {}."),
    "cifar10": _CIFAR_TEMPLATES,
    "cifar100": _CIFAR_TEMPLATES,
    "mnist": ('a photo of the number: "{}".',),
}


def published_templates(dataset: str) -> tuple[str, ...] | None:
    return PUBLISHED_TEMPLATES.get(dataset)


def class_prompt_names(classes: tuple[str, ...], overrides: dict[str, str] | None = None) -> list[str]:
    """Dataset class names as a prompt says them: CIFAR-100's `aquarium_fish` → `aquarium fish`;
    `overrides` maps a dataset class name to the user's own text."""
    overrides = overrides or {}
    return [overrides.get(c, c.replace("_", " ")) for c in classes]


def fill(templates: list[str] | tuple[str, ...], name: str) -> list[str]:
    return [t.replace("{}", name) for t in templates]
