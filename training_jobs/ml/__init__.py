"""Pure-ML library of FERWeb: architectures, recipe, augmentation, trainer, metrics, export, occlusion.

Nothing here imports Django, so it runs from a notebook, the command line or a Celery task alike.
"""
# The class order of the model contract (DESIGN.md), repeated here so that importing this package
# does not pull in the Django project; a test checks it against ferweb.classes.
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASSES)
