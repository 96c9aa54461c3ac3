"""``crm-erp-sync worker``: the event loop chosen first, then the engine built and run."""

from __future__ import annotations

import logging

from app.domain.errors import ServiceError


def main(loglevel: str = "info", web: bool = True) -> int:
    """Run the worker in the foreground until SIGTERM/SIGINT."""
    import mode.loop

    mode.loop.use("uvloop")  # before the app exists: libuv's loop costs less per event than asyncio's
    import faust

    from app.engine.bootstrap import bootstrap
    from app.observe.logs import logging_config
    from app.settings import get_settings

    settings = get_settings()
    _refuse_under_replicated(settings)
    engine = bootstrap(settings)
    config = logging_config(loglevel, settings.log_format)
    worker = faust.Worker(engine.app, loglevel=loglevel, override_logging=True, logging_config=config)
    if not web:
        engine.app.conf.web_enabled = False
    worker.execute_from_commandline()
    return 0


class UnderReplicatedError(ServiceError):
    """Catalog topics are replicated below the topic profile: one broker's loss would stop them."""


def _refuse_under_replicated(settings) -> None:
    """Refuse to start on topics replicated below the profile (CRM_ERP_ALLOW_UNDER_REPLICATED overrides)."""
    from app.catalog import default_catalog, profile
    from app.observe.topic_presence import under_replicated

    env = profile(settings.topic_profile)
    try:
        low = under_replicated(settings, env.applied(default_catalog()))
    except Exception as exc:  # a broker not answering yet: the worker reports and retries that itself
        logging.getLogger(__name__).warning("could not check the topics' replication at start: %s", exc)
        return
    if low and not settings.allow_under_replicated:
        raise UnderReplicatedError(
            f"topics replicated below the {env.name!r} profile ({env.replication}): {'; '.join(low[:10])}"
            f"{' …' if len(low) > 10 else ''}. Reassign their partitions, or start with "
            "CRM_ERP_ALLOW_UNDER_REPLICATED=true to run on them anyway (CRM_ERP_TOPIC_PROFILE names the profile)."
        )
