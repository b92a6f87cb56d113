from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from symphony import metrics, views
from symphony.api import api

symphony_patterns = (
    [
        path("tokens/", views.token_list, name="tokens"),
        path("tokens/<row_id:token_id>/revoke/", views.token_revoke_view, name="token-revoke"),
    ],
    "symphony",
)

urlpatterns = [
    path("favicon.ico", views.favicon),  # unnamed: always this address
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("metrics", metrics.metrics, name="metrics"),
    path("workflows/", include("workflows.urls")),
    path("", include(symphony_patterns)),
    # Last: the executions' pages sit at the root.
    path("", include("executions.urls")),
]
