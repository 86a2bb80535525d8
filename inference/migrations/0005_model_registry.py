# The model registry (ModelVersion, ActiveModelChoice) belongs to serving. Where the training app
# created its tables, its migration 0004 runs first and hands them over (renamed to this app's names,
# every row kept): this one only takes them into this app's state. On a database without the
# training app, it creates them.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import inference.models


def create_missing_tables(apps, schema_editor):
    existing = set(schema_editor.connection.introspection.table_names())
    for name in ("ModelVersion", "ActiveModelChoice"):
        model = apps.get_model("inference", name)
        if model._meta.db_table not in existing:
            schema_editor.create_model(model)


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("inference", "0004_job_lifecycle"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ModelVersion",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("run_id", models.BigIntegerField(blank=True, db_index=True, help_text="The training run that produced it; empty when registered by hand or when the run was deleted.", null=True)),
                        ("onnx_file", models.FileField(max_length=255, upload_to=inference.models.onnx_upload_path)),
                        ("architecture", models.CharField(max_length=64)),
                        ("version", models.CharField(help_text="Label written into the ONNX metadata (fer.version).", max_length=100)),
                        ("metrics", models.JSONField(blank=True, default=dict)),
                        ("param_count", models.PositiveBigIntegerField(blank=True, null=True)),
                        ("latency_ms", models.FloatField(blank=True, help_text="Median ONNX Runtime CPU latency at batch 1.", null=True)),
                        ("parity_max_abs_diff", models.FloatField(blank=True, help_text="ONNX vs PyTorch logits.", null=True)),
                        ("is_site_default", models.BooleanField(default=False, help_text="Serves everyone who has not chosen a model.")),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("owner", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="model_versions", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "ordering": ["-created_at", "-id"],
                        "constraints": [models.UniqueConstraint(condition=models.Q(("is_site_default", True)), fields=("is_site_default",), name="one_site_default_model")],
                    },
                ),
                migrations.CreateModel(
                    name="ActiveModelChoice",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("chosen_at", models.DateTimeField(auto_now=True)),
                        ("model_version", models.ForeignKey(blank=True, help_text="Empty: the model shipped with FERWeb.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name="chosen_by", to="inference.modelversion")),
                        ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="active_model_choice", to=settings.AUTH_USER_MODEL)),
                    ],
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(create_missing_tables, migrations.RunPython.noop),
    ]
