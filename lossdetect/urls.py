from django.urls import path

from lossdetect import views

app_name = "lossdetect"

urlpatterns = [
    path("", views.ScanListView.as_view(), name="scan-list"),
    path("scan/new/", views.start_manual_scan, name="scan-start"),
    path("scan/<int:pk>/", views.ScanDetailView.as_view(), name="scan-detail"),
    path("scan/<int:pk>/status.json", views.scan_status, name="scan-status"),
    path("pending/", views.PendingPlanListView.as_view(), name="pending-list"),
    path("aliases/", views.MrnAliasListView.as_view(), name="alias-list"),
]
