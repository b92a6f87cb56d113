from django.urls import path
from django.views.generic import RedirectView

from executions import agent_page, evaluation_page, overview, views

app_name = "executions"

urlpatterns = [
    path("", views.execution_list, name="list"),
    path("executions/", RedirectView.as_view(pattern_name="executions:list", query_string=True)),
    path("executions/submit/", views.execution_submit, name="submit"),
    path("executions/<row_id:execution_id>/", views.execution_detail, name="detail"),
    path("executions/<row_id:execution_id>/cancel/", views.execution_cancel, name="cancel"),
    path("executions/<row_id:execution_id>/retry/", views.execution_retry, name="retry"),
    path("executions/<row_id:execution_id>/rerun/", views.execution_rerun, name="rerun"),
    path("executions/<row_id:execution_id>/correct-routing/", views.execution_correct_routing, name="correct-routing"),
    path("overview/", overview.overview, name="overview"),
    path("agents/", overview.agent_list, name="agents"),
    path("agents/<row_id:agent_id>/", agent_page.agent_detail, name="agent"),
    path("agents/<row_id:agent_id>/enabled/", overview.agent_set_enabled, name="agent-enabled"),
    path("workers/", overview.worker_list, name="workers"),
    path("routing/evaluate/", evaluation_page.routing_evaluate, name="routing-evaluate"),
]
