"""The framework-free core of FERWeb: what every layer above shares, with no Django and no torch.

- `classes`: the seven expression classes in contract order and the names imports accept;
- `preprocess`: face size, crops, the one [0, 1] scaling and the `fer.input` record of it;
- `images`: the one guarded image decoder and the one list of image file suffixes;
- `archive`: the one guarded zip reader and its `Limits`;
- `model_contract`: the `fer.*` metadata of every ONNX model, written and read in one place;
- `catalogue`: the architectures FERWeb can train, as data;
- `faces`: the face detector (BlazeFace, else OpenCV's Haar cascade) that imports and serving share;
- `readers`: datasets (zip, folder, FER2013 CSV) read into 48x48 faces, for imports and the ML loader.

Limits are arguments: Django code builds them from settings (`archive.Limits.from_settings`).
Nothing here imports from `ferweb`, `inference`, `training_jobs` or Django, so the pure-ML code
(`training_jobs/ml`) can use it without loading the web stack.
"""
