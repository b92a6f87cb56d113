"""The OpenAPI document of ``/api/v1/`` describes each shape once.

ninja names a schema component after its class and keeps the last class of a
name it meets, so two routers' ``RerunIn`` made one operation document the
other's body: a client generated from the document would send the wrong
fields. Each class that an operation reads or answers must have a name of its own.
"""

import typing
from collections import defaultdict

from pydantic import BaseModel

from symphony.api import api

OUR_PACKAGES = ("executions.", "workflows.", "routing.", "symphony.")


def _models(annotation, found: set[type[BaseModel]]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in found:
            return
        found.add(annotation)
        for field in annotation.model_fields.values():
            _models(field.annotation, found)
    for argument in typing.get_args(annotation):
        _models(argument, found)


def test_every_schema_class_of_the_api_has_a_name_of_its_own():
    found: set[type[BaseModel]] = set()
    for _, router in api._routers:
        for path_view in router.path_operations.values():
            for operation in path_view.operations:
                for model in operation.models:
                    _models(model, found)
                for response in (operation.response_models or {}).values():
                    _models(response, found)
    modules = defaultdict(set)
    for model in found:
        if model.__module__.startswith(OUR_PACKAGES):
            modules[model.__name__].add(model.__module__)
    assert {name: sorted(where) for name, where in modules.items() if len(where) > 1} == {}
    assert {"SubmitIn", "ExecutionOut", "RoutingDecisionOut"} <= modules.keys()
