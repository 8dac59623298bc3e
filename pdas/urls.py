from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from pdas import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("archive/", include("archiver.urls")),
    path("loss/", include("lossdetect.urls")),
    path("curation/", include("curation.urls")),
    path("reports/", include("reports.urls")),
    path("audit/", include("audit.urls")),
]
