"""The derive rule language: parsing, checking against the heads, safe rejection of code, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from umsrep.derive.rules import HeadValues, RuleError, check_rule, decide, parse_rule
from umsrep.errors import RecipeError
from umsrep.recipe import parse_recipe

HEADS = {"quality": ("classification", ["good", "low"]), "flow": ("classification", ["MV", "MA", "TR"]),
         "envelope": ("segmentation", ["envelope"])}


@pytest.mark.parametrize("rule", [
    'quality == "good" and flow == "TR" and p(flow) >= 0.8',
    "not (flow != 'MV') or p(quality, \"low\") < .25",
    'area(envelope) > 0.1 and area(envelope, "envelope") <= 1e-0',
    '"TR" == flow',
    "true",
])
def test_valid_rules_are_accepted(rule):
    assert check_rule(parse_rule(rule), HEADS, []) == "bool"


@pytest.mark.parametrize("rule,message", [
    ('flw == "TR"', "unknown head 'flw'; heads are ['envelope', 'flow', 'quality']"),
    ('flow == "XX"', "'XX' is not a class of 'flow' ['MV', 'MA', 'TR']"),
    ('p(flow, "XX") > 0.5', "'XX' is not a class of 'flow'"),
    ('area(flow) > 0.1', "'flow' is a classification head; this needs a segmentation head"),
    ('p(envelope) > 0.1', "'envelope' is a segmentation head; this needs a classification head"),
    ("flow", "a rule must be true or false"),
    ("p(flow)", "a rule must be true or false"),
    ('flow > "TR"', "can only be compared with == or != to a quoted class name"),
    ("flow == quality", "can only be compared with == or != to a quoted class name"),
    ('quality == "good" and 0.5', "'and' needs true/false operands"),
    ('p(flow) >= ', "rule ends early; expected a value"),
    ('(flow == "TR"', "rule ends early; expected ')'"),
    ('flow == "TR" flow', "unexpected 'flow' at column 14"),
    ("", "empty rule"),
])
def test_bad_rules_are_refused_with_the_reason(rule, message):
    with pytest.raises(RuleError) as e:
        check_rule(parse_rule(rule), HEADS, [])
    assert message in str(e.value)


@pytest.mark.parametrize("code", [
    '__import__("os").system("rm -rf /")',
    "open('/etc/passwd')",
    'flow.__class__ == "x"',
    "[x for x in ()]",
    "lambda: 1",
    'eval("1")',
    'flow == "TR"; import os',
    "p(flow) ** 2 > 1",
])
def test_code_is_never_run(code, monkeypatch):
    import builtins

    def boom(*a, **k):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    with pytest.raises(RuleError):
        check_rule(parse_rule(code), HEADS, [])


def test_decisions_are_computed_per_image_and_chain():
    values = {"quality": HeadValues(["good", "low"], probs=np.array([[.9, .1], [.2, .8], [.7, .3], [.6, .4]])),
              "flow": HeadValues(["MV", "MA", "TR"],
                                 probs=np.array([[.1, .05, .85], [0, 0, 1], [.3, .3, .4], [.05, .05, .9]])),
              "envelope": HeadValues(["envelope"], fractions=np.array([[.9, .1], [.5, .5], [1, 0], [.7, .3]]))}
    rules = {"measure": parse_rule('quality == "good" and flow == "TR" and p(flow) >= 0.8'),
             "exclude": parse_rule('flow == "TR" and not measure'),
             "big": parse_rule("area(envelope) > 0.2 and p(quality, \"low\") < 0.5")}
    for i, name in enumerate(rules):
        check_rule(rules[name], HEADS, list(rules)[:i])
    out = decide(rules, values)
    np.testing.assert_array_equal(out["measure"], [True, False, False, True])
    np.testing.assert_array_equal(out["exclude"], [False, True, True, False])
    np.testing.assert_array_equal(out["big"], [False, False, False, True])


def test_a_decision_must_exist():
    with pytest.raises(RuleError, match="unknown head 'later'"):
        check_rule(parse_rule("later"), HEADS, [])


def test_decisions_may_come_in_any_order_but_not_in_a_cycle():
    r = _recipe({"discharge": "not refer", "refer": 'dx == "malignant"'})
    assert list(r.derive_rules()) == ["refer", "discharge"]     # evaluated after what it uses
    with pytest.raises(RecipeError, match=r"derive\.a: decisions \['a', 'b'\] use each other in a cycle"):
        _recipe({"a": "not b", "b": "a"})


def _recipe(derive):
    return parse_recipe({"name": "t", "modality": "ultrasound", "data": {"synthetic": {"n": 24}},
                         "tasks": {"dx": {"type": "classification", "classes": ["benign", "malignant", "normal"]},
                                   "lesion": {"type": "segmentation", "classes": ["lesion"]}},
                         "derive": derive})


def test_recipe_checks_rules_at_load_and_names_the_field():
    r = _recipe({"refer": 'dx == "malignant"', "ok": {"rule": "not refer", "description": "no referral"}})
    assert list(r.derive_rules()) == ["refer", "ok"] and r.derive["ok"].description == "no referral"
    with pytest.raises(RecipeError, match=r"derive\.refer: 'cancer' is not a class of 'dx'"):
        _recipe({"refer": 'dx == "cancer"'})
    with pytest.raises(RecipeError, match=r"derive\.x: unknown function 'system' at column 1"):
        _recipe({"x": 'system("ls") == "x"'})
    with pytest.raises(RecipeError, match=r"derive\.dx: a decision name must be an identifier and not a task"):
        _recipe({"dx": 'dx == "benign"'})
