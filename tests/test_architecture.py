"""The arrows of docs/architecture.md, enforced: a scan of every import in the packages.

A rule broken by new code fails here. What the code breaks today and the floor-plan issue will
remove is listed in DEBT, entry by entry; an entry that no longer occurs fails too, so the list
only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("facade", "fhir_api", "dicom_bridge", "hl7_interface", "mapping", "smart_auth", "storage")
ADAPTERS = ("fhir_api", "dicom_bridge", "hl7_interface")

# What each package may import of the project (besides itself). An adapter reaches storage only
# through its use cases and its error tree.
ALLOWED: dict[str, tuple[str, ...]] = {
    "mapping": (),
    "storage": ("mapping",),
    "smart_auth": ("storage", "mapping"),
    "fhir_api": ("storage.usecases", "storage.errors", "mapping", "smart_auth.resource_server"),
    "dicom_bridge": ("storage.usecases", "storage.errors", "mapping"),
    "hl7_interface": ("storage.usecases", "storage.errors", "mapping"),
    "facade": PACKAGES,
}

# Inside a package: what one part may never import of another. The storage aggregates stand
# alone (a use case combines them); the DICOM side of mapping knows nothing of FHIR.
_AGGREGATES = (
    "storage.dicom_index",
    "storage.fhir_store",
    "storage.auth",
    "storage.audit",
    "storage.orders",
    "storage.mpps",
    "storage.peers",
    "storage.hl7_inbox",
    "storage.outbox",
)
NEVER: tuple[tuple[str, str], ...] = (
    *((a, b) for a in _AGGREGATES for b in _AGGREGATES if a != b),
    ("mapping.dicom", "mapping.fhir"),
)

# Inside smart_auth: the authorization server (`server/`) and the resource-server check
# (`resource_server/`) share only the top-level modules (scope grammar, config, JWKS fetching,
# CORS); neither half imports the other, and the shared modules import neither half.
SMART_AUTH_HALVES = ("smart_auth.server", "smart_auth.resource_server")

# (importing module, imported module): an import against the rules that is yet to be removed.
# The floor-plan issue (#7) emptied it; an entry added here must say why and be paid down.
DEBT: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module
            # `from storage import usecases` imports storage.usecases
            yield from (f"{module}.{alias.name}" for alias in node.names if alias.name != "*")


def project_imports() -> Iterator[tuple[str, str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            importer = module_name(path)
            for imported in imports(path):
                if imported.split(".")[0] in PACKAGES and imported.split(".")[0] != package:
                    yield importer, imported, path


def allowed(importer: str, imported: str) -> bool:
    rules = ALLOWED[importer.split(".", maxsplit=1)[0]]
    return any(imported == rule or imported.startswith(f"{rule}.") for rule in rules)


def _is_module(name: str) -> bool:
    *parent, last = name.split(".")
    base = ROOT.joinpath(*parent)
    return (base / f"{last}.py").exists() or (base / last / "__init__.py").exists()


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def smart_auth_imports() -> Iterator[tuple[str, str]]:
    for path in sorted((ROOT / "smart_auth").rglob("*.py")):
        importer = module_name(path)
        for imported in imports(path):
            if _within(imported, "smart_auth"):
                yield importer, imported


def smart_auth_allowed(importer: str, imported: str) -> bool:
    """A half imports itself and the shared modules; a shared module imports neither half."""
    mine = next((half for half in SMART_AUTH_HALVES if _within(importer, half)), None)
    return all(half == mine or not _within(imported, half) for half in SMART_AUTH_HALVES)


def violations() -> set[tuple[str, str]]:
    found = set()
    # `from storage.fhir_store.store import FhirStore` also yields storage.fhir_store.FhirStore
    for importer, imported, _ in project_imports():
        # `from storage.fhir_store.store import FhirStore` also yields storage.fhir_store.store.FhirStore

        named_module = _is_module(imported) or not _is_module(imported.rsplit(".", 1)[0])
        if named_module and not allowed(importer, imported):
            found.add((importer, imported))
    for importer, imported in smart_auth_imports():
        named_module = _is_module(imported) or not _is_module(imported.rsplit(".", 1)[0])
        if named_module and not smart_auth_allowed(importer, imported):
            found.add((importer, imported))
    return found


def test_no_package_imports_against_the_arrows() -> None:
    new = sorted(violations() - DEBT)
    assert not new, "imports against docs/architecture.md:\n" + "\n".join(f"{a} -> {b}" for a, b in new)


def test_the_debt_list_only_shrinks() -> None:
    paid = sorted(DEBT - violations())
    assert not paid, "no longer imported, remove from DEBT:\n" + "\n".join(f"{a} -> {b}" for a, b in paid)


def test_no_part_imports_a_part_it_must_not() -> None:
    wrong = [
        f"{importer} -> {imported}"
        for source, target in NEVER
        for path in sorted(ROOT.joinpath(*source.split(".")).rglob("*.py"))
        if _within(importer := module_name(path), source)
        for imported in imports(path)
        if _within(imported, target)
    ]
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_storage_outside_its_use_cases_never_imports_them() -> None:
    wrong = [
        (importer, imported)
        for package in ("storage",)
        for path in sorted((ROOT / package).rglob("*.py"))
        if not (importer := module_name(path)).startswith("storage.usecases")
        for imported in imports(path)
        if imported.startswith("storage.usecases")
    ]
    assert not wrong


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "facade"])
def test_only_facade_reads_the_environment(package: str) -> None:
    readers = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                readers.append(f"{module_name(path)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module in ("os", "pydantic_settings"):
                names = {alias.name for alias in node.names}
                if names & {"environ", "getenv", "environb", "BaseSettings"}:
                    readers.append(f"{module_name(path)}:{node.lineno}")
    assert not readers, "settings are read in facade/settings.py only: " + ", ".join(readers)
