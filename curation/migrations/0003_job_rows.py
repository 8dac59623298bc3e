"""Curation runs become job rows (core.jobs.JobRow): ``started_by`` is ``requested_by``, a
``created_at`` distinct from ``started_at`` (when a worker began; existing runs: the same time), a
heartbeat, and a ``queued`` status for runs a page handed to a worker."""
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0002_alter_acknowledgement_patient_and_more'),
    ]

    operations = [
        migrations.RenameField(model_name='curationrun', old_name='started_by', new_name='requested_by'),
        migrations.AlterField(
            model_name='curationrun',
            name='requested_by',
            field=models.CharField(help_text="User name, 'scheduler', or the command-line account", max_length=150),
        ),
        migrations.AddField(
            model_name='curationrun',
            name='created_at',
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name='curationrun',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life of the worker doing the job', null=True),
        ),
        migrations.AlterField(
            model_name='curationrun',
            name='started_at',
            field=models.DateTimeField(blank=True, help_text='When a worker began the work', null=True),
        ),
        migrations.AlterField(
            model_name='curationrun',
            name='error',
            field=models.TextField(blank=True, help_text='Why the job failed; blank while it has not'),
        ),
        migrations.AlterField(
            model_name='curationrun',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=16),
        ),
        migrations.AlterModelOptions(name='curationrun', options={'ordering': ['-created_at', '-pk']}),
    ]
