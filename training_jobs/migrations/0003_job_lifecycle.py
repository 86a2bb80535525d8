# Training runs follow the one job lifecycle (ferweb.jobs): `heartbeat` is renamed `heartbeat_at`
# (every row keeps its value), and a queued run holds no heartbeat (earlier versions kept the dead
# worker's last one when they queued a run again), since a claim takes only runs without one.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def release_queued_runs(apps, schema_editor):
    apps.get_model("training_jobs", "TrainingRun").objects.filter(status="queued").update(heartbeat_at=None, worker="")


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("training_jobs", "0002_shipped_model_choice"),
    ]

    operations = [
        migrations.RenameField(model_name="trainingrun", old_name="heartbeat", new_name="heartbeat_at"),
        migrations.AlterField(
            model_name='trainingrun',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0, help_text='Times a worker started the job, restarts after a worker died included.'),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='cancel_requested',
            field=models.BooleanField(default=False, help_text='The run was asked to stop; the worker training it stops within a batch.'),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='celery_task_id',
            field=models.CharField(blank=True, help_text='Id of the last task message sent for it.', max_length=64),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='created_at',
            field=models.DateTimeField(auto_now_add=True, help_text='When the job was created.'),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='error',
            field=models.CharField(blank=True, help_text='Machine-readable error code, e.g. worker_lost.', max_length=64),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='finished_at',
            field=models.DateTimeField(blank=True, help_text='When the job last ended, whatever the outcome.', null=True),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life from the worker that holds the job; empty while none does.', null=True),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='owner',
            field=models.ForeignKey(help_text='Who started the job; they and staff see it.', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='progress',
            field=models.FloatField(default=0, help_text='How far the job is, 0-100.'),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='started_at',
            field=models.DateTimeField(blank=True, help_text='When a worker first started the job.', null=True),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], db_index=True, default='queued', help_text='Where the job is in its lifecycle; the choices are the states of this kind of job.', max_length=16),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='worker',
            field=models.CharField(blank=True, help_text='Name of the Celery worker that holds the job; empty while none does.', max_length=255),
        ),
        migrations.RunPython(release_queued_runs, migrations.RunPython.noop),
    ]
