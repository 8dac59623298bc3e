"""Every periodic task is declared in pdas/schedules.py and created after ``migrate``; edited entries are left alone."""
from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from pdas.schedules import DEFAULT_SCHEDULES, ensure_default_schedules

pytestmark = pytest.mark.django_db

WEEKLY_LOSS_SCAN = "lossdetect.tasks.run_scheduled_scans"


def test_every_default_entry_exists_after_migrate():
    assert set(PeriodicTask.objects.values_list("task", flat=True)) >= {entry.task for entry in DEFAULT_SCHEDULES}
    task = PeriodicTask.objects.get(task=WEEKLY_LOSS_SCAN)  # created by post_migrate
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "6", "1")
    assert task.enabled


def test_an_edited_entry_is_left_alone_and_a_deleted_one_comes_back():
    task = PeriodicTask.objects.get(task=WEEKLY_LOSS_SCAN)
    task.enabled = False
    task.save()
    assert ensure_default_schedules() == []
    assert PeriodicTask.objects.get(task=WEEKLY_LOSS_SCAN).enabled is False
    PeriodicTask.objects.filter(task=WEEKLY_LOSS_SCAN).delete()
    assert ensure_default_schedules() == ["Weekly loss scan (previous Monday to Sunday)"]
    assert PeriodicTask.objects.get(task=WEEKLY_LOSS_SCAN).enabled
