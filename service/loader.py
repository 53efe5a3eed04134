"""Read and check rulesets/, and compile the rules for the engine; refuse anything doubtful.

The manifest names the version, the ordered stages, the vocabulary, the bibliography and the
rule files. Every problem found is reported at once, each naming its file and rule, and the
service refuses to start while any remains.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .actions import Conclusion, ConclusionError, build_conclusion
from .conditions import CompiledCondition, ConditionError, compile_when
from .red_flag_model import check_red_flag_model
from .vocabulary import Vocabulary, VocabularyError

MANIFEST = "manifest.yaml"
RULE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
RULE_KEYS = {"id", "title", "statement", "stage", "when", "then", "citations"}
CITATION_REQUIRED = ("id", "title", "publisher", "year", "kind")
# What a source is, in the order clinicians read them: practice guidelines (and appropriateness
# criteria and national pathways) first, then the studies and reviews behind them, then web
# passages. Every list of citations is shown in this order.
CITATION_KINDS = ("guideline", "evidence", "web")


class RulesetError(Exception):
    """The rulesets cannot be loaded; `problems` lists each one with its file and rule."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("rulesets refused:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Rule:
    """One checked rule, as reviewers read it and as the engine runs it."""

    id: str
    ruleset: str
    file: str
    title: str
    statement: str
    stage: str
    when: Mapping[str, Any]
    then: tuple[Conclusion, ...]
    citations: tuple[str, ...]
    condition: CompiledCondition


