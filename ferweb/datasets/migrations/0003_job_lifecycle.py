# The dataset import follows the one job lifecycle (ferweb.jobs): the shared columns, with
# import_worker renamed to worker so that every existing row keeps its value.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("datasets", "0002_import_heartbeat"),
    ]

    operations = [
        migrations.RenameField(model_name="dataset", old_name="import_worker", new_name="worker"),
        migrations.AddField(
            model_name='dataset',
            name='started_at',
            field=models.DateTimeField(blank=True, help_text='When a worker first started the job.', null=True),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0, help_text='Times a worker started the job, restarts after a worker died included.'),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='created_at',
            field=models.DateTimeField(auto_now_add=True, help_text='When the job was created.'),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='error',
            field=models.CharField(blank=True, help_text='Machine-readable error code, e.g. worker_lost.', max_length=64),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='finished_at',
            field=models.DateTimeField(blank=True, help_text='When the job last ended, whatever the outcome.', null=True),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life from the worker that holds the job; empty while none does.', null=True),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='owner',
            field=models.ForeignKey(help_text='Who started the job; they and staff see it.', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='progress',
            field=models.FloatField(default=0, help_text='How far the job is, 0-100.'),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='status',
            field=models.CharField(choices=[('importing', 'Importing'), ('ready', 'Ready'), ('failed', 'Failed')], db_index=True, default='importing', help_text='Where the job is in its lifecycle; the choices are the states of this kind of job.', max_length=16),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='worker',
            field=models.CharField(blank=True, help_text='Name of the Celery worker that holds the job; empty while none does.', max_length=255),
        ),
    ]
