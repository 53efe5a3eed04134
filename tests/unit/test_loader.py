"""The rules loader: a small valid ruleset loads, and every doubtful one is refused by name.

`tests/fixtures/rulesets/valid/` is the baseline: four rules over three stages, with a
`has:` chain (red flag -> suspected condition -> urgency) and a `lacks:` default. Most broken
rulesets are generated from it in `tmp_path` by editing its YAML; the most important refusals
also have a checked-in directory beside it so a reviewer can read one.

The tests under "Review findings" at the end are regression tests: each pins a doubtful
ruleset that an earlier loader accepted, or crashed on instead of refusing it by name.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from service import create_app
from service.loader import RulesetError, load_rulesets

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rulesets"
VALID = FIXTURES / "valid"
RULES = "rules.yaml"

ACUTE = "fixture.duration.acute"
SADDLE = "fixture.red_flag.saddle_anaesthesia"
EMERGENCY = "fixture.urgency.emergency_condition"
DEFAULT = "fixture.urgency.routine_by_default"

Edit = Callable[[Any], None]


# --- helpers ---------------------------------------------------------------------------


def copy_valid(tmp_path: Path) -> Path:
    directory = tmp_path / "rulesets"
    shutil.copytree(VALID, directory)
    return directory


def edit_yaml(directory: Path, name: str, edit: Edit) -> None:
    """Load one YAML file of a ruleset, let `edit` change it in place, and write it back."""
    path = directory / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def variant(tmp_path: Path, edit: Edit, name: str = RULES) -> Path:
    directory = copy_valid(tmp_path)
    edit_yaml(directory, name, edit)
    return directory


def refusal(directory: Path) -> list[str]:
    """Load a ruleset that must be refused, and return the problems the loader lists."""
    with pytest.raises(RulesetError) as info:
        load_rulesets(directory)
    problems = info.value.problems
    assert problems, "a refusal must list at least one problem"
    assert all(isinstance(problem, str) for problem in problems)
    return problems


def naming(problems: list[str], *parts: str) -> list[str]:
    """Return the problems that mention every one of `parts`."""
    return [problem for problem in problems if all(part in problem for part in parts)]


def rule_in(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(rule for rule in data["rules"] if rule["id"] == rule_id)


def change_rule(rule_id: str, **changes: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        rule_in(data, rule_id).update(changes)

    return edit


def drop_from_rule(rule_id: str, key: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        del rule_in(data, rule_id)[key]

    return edit


def add_rule(**rule: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data["rules"].append(rule)

    return edit


def extra_rule(rule_id: str, stage: str, when: dict[str, Any], then: list[Any]) -> Edit:
    return add_rule(id=rule_id, title="An extra rule", stage=stage,
                    statement="An extra rule for a test.", when=when, then=then,
                    citations=["fixture-guideline"])


def acute_when(facts: Any) -> Edit:
    return change_rule(ACUTE, when={"facts": facts})


# --- the valid fixture ---------------------------------------------------------------------


def test_valid_fixture_loads():
    catalog = load_rulesets(VALID)
    assert catalog.version == "0.0.1-fixture"
    assert catalog.stages == ("findings", "triage", "triage_default")
    assert [rule.id for rule in catalog.rules] == [ACUTE, SADDLE, EMERGENCY, DEFAULT]
    assert {rule.ruleset for rule in catalog.rules} == {"fixture"}
    assert {rule.file for rule in catalog.rules} == {RULES}
    assert set(catalog.citations) == {"fixture-guideline", "fixture-seed"}


def test_valid_fixture_compiles_has_chain_and_lacks_default():
    catalog = load_rulesets(VALID)
    emergency, default = catalog.rule(EMERGENCY), catalog.rule(DEFAULT)
    assert emergency is not None and default is not None
    has = [pattern.describe() for pattern in emergency.condition.has]
    assert has == [{"suspect": {"urgency": "emergency"}}]
    assert [p.describe() for p in default.condition.lacks] == [{"urgency": {}}]


def test_rules_come_out_in_stage_order_whatever_the_file_order(tmp_path):
    directory = variant(tmp_path, lambda data: data["rules"].reverse())
    assert [rule.id for rule in load_rulesets(directory).rules] == [
        SADDLE, ACUTE, EMERGENCY, DEFAULT,
    ]


def test_digest_is_sha256_of_the_files():
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", load_rulesets(VALID).digest)


def test_digest_depends_on_content_not_location(tmp_path):
    assert load_rulesets(copy_valid(tmp_path)).digest == load_rulesets(VALID).digest


@pytest.mark.parametrize("name", ["manifest.yaml", "vocabulary.yaml", "citations.yaml", RULES])
def test_digest_changes_when_a_listed_file_changes(tmp_path, name):
    directory = copy_valid(tmp_path)
    before = load_rulesets(directory)
    with (directory / name).open("a", encoding="utf-8") as file:
        file.write("\n# a comment changes the bytes, not the meaning\n")
    after = load_rulesets(directory)
    assert after.digest != before.digest
    assert [rule.id for rule in after.rules] == [rule.id for rule in before.rules]


def test_app_starts_on_the_valid_fixture():
    client = create_app(rulesets_dir=VALID).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["rules"] == 4
    assert ready.json["ruleset"]["version"] == "0.0.1-fixture"


# --- checked-in broken rulesets ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "file", "rule_id", "fragment"),
    [
        ("unknown_citation", RULES, ACUTE, "unknown citation 'no-such-source'"),
        ("duplicate_rule_id", "more_rules.yaml", ACUTE, "duplicate rule id"),
        ("action_not_allowed", RULES, "fixture.pain.severe_prescribe",
         "action 'prescribe' is not on the allow-list"),
        ("lacks_same_stage", RULES, DEFAULT,
         "could match what rule fixture.urgency.self_care_when_mild concludes in the same stage"),
    ],
)
def test_checked_in_broken_ruleset_is_refused(fixture, file, rule_id, fragment):
    problems = refusal(FIXTURES / fixture)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{file}: rule {rule_id}: "), problems
    assert fragment in problems[0]


def test_service_refuses_to_start_on_a_broken_ruleset():
    with pytest.raises(RulesetError) as info:
        create_app(rulesets_dir=FIXTURES / "unknown_citation")
    message = str(info.value)
    assert "rules.yaml" in message
    assert ACUTE in message
    assert "no-such-source" in message


def test_service_refusal_names_every_file_and_rule(tmp_path):
    directory = variant(tmp_path, change_rule(SADDLE, stage="planning"))
    edit_yaml(directory, "citations.yaml", lambda data: data["citations"][0].pop("title"))
    with pytest.raises(RulesetError) as info:
        create_app(rulesets_dir=directory)
    message = str(info.value)
    assert f"rules.yaml: rule {SADDLE}: stage 'planning'" in message
    assert "citations.yaml: citation fixture-guideline: missing title" in message


# --- generated broken rules: each refused, naming its file and rule ----------------------

RULE_REFUSALS: dict[str, tuple[Edit, str, str]] = {
    # case: (edit of rules.yaml, rule named, fragment of the problem)
    "unknown citation": (
        change_rule(SADDLE, citations=["fixture-guideline", "nice-ng59"]),
        SADDLE, "unknown citation 'nice-ng59'"),
    "unknown field": (
        change_rule(SADDLE, when={"facts": {"neuro.sadle_anaesthesia": True}}),
        SADDLE, "unknown field 'neuro.sadle_anaesthesia'"),
    "string for an int field": (
        acute_when({"patient.age": "old"}), ACUTE, "patient.age cannot equal 'old'"),
    "string for a boolean field": (
        change_rule(SADDLE, when={"facts": {"neuro.saddle_anaesthesia": "yes"}}),
        SADDLE, "neuro.saddle_anaesthesia cannot equal 'yes'"),
    "number compared with a boolean": (
        acute_when({"pain.duration_days": {"lt": True}}), ACUTE,
        "pain.duration_days cannot be compared with True"),
    "unknown operator": (
        acute_when({"pain.duration_days": {"below": 42}}), ACUTE, "unknown operator 'below'"),
    "two operators in one test": (
        acute_when({"pain.duration_days": {"gte": 0, "lt": 42}}), ACUTE,
        "pain.duration_days needs exactly one operator"),
    "contains on a non-list field": (
        acute_when({"neuro.weakness": {"contains": "progressive"}}), ACUTE,
        "neuro.weakness cannot contain 'progressive'"),
    "contains a value the list cannot hold": (
        acute_when({"pain.sites": {"contains": "knee"}}), ACUTE,
        "pain.sites cannot contain 'knee'"),
    "equality on a list field": (
        acute_when({"pain.sites": "low_back"}), ACUTE, "pain.sites cannot equal 'low_back'"),
    "enum value not allowed": (
        acute_when({"history.trauma": "severe"}), ACUTE, "history.trauma cannot equal 'severe'"),
    "enum value not allowed in `in`": (
        acute_when({"history.trauma": {"in": ["minor", "severe"]}}), ACUTE,
        "history.trauma cannot equal 'severe'"),
    "order comparison on an enum": (
        acute_when({"history.trauma": {"gt": "minor"}}), ACUTE,
        "gt needs a numeric field, history.trauma is not"),
    "known with a non-boolean": (
        acute_when({"neuro.weakness": {"known": "yes"}}), ACUTE, "known takes true or false"),
    "empty any": (acute_when({"any": []}), ACUTE, "`any:` needs a non-empty list"),
    "unknown part of when": (
        change_rule(ACUTE, when={"fact": {"pain.duration_days": {"lt": 42}}}), ACUTE,
        "unknown part(s) ['fact']"),
    "empty when": (change_rule(ACUTE, when={}), ACUTE, "needs at least one of facts, has, lacks"),
    "has on a conclusion kind later rules cannot match": (
        change_rule(EMERGENCY, when={"has": [{"caution": {}}]}), EMERGENCY,
        "'caution' is not a conclusion later rules can match"),
    "has on an attribute the conclusion lacks": (
        change_rule(EMERGENCY, when={"has": [{"suspect": {"colour": "red"}}]}), EMERGENCY,
        "suspect has no attribute 'colour'"),
    "has on a value the vocabulary lacks": (
        change_rule(EMERGENCY, when={"has": [{"suspect": {"urgency": "soon"}}]}), EMERGENCY,
        "suspect.urgency cannot be 'soon'"),
    "action not on the allow-list": (
        change_rule(SADDLE, then=[{"prescribe": {"drug": "oxycodone", "dose_mg": 10}}]),
        SADDLE, "action 'prescribe' is not on the allow-list"),
    "unknown condition code": (
        change_rule(SADDLE, then=[{"suspect": {"condition": "cauda_equina",
                                               "urgency": "emergency"}}]),
        SADDLE, "condition 'cauda_equina' is not one of"),
    "suspect without urgency": (
        change_rule(SADDLE, then=[{"suspect": {"condition": "cauda_equina_syndrome"}}]),
        SADDLE, "missing parameter(s): urgency"),
    "unknown conclusion parameter": (
        change_rule(EMERGENCY, then=[{"urgency": {"level": "emergency", "when": "now"}}]),
        EMERGENCY, "unknown parameter(s): when"),
    "urgency level not in the vocabulary": (
        change_rule(EMERGENCY, then=[{"urgency": {"level": "asap"}}]),
        EMERGENCY, "level 'asap' is not one of"),
    "red flag on a finding that is not an input field": (
        change_rule(SADDLE, then=[{"red_flag": {"finding": "neuro.saddle"}},
                                  {"suspect": {"condition": "cauda_equina_syndrome",
                                               "urgency": "emergency"}}]),
        SADDLE, "finding 'neuro.saddle' is not one of"),
    "two actions in one then entry": (
        change_rule(EMERGENCY, then=[{"urgency": {"level": "emergency"},
                                      "avoid": {"code": "tens"}}]),
        EMERGENCY, "then[0]: expected one `action: {parameters}`"),
    "empty then": (change_rule(ACUTE, then=[]), ACUTE, "then: needs a non-empty list"),
    "missing statement": (drop_from_rule(ACUTE, "statement"), ACUTE, "missing statement"),
    "blank statement": (change_rule(ACUTE, statement="   "), ACUTE,
                        "statement must be non-empty text"),
    "missing title": (drop_from_rule(ACUTE, "title"), ACUTE, "missing title"),
    "no citations": (change_rule(ACUTE, citations=[]), ACUTE, "needs at least one citation"),
    "citations key missing": (drop_from_rule(ACUTE, "citations"), ACUTE, "missing citations"),
    "unknown rule key": (change_rule(ACUTE, priority=1), ACUTE, "unknown key(s) priority"),
    "stage not in the manifest": (
        change_rule(ACUTE, stage="planning"), ACUTE,
        "stage 'planning' is not one of findings, triage, triage_default"),
    "has on a conclusion no rule draws": (
        change_rule(EMERGENCY, when={"has": [{"suspect": {"urgency": "urgent"}}]}), EMERGENCY,
        "tests nothing: no earlier stage concludes it"),
    "has on a conclusion only a later stage draws": (
        change_rule(ACUTE, when={"facts": {"pain.duration_days": {"lt": 42}},
                                 "has": [{"urgency": {}}]}),
        ACUTE, "tests nothing: no earlier stage concludes it"),
    "has on a conclusion drawn in the same stage": (
        change_rule(SADDLE, stage="triage"), EMERGENCY,
        f"could match what rule {SADDLE} concludes in the same stage (triage)"),
    "lacks overlapping another rule of the same stage": (
        change_rule(EMERGENCY, stage="triage_default"), DEFAULT,
        f"could match what rule {EMERGENCY} concludes in the same stage (triage_default)"),
    "lacks overlapping a new default of the same stage": (
        extra_rule("fixture.urgency.self_care", "triage_default",
                   {"facts": {"pain.severity": {"lte": 3}}}, [{"urgency": {"level": "self_care"}}]),
        DEFAULT, "could match what rule fixture.urgency.self_care concludes in the same stage"),
    "lacks on a conclusion no rule draws": (
        change_rule(DEFAULT, when={"lacks": [{"refer": {}}]}), DEFAULT,
        "tests nothing: no earlier stage concludes it"),
    "id not dotted lower-case": (
        change_rule(ACUTE, id="Fixture Acute"), "Fixture Acute",
        "id must be dotted lower-case words"),
}


@pytest.mark.parametrize(("edit", "rule_id", "fragment"), RULE_REFUSALS.values(),
                         ids=RULE_REFUSALS.keys())
def test_bad_rule_is_refused_naming_file_and_rule(tmp_path, edit, rule_id, fragment):
    problems = refusal(variant(tmp_path, edit))
    assert naming(problems, f"{RULES}: rule {rule_id}:", fragment), problems


def test_duplicate_rule_id_in_one_file_is_refused(tmp_path):
    def duplicate(data: dict[str, Any]) -> None:
        data["rules"].append(dict(rule_in(data, ACUTE)))

    problems = refusal(variant(tmp_path, duplicate))
    assert problems == [f"{RULES}: rule {ACUTE}: duplicate rule id"]


def test_duplicate_rule_id_across_files_names_the_second_file(tmp_path):
    directory = copy_valid(tmp_path)
    data = yaml.safe_load((directory / RULES).read_text(encoding="utf-8"))
    second = {"ruleset": "second", "rules": [rule_in(data, SADDLE)]}
    (directory / "second.yaml").write_text(yaml.safe_dump(second), encoding="utf-8")
    edit_yaml(directory, "manifest.yaml", lambda m: m["rule_files"].append("second.yaml"))
    assert refusal(directory) == [f"second.yaml: rule {SADDLE}: duplicate rule id"]


def test_every_problem_is_reported_at_once(tmp_path):
    def two_broken_rules(data: dict[str, Any]) -> None:
        rule_in(data, ACUTE)["citations"] = ["no-such-source"]
        rule_in(data, SADDLE)["when"] = {"facts": {"neuro.sadle_anaesthesia": True}}

    directory = variant(tmp_path, two_broken_rules)
    (directory / "second.yaml").write_text(yaml.safe_dump({"ruleset": "second", "rules": [
        {"id": "second.no_statement", "title": "No statement", "stage": "findings",
         "when": {"facts": {"patient.age": {"gte": 50}}},
         "then": [{"avoid": {"code": "bed_rest"}}], "citations": ["fixture-guideline"]},
    ]}), encoding="utf-8")
    edit_yaml(directory, "manifest.yaml", lambda m: m["rule_files"].append("second.yaml"))

    problems = refusal(directory)
    assert naming(problems, f"{RULES}: rule {ACUTE}:", "unknown citation 'no-such-source'")
    assert naming(problems, f"{RULES}: rule {SADDLE}:", "unknown field")
    assert naming(problems, "second.yaml: rule second.no_statement:", "missing statement")
    # The emergency rule built on the refused red flag rule can no longer match either.
    assert naming(problems, f"{RULES}: rule {EMERGENCY}:", "tests nothing")


def test_one_rule_with_several_faults_lists_each(tmp_path):
    edit = change_rule(ACUTE, stage="planning", citations=["no-such-source"],
                       then=[{"prescribe": {}}])
    problems = naming(refusal(variant(tmp_path, edit)), f"{RULES}: rule {ACUTE}:")
    assert naming(problems, "stage 'planning'")
    assert naming(problems, "unknown citation 'no-such-source'")
    assert naming(problems, "action 'prescribe'")


# --- broken files ------------------------------------------------------------------------


def test_invalid_yaml_in_a_rule_file_is_refused(tmp_path):
    directory = copy_valid(tmp_path)
    (directory / RULES).write_text("ruleset: fixture\nrules:\n  - id: [unclosed\n",
                                   encoding="utf-8")
    problems = refusal(directory)
    assert naming(problems, f"{RULES}: not valid YAML"), problems


def test_rule_file_that_is_not_utf8_is_refused(tmp_path):
    directory = copy_valid(tmp_path)
    (directory / RULES).write_bytes(b"ruleset: fixture\nrules: []\n# caf\xe9\n")
    assert naming(refusal(directory), f"{RULES}: not valid YAML")


def test_invalid_yaml_in_the_manifest_is_refused(tmp_path):
    directory = copy_valid(tmp_path)
    (directory / "manifest.yaml").write_text("version: [\n", encoding="utf-8")
    assert naming(refusal(directory), "manifest.yaml: not valid YAML")


def test_rule_file_without_a_rules_list_is_refused(tmp_path):
    directory = variant(tmp_path, lambda data: data.update(rules={"id": ACUTE}))
    message = f"{RULES}: needs a `ruleset:` name and a non-empty `rules:` list"
    assert naming(refusal(directory), message)


def test_missing_rule_file_is_refused(tmp_path):
    directory = variant(tmp_path, lambda m: m["rule_files"].append("absent.yaml"),
                        name="manifest.yaml")
    assert refusal(directory) == ["absent.yaml: file not found"]


@pytest.mark.parametrize("key", ["version", "stages", "vocabulary", "bibliography", "rule_files"])
def test_manifest_missing_a_key_is_refused(tmp_path, key):
    directory = variant(tmp_path, lambda m: m.pop(key), name="manifest.yaml")
    assert refusal(directory) == [f"manifest.yaml: missing {key}"]


def test_missing_manifest_is_refused(tmp_path):
    directory = copy_valid(tmp_path)
    (directory / "manifest.yaml").unlink()
    assert refusal(directory) == ["manifest.yaml: file not found"]


@pytest.mark.parametrize(
    ("key", "missing"),
    [("title", "title"), ("publisher", "publisher"), ("year", "year"), ("id", "id")],
)
def test_citation_missing_a_required_key_is_refused(tmp_path, key, missing):
    def edit(data: dict[str, Any]) -> None:
        data["citations"][1].pop(key)

    problems = refusal(variant(tmp_path, edit, name="citations.yaml"))
    label = 1 if key == "id" else "fixture-seed"
    assert naming(problems, f"citations.yaml: citation {label}: missing {missing}"), problems
    # The rule citing the refused entry is refused too, by name.
    assert naming(problems, f"{RULES}: rule {SADDLE}:", "unknown citation 'fixture-seed'")


def test_citation_without_url_or_file_is_refused(tmp_path):
    problems = refusal(variant(tmp_path, lambda data: data["citations"][0].pop("url"),
                               name="citations.yaml"))
    assert naming(problems, "citations.yaml: citation fixture-guideline: missing url or file")
    assert naming(problems, f"{RULES}: rule {ACUTE}:", "unknown citation 'fixture-guideline'")


def test_duplicate_citation_id_is_refused(tmp_path):
    def edit(data: dict[str, Any]) -> None:
        data["citations"].append(dict(data["citations"][0]))

    problems = refusal(variant(tmp_path, edit, name="citations.yaml"))
    assert problems == ["citations.yaml: citation fixture-guideline: duplicate citation id"]


@pytest.mark.parametrize("section", ["urgency", "conditions", "treatments", "avoid"])
def test_vocabulary_missing_a_section_is_refused(tmp_path, section):
    directory = variant(tmp_path, lambda data: data.pop(section), name="vocabulary.yaml")
    problems = refusal(directory)
    assert naming(problems, "vocabulary.yaml", f"missing section(s): {section}"), problems


def test_vocabulary_condition_without_kind_is_refused(tmp_path):
    def edit(data: dict[str, Any]) -> None:
        del data["conditions"]["cauda_equina_syndrome"]["kind"]

    problems = refusal(variant(tmp_path, edit, name="vocabulary.yaml"))
    assert naming(problems, "vocabulary.yaml", "cauda_equina_syndrome")


# --- Review findings: rulesets an earlier loader accepted, or crashed on ----------------
# Each of these fails against the current loader; see the report that came with them.

MALFORMED_VALUES: dict[str, tuple[str, Edit, str | None]] = {
    # case: (file edited, edit, rule that must be named or None for a file-level problem)
    "list as a condition code": (RULES, change_rule(SADDLE, then=[
        {"suspect": {"condition": ["cauda_equina_syndrome"], "urgency": "emergency"}}]), SADDLE),
    "list as a duration value": (RULES, change_rule(ACUTE, then=[
        {"duration_category": {"value": ["acute"]}}]), ACUTE),
    "list as an imaging rating": (RULES, change_rule(ACUTE, then=[
        {"imaging": {"site": "low_back", "indicated": False,
                     "procedures": {"radiograph_lumbar_spine": ["usually_appropriate"]}}}]), ACUTE),
    "list as a cited id": (RULES, change_rule(ACUTE, citations=[["fixture-guideline"]]), ACUTE),
    "list in a has: pattern": (RULES, change_rule(EMERGENCY, when={
        "has": [{"suspect": {"condition": ["cauda_equina_syndrome"]}}]}), EMERGENCY),
    "number as an `in:` list in a has: pattern": (RULES, change_rule(EMERGENCY, when={
        "has": [{"suspect": {"urgency": {"in": 5}}}]}), EMERGENCY),
    "list as a citation id": (
        "citations.yaml", lambda data: data["citations"][0].update(id=["fixture-guideline"]),
        None),
    "stages as plain names": (
        "manifest.yaml",
        lambda m: m.update(stages=["findings", "triage", "triage_default"]), None),
    "rule_files as one name": ("manifest.yaml", lambda m: m.update(rule_files=RULES), None),
    "vocabulary condition that is a number": (
        "vocabulary.yaml", lambda v: v["conditions"].update(cauda_equina_syndrome=5), None),
}


@pytest.mark.parametrize(("name", "edit", "rule_id"), MALFORMED_VALUES.values(),
                         ids=MALFORMED_VALUES.keys())
def test_malformed_value_is_refused_not_a_crash(tmp_path, name, edit, rule_id):
    """An unhashable or non-iterable value must become a named problem, not a TypeError."""
    directory = variant(tmp_path, edit, name=name)
    try:
        load_rulesets(directory)
    except RulesetError as error:
        expected = f"{name}: rule {rule_id}:" if rule_id else name
        assert naming(error.problems, expected), error.problems
    except Exception as error:  # any other exception escaping the loader is the defect
        pytest.fail(f"loader crashed with {type(error).__name__}: {error} "
                    f"instead of refusing {name}")
    else:
        pytest.fail(f"loader accepted a malformed {name}")


def test_lacks_on_a_conclusion_only_a_later_stage_draws_is_refused(tmp_path):
    """Such a `lacks:` is always true when it is tested: the rule reads as a check it is not."""
    edit = change_rule(ACUTE, when={"facts": {"pain.duration_days": {"lt": 42}},
                                    "lacks": [{"urgency": {"level": "emergency"}}]})
    problems = refusal(variant(tmp_path, edit))
    assert naming(problems, f"{RULES}: rule {ACUTE}:", "lacks"), problems


@pytest.mark.parametrize(
    "facts",
    [{"patient.age": 200}, {"pain.severity": {"gt": 11}}, {"pain.duration_days": {"lt": -5}},
     {"patient.bmi": float("nan")}],
    ids=["age equals 200", "severity above 11", "duration below -5", "bmi equals NaN"],
)
def test_comparison_with_a_value_outside_the_field_range_is_refused(tmp_path, facts):
    """FieldSpec.accepts promises a check of "type and range"; only the type is checked."""
    problems = refusal(variant(tmp_path, acute_when(facts)))
    assert naming(problems, f"{RULES}: rule {ACUTE}:"), problems


def test_rule_file_without_a_ruleset_name_is_refused(tmp_path):
    """The loader's own message says a rule file needs `ruleset:`; a missing one loads as ''."""
    problems = refusal(variant(tmp_path, lambda data: data.pop("ruleset")))
    assert naming(problems, RULES, "ruleset"), problems


