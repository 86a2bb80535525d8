"""The seven expression classes (contract: FER2013 order) and the names imports accept for them."""
import re

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASSES)
CLASS_INDEX = {name: index for index, name in enumerate(CLASSES)}

SYNONYMS = {
    "angry": ("anger", "angry", "mad", "an"),
    "disgust": ("disgust", "disgusted", "disgusting", "di"),
    "fear": ("fear", "fearful", "afraid", "scared", "fe"),
    "happy": ("happy", "happiness", "joy", "happily", "ha"),
    "sad": ("sad", "sadness", "unhappy", "sa"),
    "surprise": ("surprise", "surprised", "suprise", "su"),
    "neutral": ("neutral", "neutrality", "calm", "ne"),
}
_LOOKUP = {alias: name for name, aliases in SYNONYMS.items() for alias in aliases}


def canonical_class(raw: str) -> str | None:
    """Map a folder or label name onto one of CLASSES; None when it cannot be mapped.

    Accepts case, surrounding digits ("3_happy"), plurals ("angers") and the synonyms above.
    """
    key = re.sub(r"[^a-z]", "", raw.lower())
    if key in _LOOKUP:
        return _LOOKUP[key]
    if key.endswith("s") and key[:-1] in _LOOKUP:
        return _LOOKUP[key[:-1]]
    return None
