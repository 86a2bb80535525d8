# Inference jobs follow the one job lifecycle (ferweb.jobs): `state` is renamed `status` (every
# row keeps its value), and a queued job holds no heartbeat (earlier versions kept the dead
# worker's last one when they queued a job again), since a claim takes only jobs without one.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def release_queued_jobs(apps, schema_editor):
    apps.get_model("inference", "InferenceJob").objects.filter(status="queued").update(heartbeat_at=None, worker="")


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("inference", "0003_job_upload_removed_when_finished"),
    ]

    operations = [
        migrations.RenameField(model_name="inferencejob", old_name="state", new_name="status"),
        migrations.AlterField(
            model_name='inferencejob',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0, help_text='Times a worker started the job, restarts after a worker died included.'),
        ),
        migrations.AlterField(
            model_name='inferencejob',
            name='created_at',
            field=models.DateTimeField(auto_now_add=True, help_text='When the job was created.'),
        ),
        migrations.AlterField(
            model_name='inferencejob',
            name='error',
            field=models.CharField(blank=True, help_text='Machine-readable error code, e.g. worker_lost.', max_length=64),
        ),
        migrations.AlterField(
            model_name='inferencejob',
            name='finished_at',
            field=models.DateTimeField(blank=True, help_text='When the job last ended, whatever the outcome.', null=True),
        ),
        migrations.AlterField(
            model_name='inferencejob',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life from the worker that holds the job; empty while none does.', null=True),
        ),
        migrations.AlterField(
            model_name='inferencejob',
            name='owner',
            field=models.ForeignKey(help_text='Who started the job; they and staff see it.', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='inferencejob',
            name='progress',
            field=models.FloatField(default=0, help_text='How far the job is, 0-100.'),
        ),
        migrations.AlterField(
            model_name='inferencejob',
            name='started_at',
            field=models.DateTimeField(blank=True, help_text='When a worker first started the job.', null=True),
        ),
        migrations.AlterField(
            model_name='inferencejob',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], db_index=True, default='queued', help_text='Where the job is in its lifecycle; the choices are the states of this kind of job.', max_length=16),
        ),
        migrations.AlterField(
            model_name='inferencejob',
            name='worker',
            field=models.CharField(blank=True, help_text='Name of the Celery worker that holds the job; empty while none does.', max_length=255),
        ),
        migrations.RunPython(release_queued_jobs, migrations.RunPython.noop),
    ]
