"""Pure-ML library of FERWeb: architectures, recipe, augmentation, trainer, metrics, export, occlusion.

Nothing here imports Django, so it runs from a notebook, the command line or a Celery task alike.
What it shares with the web app (the classes, preprocessing, the dataset reader and its guards, the
model contract) comes from the framework-free core, `fercore`.
"""
from fercore.classes import CLASSES, NUM_CLASSES

__all__ = ("CLASSES", "NUM_CLASSES")
