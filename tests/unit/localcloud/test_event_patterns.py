"""EventBridge event-pattern matching, checked against the examples of the EventBridge user guide.

Sections cited: "Creating event patterns" (CP), "Matching events on null values and empty strings"
(NULL), "Arrays in event patterns" (ARR), "Content filtering in event patterns" / "Comparison
operators" (CF), and the README of aws/event-ruler, the matcher behind EventBridge (RULER).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.localcloud.event_patterns import InvalidEventPattern, compile_pattern, matches, validate_pattern

ABSENT = object()

# CF / RULER: the sample EC2 state-change event the content-filtering examples run against.
EC2_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "012345679012",
    "time": "2017-10-02T16:24:49Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
    "detail": {
        "c-count": 5,
        "d-count": 3,
        "x-limit": 301.8,
        "source-ip": "10.0.0.33",
        "instance-id": "i-000000aaaaaa00000",
        "state": "running",
    },
}


def field_matches(alternatives: list[Any], value: Any) -> bool:
    """Whether an event whose field ``f`` holds ``value`` (or lacks it, for ABSENT) matches."""
    event = {} if value is ABSENT else {"f": value}
    return matches({"f": alternatives}, event)


# --- exact matching ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # CP: a field's value is an array of alternatives
        ({"source": ["aws.ec2"]}, True),
        ({"source": ["aws.ec2", "aws.fargate"]}, True),
        ({"source": ["aws.s3"]}, False),
        # CP: matching is exact, character by character, case-sensitive
        ({"source": ["AWS.EC2"]}, False),
        ({"source": ["aws.ec"]}, False),
        # CP: nested fields follow the event's structure
        ({"detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["running"]}}, True),
        # CP: every field in the pattern has to match
        ({"source": ["aws.ec2"], "detail": {"state": ["stopped"]}}, False),
        ({"detail": {"no-such-field": ["running"]}}, False),
        # a leaf pattern never matches an object, a nested pattern never matches a string
        ({"detail": ["running"]}, False),
        ({"source": {"name": ["aws.ec2"]}}, False),
        # numbers match numerically
        ({"detail": {"c-count": [5]}}, True),
        ({"detail": {"c-count": [5.0]}}, True),
        ({"detail": {"x-limit": [3.018e2]}}, True),
        ({"detail": {"c-count": ["5"]}}, False),
    ],
)
def test_exact_values_match_the_same_field_in_the_event(pattern: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, EC2_EVENT) is expected


def test_fields_absent_from_the_pattern_are_ignored() -> None:
    # Given an event with many fields and a pattern naming only one of them
    pattern = {"source": ["aws.ec2"]}
    # When the event gains an unrelated field, Then the pattern still matches
    assert matches(pattern, {**EC2_EVENT, "unrelated": {"deep": [1, 2, 3]}})


@pytest.mark.parametrize(
    ("alternatives", "value", "expected"),
    [
        (["1"], 1, False),
        ([1], "1", False),
        ([5], 5.0, True),
        ([5.0], 5, True),
        ([True], True, True),
        ([True], 1, False),
        ([1], True, False),
        ([False], 0, False),
        (["true"], True, False),
        ([None], None, True),
        (["null"], None, False),
        ([123456789012], 123456789012, True),  # account ids are numbers beyond 32 bits
    ],
)
def test_exact_values_compare_by_json_type(alternatives: list[Any], value: Any, expected: bool) -> None:
    assert field_matches(alternatives, value) is expected


NULL_DOC_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "3e3c153a-8339-4e30-8c35-687ebef853fe",
    "detail-type": "EC2 Instance Launch Successful",
    "source": "aws.autoscaling",
    "account": "123456789012",
    "time": "2015-11-11T21:31:47Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"eventVersion": "", "responseElements": None},
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # NULL: an empty string and null are not interchangeable
        ({"detail": {"eventVersion": [""]}}, True),
        ({"detail": {"responseElements": [None]}}, True),
        ({"detail": {"eventVersion": [None]}}, False),
        ({"detail": {"responseElements": [""]}}, False),
        # null matches a JSON null only, never a field the event does not have
        ({"detail": {"requestParameters": [None]}}, False),
    ],
)
def test_null_and_empty_string_match_only_themselves(pattern: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, NULL_DOC_EVENT) is expected


# --- arrays in events ----------------------------------------------------------------------------

ARR_PATTERN = {
    "resources": [
        "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
        "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
        "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f",
    ]
}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        # ARR: matches because the first pattern value equals the event array's second element
        (
            [
                "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-"
                "d5978ed4a025:autoScalingGroupName/ASGTerminate",
                "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            ],
            True,
        ),
        # ARR: no match when the intersection of the two arrays is empty
        (
            [
                "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-"
                "d5978ed4a025:autoScalingGroupName/ASGTerminate",
                "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560e",
            ],
            False,
        ),
        ([], False),
    ],
)
def test_an_event_array_matches_when_any_element_matches(resources: list[str], expected: bool) -> None:
    assert matches(ARR_PATTERN, {"resources": resources}) is expected


EMPLOYEES = {
    "employees": [
        [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}],
        [{"firstName": "Peter", "lastName": "Jones"}],
    ]
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # RULER "JSON Array Matching": arrays, even nested ones, are crushed out of the path
        ({"employees": {"firstName": ["Anna"]}}, True),
        ({"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}, True),
        # RULER: fields of one pattern object must come from the same array element
        ({"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}, False),
    ],
)
def test_objects_inside_event_arrays_are_matched_element_by_element(pattern: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, EMPLOYEES) is expected


# --- string operators ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alternatives", "value", "expected"),
    [
        # CF "Prefix matching"
        ([{"prefix": "2017-10-02"}], "2017-10-02T18:43:48Z", True),
        ([{"prefix": "2017-10-02"}], "2017-10-03T18:43:48Z", False),
        ([{"prefix": "us-"}], ["eu-west-1", "us-east-1"], True),
        ([{"prefix": "1"}], 10, False),
        # CF "Prefix matching while ignoring case"
        ([{"prefix": {"equals-ignore-case": "EventB"}}], "eventbridge", True),
        ([{"prefix": {"equals-ignore-case": "EventB"}}], "EVENTBUS", True),
        ([{"prefix": {"equals-ignore-case": "EventB"}}], "Event", False),
    ],
)
def test_prefix_matches_strings_that_start_with_it(alternatives: list[Any], value: Any, expected: bool) -> None:
    assert field_matches(alternatives, value) is expected


@pytest.mark.parametrize(
    ("alternatives", "value", "expected"),
    [
        # CF "Suffix matching"
        ([{"suffix": ".png"}], "image.png", True),
        ([{"suffix": ".png"}], "image.PNG", False),
        ([{"suffix": ".png"}], "image.png.txt", False),
        # CF "Suffix matching while ignoring case"
        ([{"suffix": {"equals-ignore-case": ".png"}}], "IMAGE.PNG", True),
        ([{"suffix": {"equals-ignore-case": ".png"}}], "image.jpg", False),
    ],
)
def test_suffix_matches_strings_that_end_with_it(alternatives: list[Any], value: Any, expected: bool) -> None:
    assert field_matches(alternatives, value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ec2", True), ("Ec2", True), ("EC2", True), ("ec2x", False), (2, False)],
)
def test_equals_ignore_case_matches_strings_in_any_casing(value: Any, expected: bool) -> None:
    # CF "Equals-ignore-case matching"
    assert field_matches([{"equals-ignore-case": "EC2"}], value) is expected


@pytest.mark.parametrize(
    ("wildcard", "value", "expected"),
    [
        # CF "Wildcard matching"
        ("dir/*.png", "dir/image.png", True),
        ("dir/*.png", "dir/sub/image.png", True),
        ("dir/*.png", "dir/image.jpg", False),
        # RULER: "*" also matches nothing, and matching is case-sensitive
        ("Simple*Service", "SimpleQueueService", True),
        ("Simple*Service", "SimpleService", True),
        ("Simple*Service", "simpleQueueService", False),
        ("arn:aws:events:us-east-1:*:event-bus/*", "arn:aws:events:us-east-1:123456789012:event-bus/b", True),
        # RULER: a backslash escapes "*" and itself
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("a\\\\b", "a\\b", True),
        ("*", 5, False),
    ],
)
def test_wildcard_matches_strings_where_star_stands_for_any_text(wildcard: str, value: Any, expected: bool) -> None:
    assert field_matches([{"wildcard": wildcard}], value) is expected


# --- anything-but --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("excluded", "value", "expected"),
    [
        # CF "Anything-but matching": single string, single number, lists of either
        ("initializing", "running", True),
        ("initializing", "initializing", False),
        (123, 124, True),
        (123, 123, False),
        (123, 123.0, False),
        (["stopped", "overloaded"], "running", True),
        (["stopped", "overloaded"], "stopped", False),
        ([100, 200, 300], 301.8, True),
        ([100, 200, 300], 200, False),
        # CF "Anything-but (begins with / ends with)"
        ({"prefix": "init"}, "running", True),
        ({"prefix": "init"}, "initializing", False),
        ({"suffix": ".png"}, "photo.jpg", True),
        ({"suffix": ".png"}, "photo.png", False),
        # CF "Anything-but (ignore case)"
        ({"equals-ignore-case": "initializing"}, "INITIALIZING", False),
        ({"equals-ignore-case": ["stopped", "overloaded"]}, "Overloaded", False),
        ({"equals-ignore-case": ["stopped", "overloaded"]}, "running", True),
        # CF "Anything-but using a wildcard"
        ({"wildcard": "*/lib/*"}, "/usr/lib/libc.so", False),
        ({"wildcard": "*/lib/*"}, "/usr/bin/ls", True),
        ({"wildcard": ["*/lib/*", "*/bin/*"]}, "/usr/bin/ls", False),
        # RULER: a value of another type than the excluded ones is "anything but" them
        ("5", 5, True),
    ],
)
def test_anything_but_matches_any_value_except_the_excluded_ones(excluded: Any, value: Any, expected: bool) -> None:
    assert field_matches([{"anything-but": excluded}], value) is expected


@pytest.mark.parametrize("value", [ABSENT, {"nested": "object"}, []])
def test_anything_but_needs_a_value_to_match(value: Any) -> None:
    assert not field_matches([{"anything-but": "initializing"}], value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["initializing", "running"], True), (["initializing", "initializing"], False)],
)
def test_anything_but_on_an_event_array_matches_when_some_element_is_not_excluded(
    value: list[str], expected: bool
) -> None:
    assert field_matches([{"anything-but": "initializing"}], value) is expected


# --- numeric -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comparison", "value", "expected"),
    [
        # CF "Numeric matching": the c-count / d-count / x-limit example
        ([">", 0, "<=", 5], 5, True),
        ([">", 0, "<=", 5], 0, False),
        ([">", 0, "<=", 5], 0.000001, True),
        ([">", 0, "<=", 5], 5.000001, False),
        (["<", 10], 3, True),
        (["<", 10], 10, False),
        (["=", 3.018e2], 301.8, True),
        (["=", 3.018e2], 301.81, False),
        ([">=", 5, "<", 10], 5, True),
        ([">=", 5, "<", 10], 4.99, False),
        (["<=", -1], -1, True),
        # only JSON numbers take part in numeric matching
        ([">", 0], "5", False),
        ([">", 0], True, False),
        (["<", 10], [20, 3], True),
    ],
)
def test_numeric_matches_numbers_within_the_bounds(comparison: list[Any], value: Any, expected: bool) -> None:
    assert field_matches([{"numeric": comparison}], value) is expected


# --- exists --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exists", "value", "expected"),
    [
        # CF "Exists matching"
        (True, "pending", True),
        (True, ABSENT, False),
        (False, ABSENT, True),
        (False, "pending", False),
        # a null is a value: the field exists
        (True, None, True),
        (False, None, False),
        # CF: exists only works on leaf nodes, so an object value counts as not existing
        (True, {"c1": 100}, False),
        (False, {"c1": 100}, True),
        # an empty array holds no leaf value
        (True, [], False),
        (False, [], True),
        (True, [1], True),
    ],
)
def test_exists_matches_on_the_presence_of_a_leaf_value(exists: bool, value: Any, expected: bool) -> None:
    assert field_matches([{"exists": exists}], value) is expected


def test_exists_false_matches_when_the_parent_object_is_missing() -> None:
    # CF: {"detail": {"c-count": [{"exists": false}]}} matches an event without detail.c-count
    assert matches({"detail": {"c-count": [{"exists": False}]}}, {"source": "aws.ec2"})


# --- cidr ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "value", "expected"),
    [
        # CF "IP address matching"
        ("10.0.0.0/24", "10.0.0.255", True),
        ("10.0.0.0/24", "10.0.0.0", True),
        ("10.0.0.0/24", "10.0.1.0", False),
        ("10.0.0.0/24", "not-an-ip", False),
        ("10.0.0.0/24", 10, False),
        ("2001:db8::/32", "2001:db8::1", True),
        ("2001:db8::/32", "2001:0db8:0000:0000:0000:0000:0000:ffff", True),
        ("2001:db8::/32", "2001:db9::1", False),
        ("2001:db8::/32", "10.0.0.1", False),
    ],
)
def test_cidr_matches_ip_addresses_inside_the_block(block: str, value: Any, expected: bool) -> None:
    assert field_matches([{"cidr": block}], value) is expected


# --- $or -----------------------------------------------------------------------------------------

# RULER "Normal Or": source && (metricName || namespace)
NORMAL_OR = {
    "source": ["aws.cloudwatch"],
    "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}],
}
# RULER "Nested Or and And": source && (metricName || (metricType && namespace && (metricId || spaceId)) || scope)
NESTED_OR = {
    "source": ["aws.cloudwatch"],
    "$or": [
        {"metricName": ["CPUUtilization", "ReadLatency"]},
        {
            "metricType": ["MetricType"],
            "namespace": ["AWS/EC2", "AWS/ES"],
            "$or": [{"metricId": [1234]}, {"spaceId": [1000]}],
        },
        {"scope": ["Service"]},
    ],
}
# RULER "Parallel Or": a second $or inside a nested object
PARALLEL_OR = {
    "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
    "detail": {"$or": [{"source": ["aws.cloudwatch"]}, {"detail-type": ["CloudWatch Alarm State Change"]}]},
}


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        (NORMAL_OR, {"source": "aws.cloudwatch", "metricName": "ReadLatency"}, True),
        (NORMAL_OR, {"source": "aws.cloudwatch", "namespace": "AWS/ES"}, True),
        (NORMAL_OR, {"source": "aws.cloudwatch", "metricName": "Other"}, False),
        (NORMAL_OR, {"source": "aws.ec2", "metricName": "CPUUtilization"}, False),
        (NESTED_OR, {"source": "aws.cloudwatch", "scope": "Service"}, True),
        (NESTED_OR, {"source": "aws.cloudwatch", "metricType": "MetricType", "namespace": "AWS/EC2"}, False),
        (
            NESTED_OR,
            {"source": "aws.cloudwatch", "metricType": "MetricType", "namespace": "AWS/EC2", "spaceId": 1000},
            True,
        ),
        (PARALLEL_OR, {"namespace": "AWS/EC2", "detail": {"detail-type": "CloudWatch Alarm State Change"}}, True),
        (PARALLEL_OR, {"namespace": "AWS/EC2", "detail": {"source": "aws.ec2"}}, False),
        (PARALLEL_OR, {"namespace": "AWS/ES", "detail": {"source": "aws.cloudwatch"}}, False),
    ],
)
def test_or_matches_when_any_alternative_matches_alongside_the_other_fields(
    pattern: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    assert matches(pattern, event) is expected


# --- combined ------------------------------------------------------------------------------------

# CF "Complex example with multiple matching"
COMPLEX_PATTERN = {
    "time": [{"prefix": "2017-10-02"}],
    "detail": {
        "state": [{"anything-but": "initializing"}],
        "c-count": [{"numeric": [">", 0, "<=", 5]}],
        "d-count": [{"numeric": ["<", 10]}],
        "x-limit": [{"anything-but": [100, 200, 300]}],
        "source-ip": [{"cidr": "10.0.0.0/8"}],
    },
}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (None, None, True),
        ("state", "initializing", False),
        ("c-count", 6, False),
        ("d-count", 10, False),
        ("x-limit", 300, False),
        ("source-ip", "11.0.0.1", False),
    ],
)
def test_complex_pattern_needs_every_condition(field: str | None, value: Any, expected: bool) -> None:
    # Given the documentation's sample event, with one detail field changed
    event = copy.deepcopy(EC2_EVENT)
    if field is not None:
        event["detail"][field] = value
    # When / Then
    assert matches(COMPLEX_PATTERN, event) is expected


def test_a_compiled_pattern_matches_many_events() -> None:
    # Given a pattern compiled once
    is_running_ec2 = compile_pattern({"source": ["aws.ec2"], "detail": {"state": ["running"]}})
    stopped = copy.deepcopy(EC2_EVENT)
    stopped["detail"]["state"] = "stopped"
    # When it is applied to several events, Then each gets its own answer
    assert [is_running_ec2(EC2_EVENT), is_running_ec2(stopped), is_running_ec2({})] == [True, False, False]


@pytest.mark.parametrize(
    "pattern",
    [
        COMPLEX_PATTERN,
        NESTED_OR,
        PARALLEL_OR,
        ARR_PATTERN,
        {"detail": {"responseElements": [None], "eventVersion": [""]}},
        {"a": [{"prefix": ""}, {"suffix": {"equals-ignore-case": "x"}}, {"exists": True}, 1, True, None]},
        {"a": [{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}]},
        {"a": [{"cidr": "2001:db8::/32"}, {"numeric": ["=", 0]}]},
    ],
)
def test_documented_patterns_are_valid(pattern: dict[str, Any]) -> None:
    validate_pattern(pattern)


# --- invalid patterns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({}, "$: empty objects are not allowed"),
        ({"detail": {}}, "$.detail: empty objects are not allowed"),
        (
            {"source": "aws.ec2"},
            "$.source: must be an object of nested fields or a non-empty array of match values, got string",
        ),
        ({"source": []}, "$.source: empty arrays are not allowed; list at least one value to match"),
        (
            {"source": [["aws.ec2"]]},
            "$.source[0]: a match value must be a string, number, boolean, null or operator object, got array",
        ),
        (
            {"detail": {"state": ["running", {"foo": 1}]}},
            "$.detail.state[1]: unknown operator 'foo'; expected one of anything-but, cidr, "
            "equals-ignore-case, exists, numeric, prefix, suffix, wildcard",
        ),
        (
            {"a": [{"prefix": "x", "suffix": "y"}]},
            "$.a[0]: an operator object must have exactly one key, got 2 (prefix, suffix)",
        ),
        ({"a": [{}]}, "$.a[0]: an operator object must have exactly one key, got 0 (none)"),
        (
            {"a": [{"prefix": 5}]},
            '$.a[0].prefix: must be a string or {"equals-ignore-case": <string>}, got number',
        ),
        (
            {"a": [{"prefix": {"equals-ignore-case": 5}}]},
            "$.a[0].prefix.equals-ignore-case: must be a string, got number",
        ),
        ({"a": [{"suffix": None}]}, '$.a[0].suffix: must be a string or {"equals-ignore-case": <string>}, got null'),
        ({"a": [{"equals-ignore-case": ["x"]}]}, "$.a[0].equals-ignore-case: must be a string, got array"),
        ({"a": [{"exists": "true"}]}, "$.a[0].exists: must be true or false, got string"),
        ({"a": [{"numeric": ">"}]}, '$.a[0].numeric: must be an array such as [">", 0, "<=", 5], got string'),
        (
            {"a": [{"numeric": [">", 0, "<", 5, "<", 6]}]},
            "$.a[0].numeric: must hold one comparison or a lower and an upper bound (2 or 4 elements), got 6",
        ),
        (
            {"a": [{"numeric": ["!=", 5]}]},
            "$.a[0].numeric[0]: unknown comparison '!='; expected one of =, >, >=, <, <=",
        ),
        ({"a": [{"numeric": [">", "5"]}]}, "$.a[0].numeric[1]: the value after '>' must be a number, got string"),
        ({"a": [{"numeric": [">", True]}]}, "$.a[0].numeric[1]: the value after '>' must be a number, got boolean"),
        (
            {"a": [{"numeric": ["<", 10, ">", 0]}]},
            "$.a[0].numeric: a range must be a lower bound ('>' or '>=') followed by an upper bound "
            "('<' or '<='), got '<' then '>'",
        ),
        (
            {"a": [{"numeric": [">", 0, ">=", 5]}]},
            "$.a[0].numeric: a range must be a lower bound ('>' or '>=') followed by an upper bound "
            "('<' or '<='), got '>' then '>='",
        ),
        (
            {"a": [{"numeric": ["=", 5, "<", 6]}]},
            "$.a[0].numeric: a range must be a lower bound ('>' or '>=') followed by an upper bound "
            "('<' or '<='), got '=' then '<'",
        ),
        (
            {"a": [{"numeric": [">", 5, "<", 1]}]},
            "$.a[0].numeric: the lower bound 5 must be less than the upper bound 1",
        ),
        ({"a": [{"wildcard": "a**b"}]}, "$.a[0].wildcard: consecutive wildcard characters at position 1 in 'a**b'"),
        (
            {"a": [{"wildcard": "a\\b"}]},
            "$.a[0].wildcard: invalid escape at position 1 in 'a\\\\b': only \\* and \\\\ may be escaped",
        ),
        ({"a": [{"cidr": "10.0.0.0/33"}]}, "$.a[0].cidr: '10.0.0.0/33' is not a valid IPv4 or IPv6 CIDR block"),
        ({"a": [{"cidr": "10.0.0"}]}, "$.a[0].cidr: '10.0.0' is not a valid IPv4 or IPv6 CIDR block"),
        ({"a": [{"anything-but": []}]}, "$.a[0].anything-but: empty arrays are not allowed"),
        (
            {"a": [{"anything-but": ["a", 1]}]},
            "$.a[0].anything-but: must be a string, a number, a non-empty array of only strings or only "
            "numbers, or an object with one of equals-ignore-case, prefix, suffix, wildcard; "
            "got an array of number and string",
        ),
        (
            {"a": [{"anything-but": True}]},
            "$.a[0].anything-but: must be a string, a number, a non-empty array of only strings or only "
            "numbers, or an object with one of equals-ignore-case, prefix, suffix, wildcard; got boolean",
        ),
        ({"a": [{"anything-but": {"prefix": ""}}]}, "$.a[0].anything-but.prefix: must not be empty"),
        (
            {"a": [{"anything-but": {"prefix": ["a", "b"]}}]},
            "$.a[0].anything-but.prefix: must be a string, got array",
        ),
        (
            {"a": [{"anything-but": {"numeric": [">", 1]}}]},
            "$.a[0].anything-but.numeric: anything-but supports equals-ignore-case, prefix, suffix or "
            "wildcard, not 'numeric'",
        ),
        (
            {"a": [{"anything-but": {"prefix": "a", "suffix": "b"}}]},
            "$.a[0].anything-but: must have exactly one key, got 2",
        ),
        (
            {"a": [{"anything-but": {"wildcard": []}}]},
            "$.a[0].anything-but.wildcard: must be a string or a non-empty array of strings, got array",
        ),
        (
            {"a": [{"anything-but": {"wildcard": "x**"}}]},
            "$.a[0].anything-but.wildcard: consecutive wildcard characters at position 1 in 'x**'",
        ),
        ({"$or": {"a": [1]}}, "$.$or: must be an array of at least 2 objects, got object"),
        ({"$or": [{"a": [1]}]}, "$.$or: must be an array of at least 2 objects, got 1"),
        ({"$or": [{"a": [1]}, "b"]}, "$.$or[1]: each $or alternative must be an object, got string"),
        ({"$or": [{}, {"b": [1]}]}, "$.$or[0]: empty objects are not allowed"),
        (
            {"detail": {"$or": [{"x": {"prefix": ["a"]}}, {"b": [1]}]}},
            "$.detail.$or[0].x.prefix: 'prefix' is an operator name and cannot be used as a field name inside $or",
        ),
        (
            {"detail": {"my field": 5}},
            '$.detail["my field"]: must be an object of nested fields or a non-empty array of match values, got number',
        ),
    ],
)
def test_invalid_patterns_are_rejected_with_the_path_of_the_problem(pattern: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEventPattern) as raised:
        validate_pattern(pattern)
    assert str(raised.value) == message


def test_a_pattern_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(InvalidEventPattern, match=r"^\$: an event pattern must be a JSON object, got array$"):
        compile_pattern([{"source": ["aws.ec2"]}])  # type: ignore[arg-type]


def test_matching_with_an_invalid_pattern_raises_instead_of_answering() -> None:
    with pytest.raises(InvalidEventPattern, match=r"^\$\.source: empty arrays are not allowed"):
        matches({"source": []}, EC2_EVENT)


def test_the_error_names_the_path_and_the_problem_separately() -> None:
    with pytest.raises(InvalidEventPattern) as raised:
        validate_pattern({"detail": {"state": [{"exists": 1}]}})
    assert (raised.value.path, raised.value.problem) == (
        "$.detail.state[0].exists",
        "must be true or false, got number",
    )
