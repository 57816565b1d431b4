"""A message with its parameters, as each catalog renders it."""

from __future__ import annotations

from service.platform.i18n import Catalogs, Message

CATALOGS = Catalogs.load()


def english(message: Message) -> str:
    return CATALOGS.gettext("en")(message.id, **message.params)


def chinese(message: Message) -> str:
    return CATALOGS.gettext("zh_CN")(message.id, **message.params)
