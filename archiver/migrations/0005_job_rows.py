"""Archive runs and restores become job rows (core.jobs.JobRow): one name for who asked
(``requested_by``), a ``created_at`` distinct from ``started_at`` (when a worker began), a
heartbeat, and ``error``. Existing rows keep their data: a restore's creation time is the time it
started, and a failed or refused restore's error is its reason."""
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('archiver', '0004_remove_archivecopy_archive_and_more'),
    ]

    operations = [
        migrations.RenameField(model_name='archiverun', old_name='started_by', new_name='requested_by'),
        migrations.AlterField(
            model_name='archiverun',
            name='requested_by',
            field=models.CharField(help_text="User name, 'scheduler', or the command-line account", max_length=150),
        ),
        migrations.AlterField(
            model_name='archiverun',
            name='created_at',
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name='archiverun',
            name='started_at',
            field=models.DateTimeField(blank=True, help_text='When a worker began the work', null=True),
        ),
        migrations.AlterField(
            model_name='archiverun',
            name='error',
            field=models.TextField(blank=True, help_text='Why the job failed; blank while it has not'),
        ),
        migrations.AddField(
            model_name='archiverun',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life of the worker doing the job', null=True),
        ),
        migrations.AddField(
            model_name='restorerecord',
            name='created_at',
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name='restorerecord',
            name='error',
            field=models.TextField(blank=True, help_text='Why the job failed; blank while it has not'),
        ),
        migrations.AddField(
            model_name='restorerecord',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life of the worker doing the job', null=True),
        ),
        migrations.AlterField(
            model_name='restorerecord',
            name='requested_by',
            field=models.CharField(help_text="User name, 'scheduler', or the command-line account", max_length=150),
        ),
        migrations.AlterField(
            model_name='restorerecord',
            name='started_at',
            field=models.DateTimeField(blank=True, help_text='When a worker began the work', null=True),
        ),
        migrations.AlterField(
            model_name='restorerecord',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed'), ('refused', 'Refused')], default='queued', max_length=16),
        ),
        migrations.AlterModelOptions(name='restorerecord', options={'ordering': ['-created_at']}),
    ]
