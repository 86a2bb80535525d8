from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "ferweb.datasets"
    label = "datasets"
    verbose_name = "Datasets"
