from django.urls import path

from workflows import views

app_name = "workflows"

urlpatterns = [
    path("", views.workflow_list, name="list"),
    path("start/", views.workflow_start, name="start"),
    path("runs/<row_id:run_id>/", views.run_detail, name="run"),
    path("runs/<row_id:run_id>/pause/", views.run_pause, name="pause"),
    path("runs/<row_id:run_id>/resume/", views.run_resume, name="resume"),
    path("runs/<row_id:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<row_id:run_id>/rerun/", views.run_rerun, name="rerun"),
    path("runs/<row_id:run_id>/steps/<slug:step_id>/approve/", views.step_approve, name="approve"),
    path("runs/<row_id:run_id>/steps/<slug:step_id>/reject/", views.step_reject, name="reject"),
]