def test_empty_rule_file_is_refused(tmp_path):
    """A listed rule file that is empty (say, truncated on deploy) silently drops its rules."""
    directory = copy_valid(tmp_path)
    (directory / RULES).write_text("", encoding="utf-8")
    assert naming(refusal(directory), RULES)


@pytest.mark.parametrize(
    ("original", "repeated"),
    [
        ("    citations: [fixture-guideline, fixture-seed]\n",
         "    citations: [fixture-guideline, fixture-seed]\n    citations: [fixture-seed]\n"),
        ("      facts: {neuro.saddle_anaesthesia: true}\n",
         "      facts: {neuro.saddle_anaesthesia: true}\n"
         "      facts: {pain.duration_days: {lt: 42}}\n"),
    ],
    ids=["citations twice", "facts twice"],
)
def test_repeated_yaml_key_in_a_rule_is_refused(tmp_path, original, repeated):
    """PyYAML keeps the last of two equal keys: the first `facts:` test silently vanishes."""
    directory = copy_valid(tmp_path)
    path = directory / RULES
    text = path.read_text(encoding="utf-8")
    assert original in text
    path.write_text(text.replace(original, repeated), encoding="utf-8")
    assert naming(refusal(directory), RULES)


def test_stage_listed_twice_in_the_manifest_is_refused(tmp_path):
    directory = variant(tmp_path, lambda m: m["stages"].append({"id": "findings"}),
                        name="manifest.yaml")
    assert naming(refusal(directory), "manifest.yaml", "findings")


