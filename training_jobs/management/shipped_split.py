"""The shipped model's own split of the dataset file it trained on, for the commands that need it
(benchmark_label_finder scores its hold-out; shipped_face_prints prints its training faces):
their shared options, and the split itself, drawn as the model's training drew it."""
from django.conf import settings


def add_split_arguments(parser) -> None:
    parser.add_argument("--dataset", required=True, help="The dataset file the shipped model trained on.")
    parser.add_argument("--model", default=str(settings.FERWEB_DEFAULT_MODEL), help="ONNX model (default: shipped).")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--split-seed", type=int, default=42, help="The seed of the model's own hold-out.")


def shipped_split(opts: dict):
    """(TrainData, DataSplits): the dataset file of --dataset, split with the model's fraction and seed."""
    from training_jobs.ml.data import load_dataset_file, split_data

    data = load_dataset_file(opts["dataset"])
    return data, split_data(data, validation_fraction=opts["validation_fraction"], seed=opts["split_seed"])
