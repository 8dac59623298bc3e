"""The data half of 0003_job_rows (a migration of its own: PostgreSQL will not alter a table in the
transaction that updated its rows)."""
from django.db import migrations
from django.db.models import F


def fill_created_at(apps, schema_editor):
    apps.get_model("curation", "CurationRun").objects.update(created_at=F("started_at"))


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0003_job_rows'),
    ]

    operations = [
        migrations.RunPython(fill_created_at, migrations.RunPython.noop),
    ]