@pytest.mark.parametrize(
    ("key", "value"),
    [("year", "soon"), ("url", "not a url"), ("url", "http://example.org/insecure")],
)
def test_citation_with_a_malformed_year_or_url_is_refused(tmp_path, key, value):
    """citations.yaml documents `year (int)` and `url (https)`; only presence is checked."""
    directory = variant(tmp_path, lambda data: data["citations"][0].update({key: value}),
                        name="citations.yaml")
    assert naming(refusal(directory), "citations.yaml", "fixture-guideline")


# --- the red-flag model ----------------------------------------------------------------------


def test_valid_fixture_carries_its_red_flag_model():
    model = load_rulesets(VALID).red_flag_model
    assert [f["field"] for f in model["findings"]] == ["neuro.saddle_anaesthesia"]
    assert [c["condition"] for c in model["conditions"]] == ["cauda_equina_syndrome"]


def test_the_red_flag_model_is_in_the_digest(tmp_path):
    directory = copy_valid(tmp_path)
    before = load_rulesets(directory).digest
    edit_yaml(directory, "red_flag_model.yaml",
              lambda data: data["conditions"][0].update(unknown="Asked every time."))
    assert load_rulesets(directory).digest != before


MODEL = "red_flag_model.yaml"
BAD_MODELS = {
    "unknown field": (lambda m: m["findings"][0].update(field="neuro.saddle"),
                      "finding 0: unknown field 'neuro.saddle'"),
    "value the field cannot take": (
        lambda m: m["findings"][0].update(positive=["yes"]),
        "finding neuro.saddle_anaesthesia: neuro.saddle_anaesthesia cannot be 'yes'"),
    "unknown site": (lambda m: m["findings"][0].update(sites="knee"), "sites must be one of"),
    "finding listed twice": (lambda m: m["findings"].append(dict(m["findings"][0])),
                             "finding neuro.saddle_anaesthesia: is listed twice"),
    "unknown condition": (lambda m: m["conditions"][0].update(condition="gout"),
                          "condition gout: is not a condition of the vocabulary"),
    "unknown urgency": (lambda m: m["conditions"][0].update(urgency="soon"),
                        "urgency must be one of the vocabulary's"),
    "unknown citation": (lambda m: m["conditions"][0].update(citations=["no-such-source"]),
                         "unknown citation 'no-such-source'"),
    "needs more factors than listed": (
        lambda m: m["conditions"][0]["together"][0]["groups"][0].update(need=3),
        "need must be a whole number from 1 to 2"),
    "factor on an unknown field": (
        lambda m: m["conditions"][0]["together"][0]["groups"][0]["of"][0].update(
            when={"pain.leg": "bilateral"}), "unknown field 'pain.leg'"),
    "nothing raises it": (lambda m: m["conditions"][0].update(alone=[], together=[]),
                          "needs `alone` and `together` lists, not both empty"),
    "no explanation of the unknown": (lambda m: m["conditions"][0].pop("unknown"),
                                      "unknown must be non-empty text"),
}


@pytest.mark.parametrize(("edit", "message"), BAD_MODELS.values(), ids=BAD_MODELS)
def test_a_doubtful_red_flag_model_is_refused_by_name(tmp_path, edit, message):
    problems = refusal(variant(tmp_path, edit, name=MODEL))
    assert any(p.startswith(f"{MODEL}: ") and message in p for p in problems), problems
