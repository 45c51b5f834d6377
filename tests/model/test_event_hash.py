"""Content hashes are stored in every link: they must not change when their code does.

A different hash for the same event would make every linked item look edited in its spoke
(a write per item, and conflicts). The pinned values below were computed by the implementation
before its speed-up (commit b445b0a, `json.dumps` over a dict of the fields in name order);
the faster one must give the very same text to hash.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spokesync.model.event import (
    ALL_FIELDS,
    OPTIONAL_FIELDS,
    TIME_FIELDS,
    Attendee,
    Event,
    Override,
    Person,
    content_hash,
    normalise,
    normalise_text,
    restrict,
    restricted,
)

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 2, 9, 30, tzinfo=BERLIN)

EVENTS = {
    "plain": Event(title="Team sync", start=datetime(2026, 3, 2, 9, tzinfo=UTC), end=datetime(2026, 3, 2, 10, tzinfo=UTC),
                   description="Item 1", location="Room 1", categories=("team",), reminders=(10,)),
    "messy": Event(title="  Budget\treview  ", start=START, end=START + timedelta(hours=1), timezone="Europe/Berlin",
                   description_html="<html><head><style>p{}</style></head><p>Line&nbsp;one</p><br>two</html>",
                   location="Room\u00a0 4", categories=("b", "a", "b"), reminders=(15, 5, 15),
                   url=" https://example.org/x ", conference_url="https://meet.example/abc"),
    "series": Event(title="Weekly", start=START, end=START + timedelta(minutes=45), timezone="Europe/Berlin",
                    recurrence=("RRULE:INTERVAL=1;FREQ=WEEKLY;BYDAY=MO", "EXDATE;TZID=Europe/Berlin:20260316T093000"),
                    overrides=(Override(START + timedelta(days=7),
                                        Event(title="Weekly (moved)", start=START + timedelta(days=7, hours=1),
                                              end=START + timedelta(days=7, hours=2))),
                               Override(START + timedelta(days=21), Event(status="cancelled"))),
                    cancelled=(START + timedelta(days=28),),
                    organizer=Person("Boss@Example.org", "Boss"),
                    attendees=(Attendee("b@example.org", "B", "optional", "accepted"),
                               Attendee("A@Example.org", "A"), Attendee("a@example.org", "A again")),
                    show_as="tentative", privacy="private", status="tentative", color="5"),
    "all_day": Event(title="Holiday", start=date(2026, 12, 24), end=date(2026, 12, 27), reminders=(),
                     description="Line 1\r\n\r\n\r\nLine  2 \n", show_as="free"),
    "blank": Event(),
}

NAMES = {
    "all": ALL_FIELDS,
    "time": TIME_FIELDS,
    "no_optional": ALL_FIELDS - OPTIONAL_FIELDS["description"] - OPTIONAL_FIELDS["attendees"] - {"location"},
    "placeholder": frozenset({"start", "end", "timezone", "recurrence", "cancelled", "show_as"}),
}

PINNED = {
    ("plain", "all"): "f658e52c9c74186352d1bed532a3ca31",
    ("plain", "time"): "d04c6c038c374bb9cc97d569f02731eb",
    ("plain", "no_optional"): "2a877db8402ac741268239914b04dd4b",
    ("plain", "placeholder"): "327144aa897b42a834b96769df9448a3",
    ("messy", "all"): "1bea6fca7dac3bf2a7de5fd8fef2c4a9",
    ("messy", "time"): "d10d1bdcee3e496025a1d11313632755",
    ("messy", "no_optional"): "959287832151455fb9ae492f0f4f8cc4",
    ("messy", "placeholder"): "5799b554a95d9f5947b25870cc9b1ba0",
    ("series", "all"): "08a4a582662624c799484c7b5b601833",
    ("series", "time"): "e185ff6f3b0f3c4a1275ce03716684a7",
    ("series", "no_optional"): "228daa4e419f9cd4d55d663a82c67a7a",
    ("series", "placeholder"): "24e14e012f96fd894e38e14724d702f5",
    ("all_day", "all"): "025125596037875d8f2a411f44794605",
    ("all_day", "time"): "8c12d3a43e7a28e39dbc2e7d0f951e1a",
    ("all_day", "no_optional"): "4b0447278b740c82206ca8e7c231e140",
    ("all_day", "placeholder"): "027a4b63cb617d720a09df6857861ac4",
    ("blank", "all"): "f5f34480750b9a8d511f2ef848ce18ee",
    ("blank", "time"): "6c386d66d288a8832d58e8056cde40c4",
    ("blank", "no_optional"): "4a70c83e574f6f10ff92d7d7a109429c",
    ("blank", "placeholder"): "28eaa4e056adc9fc94f975d72ad40dda",
}


@pytest.mark.parametrize(("event", "names"), sorted(PINNED))
def test_hash_is_the_stored_one(event: str, names: str) -> None:
    assert content_hash(EVENTS[event], NAMES[names]) == PINNED[(event, names)]
    assert content_hash(EVENTS[event], set(NAMES[names])) == PINNED[(event, names)]  # any iterable of names


def test_normal_form_is_found_without_a_copy_and_folded_otherwise() -> None:
    plain = EVENTS["plain"]
    assert normalise(plain) is plain
    messy = normalise(EVENTS["messy"])
    assert (messy.categories, messy.reminders) == (("a", "b"), (5, 15))
    # a list where a tuple belongs is not the normal form: it is folded (and hashes the same)
    listed = dataclasses.replace(plain, categories=["team"])  # type: ignore[arg-type]
    assert normalise(listed) is not listed and normalise(listed).categories == ("team",)
    assert content_hash(listed) == content_hash(plain)


_WS = re.compile(r"[ \t\r\f\v\u00a0]+")


def _general_rule(text: str) -> str:
    """normalise_text's rule for any text, without its shortcuts."""
    lines = [_WS.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


@given(st.text(alphabet=st.sampled_from(list("ab .<>\t\r\n\u00a0\u2003\u3000\x0b\x0c\x1c\x85\u200b\u2028\ufeffé")), max_size=12))
def test_normalise_text_shortcuts_give_the_general_rule(text: str) -> None:
    assert normalise_text(text) == _general_rule(text)


@given(st.sampled_from(sorted(EVENTS)), st.sampled_from(sorted(EVENTS)),
       st.sets(st.sampled_from(sorted(ALL_FIELDS | {"modified"}))))
def test_restrict_takes_the_named_fields_and_keeps_the_rest(source: str, base: str, names: set[str]) -> None:
    event = dataclasses.replace(EVENTS[source], modified=datetime(2026, 1, 5, tzinfo=UTC))
    taken = {n for n in names if n in ALL_FIELDS | {"modified"}}
    if "description" in taken:
        taken.add("description_html")  # the description's formatting goes with its text
    want = dataclasses.replace(EVENTS[base], **{n: getattr(event, n) for n in taken})
    assert restrict(event, EVENTS[base], frozenset(names)) == want
    assert restrict(event, EVENTS[base], names) == want
    assert restricted(event, names) == dataclasses.replace(Event(), **{n: getattr(event, n) for n in taken})
