"""The data half of 0003_job_rows (a migration of its own: PostgreSQL will not alter a table in the
transaction that updated its rows)."""
from django.db import migrations
from django.db.models import F


def fill_times(apps, schema_editor):
    apps.get_model("reports", "ReconciliationImport").objects.update(started_at=F("created_at"),
                                                                    finished_at=F("created_at"))


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0003_job_rows'),
    ]

    operations = [
        migrations.RunPython(fill_times, migrations.RunPython.noop),
    ]
