"""Words for the codes the console stores: roles, channel kinds. One table of each, so every
page and export says the same thing in the page's language."""

from __future__ import annotations

from collections.abc import Callable

from service.i18n import N_

# Between the items of a list in running text: a comma in English, 、 in Chinese.
LIST_SEPARATOR = N_(", ")

ROLE_LABELS = {
    "reviewer": N_("Reviewer"),
    "approver": N_("Approver"),
    "auditor": N_("Auditor"),
    "finance": N_("Finance"),
    "admin": N_("Administrator"),
}

CHANNEL_KIND_LABELS = {
    "enterprise": N_("Enterprise internal line"),
    "bureau": N_("District bureau"),
}


def role_names(roles: str | list[str] | tuple[str, ...], translate: Callable[..., str]) -> str:
    """A user's or invitation's roles ("reviewer approver") in the page's language."""
    names = roles.split() if isinstance(roles, str) else list(roles)
    return translate(LIST_SEPARATOR).join(translate(ROLE_LABELS.get(name, name))
                                          for name in names)
