from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "ferweb.labeling"
    label = "labeling"
    verbose_name = "Labeling"