@dataclass(frozen=True)
class RuleCatalog:
    """Everything loaded from rulesets/: rules in stage order, vocabulary and bibliography."""

    version: str
    digest: str
    stages: tuple[str, ...]
    rules: tuple[Rule, ...]
    vocabulary: Vocabulary
    citations: Mapping[str, Mapping[str, Any]]
    # citation id -> (kind, position in the bibliography): the order every list is shown in.
    citation_rank: Mapping[str, tuple[int, int]]
    red_flag_model: Mapping[str, Any] | None = None

    def rule(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def in_citation_order(self, ids: Iterable[str]) -> list[str]:
        """Return citation ids once each, guidelines first, then in bibliography order."""
        return sorted(dict.fromkeys(ids), key=self.citation_rank.__getitem__)


def _citation_rank(citations: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    return {citation_id: (CITATION_KINDS.index(entry["kind"]), position)
            for position, (citation_id, entry) in enumerate(citations.items())}


class _StrictYamlLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key repeated in one mapping.

    PyYAML keeps the last of repeated keys, so a second `facts:` would silently replace
    the first condition of a rule.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictYamlLoader)
    except FileNotFoundError:
        problems.append(f"{path.name}: file not found")
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problems.append(f"{path.name}: not valid YAML: {error}")
    return None


def _check_citations(data: Any, name: str, problems: list[str]) -> dict[str, dict[str, Any]]:
    entries = data.get("citations") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        problems.append(f"{name}: needs a `citations:` list")
        return {}
    citations: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        label = entry.get("id", index) if isinstance(entry, Mapping) else index
        where = f"{name}: citation {label}"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        missing = [key for key in CITATION_REQUIRED if not entry.get(key)]
        if not entry.get("url") and not entry.get("file"):
            missing.append("url or file")
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
        elif not isinstance(entry["id"], str):
            problems.append(f"{where}: id must be text")
        elif isinstance(entry["year"], bool) or not isinstance(entry["year"], int):
            problems.append(f"{where}: year must be a whole number")
        elif "url" in entry and not str(entry["url"]).startswith("https://"):
            problems.append(f"{where}: url must be an https:// address")
        elif entry["kind"] not in CITATION_KINDS:
            problems.append(f"{where}: kind must be one of {', '.join(CITATION_KINDS)}")
        elif entry["id"] in citations:
            problems.append(f"{where}: duplicate citation id")
        else:
            citations[entry["id"]] = dict(entry)
    return citations


def _build_rule(
    raw: Any, ruleset: str, file: str, stages: tuple[str, ...], context: _Context
) -> Rule | None:
    try:
        return _checked_rule(raw, ruleset, file, stages, context)
    except (TypeError, AttributeError, KeyError) as error:
        # A shape the checks did not foresee: still refused, still naming file and rule.
        rule_id = raw.get("id") if isinstance(raw, Mapping) else None
        context.problems.append(f"{file}: rule {rule_id or '(no id)'}: malformed: {error}")
        return None


def _checked_rule(
    raw: Any, ruleset: str, file: str, stages: tuple[str, ...], context: _Context
) -> Rule | None:
    rule_id = raw.get("id") if isinstance(raw, Mapping) else None
    where = f"{file}: rule {rule_id or '(no id)'}"
    if not isinstance(raw, Mapping):
        context.problems.append(f"{where}: must be a mapping")
        return None
    errors: list[str] = []
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        errors.append("id must be dotted lower-case words, e.g. lbp.red_flag.saddle_anaesthesia")
    missing = sorted(RULE_KEYS - set(raw))
    unknown = sorted(set(raw) - RULE_KEYS)
    if missing:
        errors.append(f"missing {', '.join(missing)}")
    if unknown:
        errors.append(f"unknown key(s) {', '.join(unknown)}")
    for key in ("title", "statement"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            errors.append(f"{key} must be non-empty text")
    if "stage" in raw and raw["stage"] not in stages:
        errors.append(f"stage {raw['stage']!r} is not one of {', '.join(stages)}")
    citations = raw.get("citations")
    if not isinstance(citations, list) or not citations:
        errors.append("needs at least one citation")
    else:
        errors += [f"unknown citation {c!r}" for c in citations
                   if not isinstance(c, str) or c not in context.citations]
    condition = None
    if "when" in raw:
        try:
            condition = compile_when(raw["when"], context.vocabulary)
        except ConditionError as error:
            errors.append(f"malformed condition: {error}")
    conclusions: list[Conclusion] = []
    if not isinstance(raw.get("then"), list) or not raw.get("then"):
        errors.append("then: needs a non-empty list of conclusions")
    else:
        for index, entry in enumerate(raw["then"]):
            if not isinstance(entry, Mapping) or len(entry) != 1:
                errors.append(f"then[{index}]: expected one `action: {{parameters}}`")
                continue
            ((kind, params),) = entry.items()
            try:
                conclusions.append(build_conclusion(kind, params, context.vocabulary))
            except ConclusionError as error:
                errors.append(f"then[{index}]: {error}")
    if errors:
        context.problems += [f"{where}: {error}" for error in errors]
        return None
    assert condition is not None
    return Rule(
        id=rule_id,
        ruleset=ruleset,
        file=file,
        title=raw["title"].strip(),
        statement=" ".join(raw["statement"].split()),
        stage=raw["stage"],
        when=raw["when"],
        then=tuple(conclusions),
        citations=tuple(sorted(dict.fromkeys(citations), key=context.citation_rank.__getitem__)),
        condition=condition,
    )


@dataclass
class _Context:
    vocabulary: Vocabulary
    citations: Mapping[str, Any]
    problems: list[str]
    citation_rank: Mapping[str, tuple[int, int]]


def _check_stage_order(rules: list[Rule], stages: tuple[str, ...], problems: list[str]) -> None:
    """Refuse a rule whose `has:`/`lacks:` result could depend on the order rules fire in.

    Stages run one after another. Within a stage, which rule fires first is an engine detail,
    so no rule may test a conclusion another rule of the same stage could draw. A `has:` test
    must be satisfiable by an earlier stage; a `lacks:` test sees only earlier stages, and may
    overlap its own rule's conclusion (the "only when nothing yet" default, which fires once).
    Both must name a conclusion some earlier stage can draw, or they test nothing.
    """
    asserted = [(stages.index(rule.stage), rule, c.fact) for rule in rules for c in rule.then
                if c.fact is not None]
    for rule in rules:
        position = stages.index(rule.stage)
        for part in ("has", "lacks"):
            for pattern in getattr(rule.condition, part):
                sources = [(at, src) for at, src, fact in asserted if pattern.matches(fact)]
                where = f"{rule.file}: rule {rule.id}: {part} {pattern.describe()}"
                if not any(at < position for at, _ in sources):
                    problems.append(f"{where} tests nothing: no earlier stage concludes it")
                for at, source in sources:
                    if at == position and not (part == "lacks" and source is rule):
                        problems.append(
                            f"{where} could match what rule {source.id} concludes in the same "
                            f"stage ({rule.stage}); build only on earlier stages"
                        )


def _digest(directory: Path, names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0")
        digest.update((directory / name).read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


def _manifest_shape_problems(manifest: Mapping[str, Any]) -> list[str]:
    problems = []
    stages = manifest["stages"]
    if not isinstance(stages, list) or not all(
            isinstance(stage, Mapping) and isinstance(stage.get("id"), str) for stage in stages):
        problems.append(f"{MANIFEST}: stages must be a list of entries with an `id`")
    else:
        ids = [stage["id"] for stage in stages]
        problems += [f"{MANIFEST}: stage {i!r} is listed twice"
                     for i in sorted({i for i in ids if ids.count(i) > 1})]
    files = manifest["rule_files"]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        problems.append(f"{MANIFEST}: rule_files must be a list of file names")
    elif len(set(files)) != len(files):
        problems.append(f"{MANIFEST}: a rule file is listed twice")
    for key in ("vocabulary", "bibliography"):
        if not isinstance(manifest[key], str):
            problems.append(f"{MANIFEST}: {key} must be a file name")
    return problems


def load_rulesets(directory: Path) -> RuleCatalog:
    """Load, check and compile every ruleset listed in the manifest, or raise RulesetError."""
    problems: list[str] = []
    manifest = _read_yaml(directory / MANIFEST, problems)
    if not isinstance(manifest, Mapping):
        raise RulesetError(problems or [f"{MANIFEST}: must be a mapping"])
    required = ("version", "stages", "vocabulary", "bibliography", "rule_files")
    missing = [key for key in required if not manifest.get(key)]
    if missing:
        raise RulesetError([f"{MANIFEST}: missing {', '.join(missing)}"])
    shape = _manifest_shape_problems(manifest)
    if shape:
        raise RulesetError(shape)
    stages = tuple(str(stage["id"]) for stage in manifest["stages"])
    vocabulary_data = _read_yaml(directory / manifest["vocabulary"], problems)
    try:
        vocabulary = Vocabulary.from_data(vocabulary_data)
    except VocabularyError as error:
        raise RulesetError(problems + [f"{manifest['vocabulary']}: {error}"]) from error
    bibliography = _read_yaml(directory / manifest["bibliography"], problems)
    citations = _check_citations(bibliography, manifest["bibliography"], problems)
    context = _Context(vocabulary=vocabulary, citations=citations, problems=problems,
                       citation_rank=_citation_rank(citations))

    rules: list[Rule] = []
    for file in manifest["rule_files"]:
        if not (directory / file).is_file():
            problems.append(f"{file}: file not found")
            continue
        data = _read_yaml(directory / file, problems)
        if problems and problems[-1].startswith(f"{file}:"):
            continue
        if not isinstance(data, Mapping) or not isinstance(data.get("ruleset"), str) \
                or not data["ruleset"] or not isinstance(data.get("rules"), list) \
                or not data["rules"]:
            problems.append(f"{file}: needs a `ruleset:` name and a non-empty `rules:` list")
            continue
        for raw in data["rules"]:
            rule = _build_rule(raw, str(data.get("ruleset", "")), file, stages, context)
            if rule is None:
                continue
            if any(existing.id == rule.id for existing in rules):
                problems.append(f"{file}: rule {rule.id}: duplicate rule id")
                continue
            rules.append(rule)
    model_file = manifest.get("red_flag_model")
    red_flag_model = None
    if model_file is not None:
        red_flag_model = check_red_flag_model(
            _read_yaml(directory / str(model_file), problems), str(model_file), vocabulary,
            citations, problems)
    _check_stage_order(rules, stages, problems)
    if problems:
        raise RulesetError(problems)

    rules.sort(key=lambda rule: stages.index(rule.stage))
    files = [MANIFEST, manifest["vocabulary"], manifest["bibliography"], *manifest["rule_files"]]
    if model_file is not None:
        files.append(str(model_file))
    return RuleCatalog(
        version=str(manifest["version"]),
        digest=_digest(directory, files),
        stages=stages,
        rules=tuple(rules),
        vocabulary=vocabulary,
        citations=citations,
        citation_rank=context.citation_rank,
        red_flag_model=red_flag_model,
    )
