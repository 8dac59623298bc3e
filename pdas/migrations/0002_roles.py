"""The roles viewer, physicist, archive admin and auditor (sites/roles.py) with their permissions."""
from django.db import migrations


def create_roles(apps, schema_editor):
    from sites.roles import sync_roles

    sync_roles(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("pdas", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("archiver", "0001_initial"),
        ("curation", "0001_initial"),
        ("lossdetect", "0001_initial"),
        ("reports", "0001_initial"),
        ("audit", "0001_initial"),
    ]

    # Reversing leaves the groups: they may have members by then.
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
