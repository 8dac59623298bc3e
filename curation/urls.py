from django.urls import path

from curation import views

app_name = "curation"
urlpatterns = [
    path("", views.CurationView.as_view(), name="index"),
    path("run/", views.rerun, name="rerun"),
    path("run/<int:pk>/status.json", views.run_status, name="run-status"),
    path("patient/<int:pk>/", views.patient_detail, name="patient"),
    path("patient/<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
]
