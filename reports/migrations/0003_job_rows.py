"""Reconciliations become job rows (core.jobs.JobRow): ``imported_by`` is ``requested_by``,
``imported_at`` is ``created_at``; existing imports started and finished when they were imported
(a reconciliation is done at once)."""
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0002_alter_reconciliationentry_archive_and_more'),
    ]

    operations = [
        migrations.RenameField(model_name='reconciliationimport', old_name='imported_by', new_name='requested_by'),
        migrations.AlterField(
            model_name='reconciliationimport',
            name='requested_by',
            field=models.CharField(help_text="User name, 'scheduler', or the command-line account", max_length=150),
        ),
        migrations.RenameField(model_name='reconciliationimport', old_name='imported_at', new_name='created_at'),
        migrations.AlterField(
            model_name='reconciliationimport',
            name='created_at',
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name='reconciliationimport',
            name='started_at',
            field=models.DateTimeField(blank=True, help_text='When a worker began the work', null=True),
        ),
        migrations.AddField(
            model_name='reconciliationimport',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='reconciliationimport',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life of the worker doing the job', null=True),
        ),
        migrations.AlterField(
            model_name='reconciliationimport',
            name='error',
            field=models.TextField(blank=True, help_text='Why the job failed; blank while it has not'),
        ),
        migrations.AlterField(
            model_name='reconciliationimport',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=16),
        ),
        migrations.AlterModelOptions(name='reconciliationimport', options={'ordering': ['-created_at', '-id']}),
    ]
