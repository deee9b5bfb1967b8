"""Querysets compiled to SQL once, for the reads that run the same query many times a second.

The ORM compiles a queryset's SQL on every evaluation, which for a small read costs more than the database
does. ``PreparedQuery`` compiles it once, with a sentinel where a value goes, and turns the rows of the SQL run
on any connection into what the queryset would have given: its field converters applied, model instances built
as the ORM builds them (``prefetched`` fills a relation as ``prefetch_related`` would)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, TypeAlias, TypeVar
from uuid import UUID

from django.db.models import Model, QuerySet

Rows = list[tuple[Any, ...]]
# A value the database drivers adapt to an SQL parameter (as ``cursor.execute`` takes them).
SqlParam: TypeAlias = bool | int | float | Decimal | str | bytes | date | UUID | tuple[Any, ...] | list[Any] | None
_M = TypeVar("_M", bound=Model)


class PreparedQuery:
    """A queryset compiled to SQL once, run with one value in place of its ``sentinel`` parameter.

    ``tuples`` and ``models`` turn raw rows into what iterating the queryset would have given (its field
    converters applied; model instances built as the ORM builds them), without compiling the query again."""

    def __init__(self, queryset: QuerySet[Any], sentinel: object = None, *, suffix: str = "") -> None:
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        self.sql = sql + suffix
        self.params = tuple(params)
        self.slots = [i for i, p in enumerate(self.params) if sentinel is not None and p == sentinel]
        if sentinel is not None and not self.slots:
            raise ValueError(f"the sentinel {sentinel!r} is not a parameter of {sql}")
        self.compiler = compiler
        # What results_iter() applies to each row (from_db_value and the backend's converters), found once.
        self.converters = compiler.get_converters([col[0] for col in compiler.select[: compiler.col_count]])
        self.model = queryset.model
        self.db = queryset.db
        klass_info = compiler.klass_info
        if klass_info is not None:
            fields = klass_info["select_fields"]
            self.span = (fields[0], fields[-1] + 1)
            self.init_list = [col[0].target.attname for col in compiler.select[self.span[0] : self.span[1]]]

    def bind(self, value: SqlParam = None, extra: Sequence[SqlParam] = ()) -> tuple[SqlParam, ...]:
        params: list[SqlParam] = list(self.params)
        for slot in self.slots:
            params[slot] = value
        return (*params, *extra)

    def _converted(self, rows: Rows) -> Iterable[Sequence[Any]]:
        return self.compiler.apply_converters(rows, self.converters) if self.converters else rows

    def tuples(self, rows: Rows) -> Rows:
        return [tuple(row) for row in self._converted(rows)] if self.converters else rows

    def models(self, rows: Rows) -> list[Any]:
        start, end = self.span
        make = self.model.from_db
        return [make(self.db, self.init_list, row[start:end]) for row in self._converted(rows)]


def prefetched(instance: Model, name: str, objects: list[_M]) -> None:
    """Give ``instance`` the related ``objects`` as ``prefetch_related(name)`` would (no query when read)."""
    queryset = getattr(instance, name).get_queryset()
    queryset._result_cache = objects
    queryset._prefetch_done = True
    cache = getattr(instance, "_prefetched_objects_cache", None)
    if cache is None:
        # Django's own per-instance prefetch cache: set on demand, as prefetch_related sets it (not in the stubs).
        cache = instance._prefetched_objects_cache = {}  # type: ignore[attr-defined]
    cache[name] = queryset
