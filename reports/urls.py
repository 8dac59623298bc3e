from django.urls import path

from reports import views

app_name = "reports"
urlpatterns = [
    path("", views.ReportView.as_view(), name="index"),
    path("print/", views.ReportPrintView.as_view(), name="print"),
    path("reconcile/", views.ReconciliationListView.as_view(), name="reconcile-list"),
    path("reconcile/start/", views.start_reconciliation, name="reconcile-start"),
    path("reconcile/<int:pk>/", views.ReconciliationDetailView.as_view(), name="reconcile-detail"),
]
