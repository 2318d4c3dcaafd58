"""The FHIR store (fhir_resource, fhir_version, search_*): every resource we serve, versioned, with
typed search-index rows. Resources derived from the DICOM index are (re)published into it by
`storage.usecases.publish`; client-written resources will be written straight into it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, Id, Stamp


class FhirResourceRow(Base):
    """The current version of one resource (`body` is its JSON without `meta`)."""

    __tablename__ = "fhir_resource"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(Stamp)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)


Index("ix_fhir_resource_type_updated", FhirResourceRow.res_type, FhirResourceRow.last_updated)


class FhirVersionRow(Base):
    """Every retained version, the current one included (`body` None for a deletion)."""

    __tablename__ = "fhir_version"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(Stamp)
    body: Mapped[str | None] = mapped_column(Text)


class _SearchRow:
    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    res_type: Mapped[str] = mapped_column(String(40))
    res_id: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(64))


class SearchToken(_SearchRow, Base):
    """token and uri parameters: `system` None when the value has none."""

    __tablename__ = "search_token"
    system: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(255))


class SearchString(_SearchRow, Base):
    """string parameters: `value` normalised (case-folded, accents removed) for prefix matching."""

    __tablename__ = "search_string"
    value: Mapped[str] = mapped_column(String(255))
    exact: Mapped[str] = mapped_column(String(255))


class SearchDate(_SearchRow, Base):
    """date parameters as the half-open UTC range [low, high) the value covers."""

    __tablename__ = "search_date"
    low: Mapped[datetime] = mapped_column(Stamp)
    high: Mapped[datetime] = mapped_column(Stamp)


class SearchReference(_SearchRow, Base):
    """reference parameters to resources in this server."""

    __tablename__ = "search_reference"
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(64))


class SearchQuantity(_SearchRow, Base):
    """quantity parameters: the value (double precision; the resource keeps it as written), the
    coded unit (`system` / `code`, UCUM) and the human `unit`."""

    __tablename__ = "search_quantity"
    value: Mapped[float] = mapped_column(Float)
    system: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str | None] = mapped_column(String(255))
    unit: Mapped[str | None] = mapped_column(String(255))


for _table in (SearchToken, SearchString, SearchDate, SearchReference, SearchQuantity):
    Index(f"ix_{_table.__tablename__}_resource", _table.res_type, _table.res_id)
Index("ix_search_token_value", SearchToken.res_type, SearchToken.param, SearchToken.code)
Index("ix_search_string_value", SearchString.res_type, SearchString.param, SearchString.value)
Index("ix_search_date_value", SearchDate.res_type, SearchDate.param, SearchDate.low, SearchDate.high)
Index("ix_search_reference_value", SearchReference.res_type, SearchReference.param, SearchReference.target_id)
Index("ix_search_quantity_value", SearchQuantity.res_type, SearchQuantity.param, SearchQuantity.value)
