# The model registry (ModelVersion, ActiveModelChoice) moves to the inference app, which serves it;
# its tables keep their names and every row (inference sets db_table to them).
#
# 1. The version's run becomes a plain id on the inference side (the lower layer names no training
#    model), so its foreign key constraint is dropped here, while the training app still owns the
#    table; the column, its values and its index stay.
# 2. Their tables take the inference app's names (a rename: every row, index and constraint stays).
# 3. Both models leave this app's state; inference.0005 takes them over without touching the database.
# 4. Their content types follow them, so admin history and permissions stay attached.

import django.db.models.deletion
from django.db import migrations, models

MOVED = ("modelversion", "activemodelchoice")


def move_content_types(apps, schema_editor, *, source="training_jobs", target="inference"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label=target, model=model).exists():
            ContentType.objects.filter(app_label=source, model=model).update(app_label=target)


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, source="inference", target="training_jobs")


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("training_jobs", "0003_job_lifecycle"),
    ]
    # Declared from this side: the inference app (the lower layer) knows nothing of this one.
    run_before = [("inference", "0005_model_registry")]

    operations = [
        migrations.AlterField(
            model_name="modelversion",
            name="run",
            field=models.ForeignKey(blank=True, db_constraint=False, null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name="model_versions",
                                    to="training_jobs.trainingrun"),
        ),
        migrations.AlterModelTable(name="modelversion", table="inference_modelversion"),
        migrations.AlterModelTable(name="activemodelchoice", table="inference_activemodelchoice"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ActiveModelChoice"),
                migrations.DeleteModel(name="ModelVersion"),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
