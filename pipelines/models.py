"""SQL models: the files of `sql/`, rendered with Jinja, each naming what it reads.

A model is one SELECT in `sql/<layer>/<name>.sql`, opening with a comment that states
its rule. It names the models it reads with `{{ ref('name') }}` and the warehouse's
tables with `{{ source('schema', 'table') }}`, and says how it is kept with
`{{ config(...) }}`:

- `materialized`: `view` (costs no memory; read through) or `table`;
- `location`: `cohorts` (the default for sql/cohorts/: an in-memory database attached
  for the build only) or `warehouse` (the default for sql/marts/: a scratch table
  `marts._build_<name>` that publishing renames to `marts.<name>`);
- `publish_as`: the mart a warehouse model is published as (default: its name), or
  `none` for a table that is only read at publishing (the build's own record);
- `working_columns`: columns that later models read but the published mart drops;
- `compression`: `{method: [columns]}`, how DuckDB stores those columns of a table.

The build order is derived from the refs (a model comes after everything it reads), and
each in-memory table is dropped as soon as no later model reads it, directly or
through a view. The same Jinja renders every SQL file of the project, with the values
`schemas/cohorts.yml` decides (`render_template`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from pipelines import codes, resources
from pipelines.sqltext import identifier

COHORTS_DB = "cohorts"
MARTS_SCHEMA = "marts"
# A mart is built as marts.<BUILD_PREFIX><mart> and renamed to marts.<mart> on publishing.
BUILD_PREFIX = "_build_"
MODEL_LAYERS: tuple[str, ...] = ("cohorts", "marts")
MACROS = "sql/macros"
MATERIALIZATIONS = ("view", "table")
LOCATIONS = ("cohorts", "warehouse")


class ModelError(resources.ResourceError):
    """A model file that does not say what the build needs: one line naming the file."""


@cache
def environment() -> jinja2.Environment:
    """One Jinja environment for every SQL file: strict, no escaping, our helpers."""
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.globals["normalize_code"] = codes.normalize_sql
    env.filters["identifier"] = identifier
    return env


def render_template(name: str, **context: Any) -> str:
    """Render the SQL file `name` (such as `sql/staging/stg_accepted_rows.sql`)."""
    return _render(resources.active().path(name), context)


def _render(path: Path, context: dict[str, Any]) -> str:
    try:
        template = environment().from_string(resources.read_text(path))
        return template.render(**context)
    except jinja2.TemplateError as exc:
        line = f", line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise ModelError(f"{path}{line}: {exc}") from None


@dataclass
class Model:
    """One model file, rendered: its SELECT, what it reads, and how it is kept."""

    name: str
    path: Path
    layer: str
    select: str = ""
    refs: set[str] = field(default_factory=set)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def materialized(self) -> str:
        return self.config.get("materialized", "table")

    @property
    def location(self) -> str:
        return self.config.get("location", "warehouse" if self.layer == "marts" else "cohorts")

    @property
    def publish_as(self) -> str | None:
        if self.location != "warehouse":
            return None
        name = self.config.get("publish_as", self.name)
        return None if name == "none" else name

    @property
    def working_columns(self) -> tuple[str, ...]:
        return tuple(self.config.get("working_columns", ()))

    def check(self) -> None:
        if self.materialized not in MATERIALIZATIONS:
            raise ModelError(
                f"{self.path}: materialized = {self.materialized!r}; use view or table"
            )
        if self.location not in LOCATIONS:
            raise ModelError(f"{self.path}: location = {self.location!r}; use cohorts or warehouse")
        if self.location == "warehouse" and self.materialized != "table":
            raise ModelError(f"{self.path}: a model kept in the warehouse must be a table")


def scratch_name(model: Model) -> str:
    """The table name a warehouse model is built as (inside schema marts)."""
    return BUILD_PREFIX + (model.publish_as or model.name)


def model_files() -> list[tuple[str, Path]]:
    """(layer, file) of every model, in layer order then by name."""
    found = []
    for layer in MODEL_LAYERS:
        found += [(layer, p) for p in resources.active().paths(f"sql/{layer}", ".sql")]
    return found


def load_models(context: dict[str, Any], seeds: set[str], warehouse: str) -> dict[str, Model]:
    """Every model rendered with `context`; refs are checked against models and `seeds`.

    `warehouse` is the catalog name of the warehouse: models in the in-memory cohorts
    database name the warehouse's tables with it (a view resolves names in its own
    database otherwise).
    """
    files = model_files()
    names = {path.stem for _, path in files}
    clash = names & seeds
    if clash:
        raise ModelError(f"sql/: model(s) {', '.join(sorted(clash))} have the name of a seed table")
    layers = {path.stem: layer for layer, path in files}
    models: dict[str, Model] = {}
    for layer, path in files:
        model = Model(path.stem, path, layer)
        models[model.name] = model
        # configs first: ref() resolves names by where the other models are kept
        _render(path, _model_context(context, model, models, layers, seeds, warehouse, probe=True))
    for model in models.values():
        model.check()
    for _, path in files:
        model = models[path.stem]
        rendered = _render(
            path, _model_context(context, model, models, layers, seeds, warehouse, probe=False)
        )
        model.select = rendered.strip().rstrip(";")
    return models


def _model_context(
    context: dict[str, Any],
    model: Model,
    models: dict[str, Model],
    layers: dict[str, str],
    seeds: set[str],
    warehouse: str,
    *,
    probe: bool,
) -> dict[str, Any]:
    def ref(name: str) -> str:
        if name not in layers and name not in seeds:
            raise ModelError(f"{model.path}: ref('{name}') names no model and no seed table")
        if name == model.name:
            raise ModelError(f"{model.path}: a model cannot ref itself")
        model.refs.add(name)
        if probe or name in seeds:
            return f"{COHORTS_DB}.{name}"
        return relation(models[name], warehouse)

    def source(schema: str, table: str) -> str:
        return f"{identifier(warehouse)}.{schema}.{table}"

    def config(**options: Any) -> str:
        if probe:
            model.config.update(options)
        return ""

    return {**context, "ref": ref, "source": source, "config": config, "this": model.name}


def relation(model: Model, warehouse: str) -> str:
    """The fully qualified name the model is built as."""
    if model.location == "warehouse":
        return f"{identifier(warehouse)}.{MARTS_SCHEMA}.{scratch_name(model)}"
    return f"{COHORTS_DB}.{model.name}"


def build_order(models: dict[str, Model]) -> list[str]:
    """Every model after all it reads; among those ready, the one reading the most
    recently built model first (finishing a line of models before starting another
    keeps fewer large tables alive at once), then by name."""
    order: list[str] = []
    position: dict[str, int] = {}
    waiting = dict(models)
    while waiting:
        ready = [
            m for m in waiting.values() if all(r in position or r not in models for r in m.refs)
        ]
        if not ready:
            cycle = ", ".join(sorted(waiting))
            raise ModelError(f"sql/: the models {cycle} read each other in a cycle")
        chosen = max(
            ready,
            key=lambda m: (
                max((position[r] for r in m.refs if r in position), default=-1),
                _negated(m.name),
            ),
        )
        position[chosen.name] = len(order)
        order.append(chosen.name)
        del waiting[chosen.name]
    return order


def _negated(name: str) -> tuple[int, ...]:
    """A key that sorts names in reverse, so that max() picks the first by name."""
    return tuple(-ord(c) for c in name) + (0,)


def last_readers(order: list[str], models: dict[str, Model]) -> dict[str, list[str]]:
    """Per model, the in-memory tables that no model after it reads, directly or through
    a view: they can be dropped once it is built."""
    reads: dict[str, set[str]] = {}
    for name in order:
        model = models[name]
        direct = {r for r in model.refs if r in models}
        reads[name] = set(direct)
        for read in direct:
            if models[read].materialized == "view":
                reads[name] |= reads[read]
    tables = {
        n for n in order if models[n].materialized == "table" and models[n].location == "cohorts"
    }
    last: dict[str, str] = {}
    for name in order:
        for table in reads[name] & tables:
            last[table] = name
    done: dict[str, list[str]] = {name: [] for name in order}
    for table in sorted(tables):
        done[last.get(table, table)].append(table)
    return done
