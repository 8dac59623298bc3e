from django.urls import path

from archiver import views

app_name = "archiver"
urlpatterns = [
    path("runs/", views.ArchiveRunListView.as_view(), name="run-list"),
    path("runs/start/", views.start_run, name="run-start"),
    path("runs/<int:pk>/", views.ArchiveRunDetailView.as_view(), name="run-detail"),
    path("runs/<int:pk>/progress.json", views.run_progress, name="run-progress"),
    path("restore/", views.RestoreView.as_view(), name="restore"),
    path("restore/start/", views.start_restore, name="restore-start"),
    path("restore/<int:pk>/", views.RestoreDetailView.as_view(), name="restore-detail"),
    path("restore/<int:pk>/status.json", views.restore_status, name="restore-status"),
    path("archives/<int:pk>/dicom/", views.download_rendition, name="rendition-download"),
    path("archives/<int:pk>/dicom/make/", views.make_rendition, name="rendition-make"),
    path("archives/<int:pk>/dicom/anonymised/", views.research_export_view, name="research-export"),
    path("storage/", views.TargetListView.as_view(), name="target-list"),
    path("storage/<int:pk>/", views.TargetDetailView.as_view(), name="target-detail"),
]
