"""One exception root: every error the service raises on purpose is a ``ServiceError``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import app
from app.domain.errors import ServiceError, SyncError


def test_every_error_class_the_service_defines_derives_from_its_one_root():
    strays = []
    for info in pkgutil.walk_packages(app.__path__, "app."):
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, BaseException) and not issubclass(cls, ServiceError):
                strays.append(f"{info.name}.{name}")
    assert not strays, f"error classes outside ServiceError: {strays}"


def test_a_rejected_input_is_a_service_error_with_its_reason():
    from app.domain.errors import ReasonCode

    err = SyncError(ReasonCode.MAPPING_ERROR, "no opportunity id")
    assert isinstance(err, ServiceError) and err.reason is ReasonCode.MAPPING_ERROR
