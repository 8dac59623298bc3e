"""Loss scans become job rows (core.jobs.JobRow): a ``created_at`` distinct from ``started_at``
(when a worker began; existing scans: the same time), a heartbeat, and a ``queued`` status for
scans handed to a worker."""
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('lossdetect', '0002_alter_lossfinding_archive_alter_lossfinding_tps_plan_and_more'),
    ]

    operations = [
        migrations.AddField(
            model_name='lossscan',
            name='created_at',
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name='lossscan',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text='Last sign of life of the worker doing the job', null=True),
        ),
        migrations.AlterField(
            model_name='lossscan',
            name='requested_by',
            field=models.CharField(help_text="User name, 'scheduler', or the command-line account", max_length=150),
        ),
        migrations.AlterField(
            model_name='lossscan',
            name='started_at',
            field=models.DateTimeField(blank=True, help_text='When a worker began the work', null=True),
        ),
        migrations.AlterField(
            model_name='lossscan',
            name='error',
            field=models.TextField(blank=True, help_text='Why the job failed; blank while it has not'),
        ),
        migrations.AlterField(
            model_name='lossscan',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=16),
        ),
        migrations.AlterModelOptions(name='lossscan', options={'ordering': ['-created_at']}),
    ]
