"""Languages: zh-CN first, English second, from gettext catalogs translators' tools read.

Message ids are English source strings, marked with ``_()`` in templates and ``N_()`` in Python
(Babel extracts both; see babel.cfg). Both catalogs must translate every id: a test enforces it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.pofile import read_po, write_po

from service.platform import resources

LOCALE_DIR = resources.package_data("service", "locale")
LANGUAGES = ("zh_CN", "en")
# The language a page declares in <html lang>.
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}


def N_(message: str) -> str:  # noqa: N802 - the conventional marker name
    """Mark a string for extraction; it is translated where it is shown."""
    return message


# Between the items of a list in a sentence: "、" in Chinese, ", " in English.
LIST_SEPARATOR = N_(", ")


@dataclass(frozen=True)
class Message:
    """A marked message id and its parameters, for a parameter of another message: it is
    translated in the same language as the sentence that holds it."""

    id: str
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Listed:
    """A list as one parameter: its items (Messages or plain text) joined by LIST_SEPARATOR."""

    items: tuple[object, ...]


@dataclass(frozen=True)
class Catalogs:
    by_language: Mapping[str, Mapping[str, str]]

    @classmethod
    def load(cls, directory: Path = LOCALE_DIR) -> Catalogs:
        result: dict[str, dict[str, str]] = {}
        for language in LANGUAGES:
            path = directory / language / "LC_MESSAGES" / "messages.po"
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=language)
            result[language] = {
                str(message.id): str(message.string)
                for message in catalog
                if message.id and isinstance(message.id, str) and message.string
            }
        return cls(result)

    def gettext(self, language: str) -> Callable[..., str]:
        table = self.by_language.get(language, {})

        def shown(value: object) -> object:
            if isinstance(value, Message):
                return translate(value.id, **value.params)
            if isinstance(value, Listed):
                return translate(LIST_SEPARATOR).join(str(shown(item)) for item in value.items)
            return value

        def translate(message: str, **params: object) -> str:
            text = table.get(message, message)
            if not params:
                return text
            return text.format(**{name: shown(value) for name, value in params.items()})

        return translate


# Message ids are English: the English text of a message without reading a catalog.
SOURCE_LANGUAGE = "en"
source_text = Catalogs({}).gettext(SOURCE_LANGUAGE)


def negotiate(accept_language: str | None, default: str) -> str:
    """Pick zh_CN or en from an Accept-Language header, honouring q-values."""
    if not accept_language:
        return default
    best: tuple[float, str] | None = None
    for part in accept_language.split(","):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag.startswith("zh"):
            language = "zh_CN"
        elif tag.startswith("en"):
            language = "en"
        elif tag == "*":
            language = default
        else:
            continue
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, language)
    return best[1] if best else default


def fill_english(directory: Path = LOCALE_DIR) -> int:
    """English message ids are the English text: copy them into empty English entries."""

    path = directory / "en" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale="en")
    filled = 0
    for message in catalog:
        if message.id and isinstance(message.id, str) and not message.string:
            message.string = message.id
            filled += 1
    with path.open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False)
    return filled


if __name__ == "__main__":
    print(f"filled {fill_english()} English entries")
