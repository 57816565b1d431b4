"""The installation's time zone: how stored UTC times are shown and which calendar day it is.

One setting (``CHUISHAO_TIME_ZONE``, a tz database name, default Asia/Shanghai) chosen when
the application starts; times are stored in UTC and converted only for people. Every shown
time carries its offset, so nobody has to guess which clock it is on. A time stored only as
coarsely as the installation's granularity (what a reporter did) is shown as the span it
stands for, never as a precise minute it does not have.

Exports write ISO 8601 with the offset (``isoformat``).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

DEFAULT = "Asia/Shanghai"
_installed = {"name": DEFAULT}


@functools.lru_cache(maxsize=8)
def zone_named(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def install(name: str) -> None:
    """Called by the application factories with ``settings.time_zone`` (validated there)."""
    zone_named(name)
    _installed["name"] = name


def zone() -> zoneinfo.ZoneInfo:
    return zone_named(_installed["name"])


def local(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:  # stored times are UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(zone())


def today(now: dt.datetime | None = None) -> dt.date:
    return local(now or dt.datetime.now(dt.UTC)).date()


def midnight(day: dt.date) -> dt.datetime:
    """The first instant of ``day`` in the installation's zone (an aware datetime)."""
    return dt.datetime.combine(day, dt.time(), zone())


def offset_label(moment: dt.datetime) -> str:
    """"UTC+08:00" for the zone's offset at that moment."""
    offset = local(moment).utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def zone_label() -> str:
    """How a sheet labels its times: "UTC+08:00" for a zone without daylight saving, else
    the zone's name (its offset changes during the year; each value carries its own)."""
    year = dt.datetime.now(dt.UTC).year
    moments = [dt.datetime(year, month, 1, tzinfo=dt.UTC) for month in (1, 7)]
    if len({local(moment).utcoffset() for moment in moments}) == 1:
        return offset_label(moments[0])
    return _installed["name"]


def iso(moment: dt.datetime | None) -> str:
    """ISO 8601 with the installation's offset, seconds precision (exports, datetime attrs)."""
    return local(moment).isoformat(timespec="seconds") if moment else ""


def show(moment: dt.datetime | None, precision: str = "minute",
         granularity: int | None = None) -> str:
    """A time for people: "2026-12-01 14:05 (UTC+08:00)".

    ``precision`` "date" gives the calendar day only; with ``granularity`` (seconds) the time
    is coarse and shown as the span it stands for: "2026-12-01 14:00–15:00 (UTC+08:00)".
    """
    if moment is None:
        return "—"
    here = local(moment)
    if precision == "date":
        return here.strftime("%Y-%m-%d")
    label = offset_label(moment)
    if precision == "second":
        return f"{here.strftime('%Y-%m-%d %H:%M:%S')} ({label})"
    if granularity and granularity >= 60:
        end = local(moment + dt.timedelta(seconds=granularity))
        if granularity >= 86400:
            return f"{here.strftime('%Y-%m-%d')} ({label})"
        span_end = end.strftime("%H:%M") if end.date() == here.date() \
            else end.strftime("%Y-%m-%d %H:%M")
        return f"{here.strftime('%Y-%m-%d %H:%M')}–{span_end} ({label})"
    return f"{here.strftime('%Y-%m-%d %H:%M')} ({label})"
