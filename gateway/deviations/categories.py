"""Deviation categories and the function each is routed to (DOMAIN, "Deviations": equipment ->
Utstyrsansvarlig, IT -> Dataansvarlig, HMS, clinical -> Faglig leder; anything about the
quality system itself -> Kvalitetsansvarlig)."""

from __future__ import annotations

import enum


class Category(enum.StrEnum):
    EQUIPMENT = "equipment"
    IT = "it"
    HMS = "hms"
    CLINICAL = "clinical"
    QUALITY = "quality"


#: the function (role in the quality system) a category is routed to; the names are the
#: Norwegian titles the quality system uses, shown as they are in both languages
RESPONSIBLE: dict[Category, str] = {
    Category.EQUIPMENT: "Utstyrsansvarlig",
    Category.IT: "Dataansvarlig",
    Category.HMS: "HMS-ansvarlig",
    Category.CLINICAL: "Faglig leder",
    Category.QUALITY: "Kvalitetsansvarlig",
}

_BY_FUNCTION = {function: category for category, function in RESPONSIBLE.items()}


def category_for(responsible_function: str) -> Category:
    """The category of a function's name (rows from before categories); quality otherwise."""
    return _BY_FUNCTION.get(responsible_function, Category.QUALITY)
