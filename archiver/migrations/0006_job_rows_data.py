"""The data half of 0005_job_rows (a migration of its own: PostgreSQL will not alter a table in the
transaction that updated its rows)."""
from django.db import migrations
from django.db.models import F


def fill_restore_rows(apps, schema_editor):
    RestoreRecord = apps.get_model("archiver", "RestoreRecord")
    RestoreRecord.objects.update(created_at=F("started_at"))
    RestoreRecord.objects.filter(status__in=["failed", "refused"]).update(error=F("reason"))


class Migration(migrations.Migration):

    dependencies = [
        ('archiver', '0005_job_rows'),
    ]

    operations = [
        migrations.RunPython(fill_restore_rows, migrations.RunPython.noop),
    ]
