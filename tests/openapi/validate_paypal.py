#!/usr/bin/python3
"""
validate_paypal.py - checks request bodies against PayPal's OpenAPI files.

    /usr/bin/python3 tests/openapi/validate_paypal.py [--allow-unknown] [--responses] SPEC_DIR RECORDS

SPEC_DIR holds PayPal's official OpenAPI 3.0 documents, read as they are
(../shared/fixtures/paypal-openapi: checkout_orders_v2.json,
payments_payment_v2.json, notifications_webhooks_v1.json). RECORDS is a
JSON file ("-" for stdin) with the requests to check: the answer of
paypal_fake's GET /_fake/requests ({"data": [...]}) or a plain array. Each
record has "method", "path" (no query) and "body" (the raw body text,
"" or absent when there was none), and optionally "headers" ({name: value},
any case) and "seq".

For each record the operation is found by method and path template
("/v2/checkout/orders/{id}/capture"; a literal path wins over a template).
Its requestBody's application/json schema is taken from the document, its
$refs resolved within that same document, and the parsed body validated
with JSON Schema draft 4 (what OpenAPI 3.0 schema objects are based on).
Beyond that, an OpenAPI reading that PayPal's servers apply too:
  - a readOnly property must not be sent;
  - a property no schema branch declares is an error (PayPal answers
    unknown fields with 400 INVALID_REQUEST); --allow-unknown turns this off;
  - declared header parameters are checked (required, and their schema,
    e.g. PayPal-Request-Id is 1-108 characters) when headers were recorded;
  - an operation without a requestBody must be sent without one ("" or {});
  - a JSON body must be sent as Content-Type application/json.
With --responses, each record's answer ("status" and "response", the body
text) is checked too: the status must be documented for the operation (or
covered by "default") and the body must match that response's schema,
undeclared properties included. This is how tests/fakes/paypal_fake is
shown to answer in PayPal's shapes.
POST /v1/oauth2/token (form-encoded, described by no file) is skipped.
`--self-test SPEC_DIR` instead validates every requestBody example in the
files (they must all pass: the rules above agree with PayPal's own examples).
A request for an operation none of the files describe is a violation.

Every violation is printed on its own line as
    METHOD PATH [#seq]: <where in the body>: <what is wrong>
then a summary line. Exit status: 0 when all bodies are valid, 1 when any
violation was found or no request was checked at all (an empty record set
proves nothing), 2 on a usage or input error.
"""
import json
import re
import sys

import jsonschema
from jsonschema import Draft4Validator, RefResolver

SPEC_FILES = ("checkout_orders_v2.json", "payments_payment_v2.json",
              "notifications_webhooks_v1.json")
SKIPPED = {("POST", "/v1/oauth2/token")}
# Where the strict checks below do not hold, as PayPal's own examples in the
# files show: verify-webhook-signature echoes the event PayPal sent (its
# members are readOnly in the event schema), and the order_request example
# sends experience_context.payment_method_selected, which no schema declares.
# `--self-test` validates every example in the files, these included.
ECHOED = {("POST", "/v1/notifications/verify-webhook-signature"): {"webhook_event"}}
UNDECLARED_BUT_DOCUMENTED = {"payment_method_selected"}
METHODS = ("get", "put", "post", "patch", "delete")


class Operation:
    """One (method, path template) of a document, with what checks it."""

    def __init__(self, doc, method, template, op, path_item):
        self.doc = doc
        self.method = method.upper()
        self.template = template
        self.literal_segments = sum(1 for s in template.split("/") if s and "{" not in s)
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        self.regex = re.compile("^" + pattern + "$")
        self.resolver = RefResolver.from_schema(doc)
        self.op = op
        self.body_schema = None
        rb = op.get("requestBody")
        if rb is not None:
            rb = self.deref(rb)
            media = rb.get("content", {}).get("application/json")
            if media is None or "schema" not in media:
                raise ValueError("%s %s: requestBody has no application/json schema"
                                 % (self.method, template))
            self.body_schema = media["schema"]
            self.body_required = bool(rb.get("required", False))
        self.headers = []
        for p in list(path_item.get("parameters", [])) + list(op.get("parameters", [])):
            p = self.deref(p)
            if p.get("in") == "header":
                self.headers.append(p)

    def deref(self, node):
        """Follows $ref chains within the document."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            _, node = self.resolver.resolve(node["$ref"])
            seen += 1
            if seen > 64:
                raise ValueError("a $ref loop at " + self.template)
        return node

    def validator(self, schema):
        return Draft4Validator(schema, resolver=self.resolver)


def load_operations(spec_dir):
    ops = []
    for name in SPEC_FILES:
        path = spec_dir.rstrip("/") + "/" + name
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        for template, item in doc.get("paths", {}).items():
            for method in METHODS:
                if method in item:
                    ops.append(Operation(doc, method, template, item[method], item))
    return ops


def find_operation(ops, method, path):
    matches = [o for o in ops if o.method == method and o.regex.match(path)]
    if not matches:
        return None
    return max(matches, key=lambda o: o.literal_segments)


def where(path_items):
    return "/" + "/".join(str(p) for p in path_items) if path_items else "(body)"


def declared_properties(op, schema, instance, depth=0):
    """The property names any branch of `schema` (allOf/anyOf/oneOf, $refs
    followed) declares for the object `instance`, or None when the schema
    admits any property (additionalProperties/patternProperties, no
    properties at all)."""
    schema = op.deref(schema)
    if not isinstance(schema, dict) or depth > 32:
        return None
    names = set(schema.get("properties", {}).keys())
    open_ended = ("additionalProperties" in schema and schema["additionalProperties"] is not False) \
        or "patternProperties" in schema
    branches = [b for k in ("allOf", "anyOf", "oneOf") for b in schema.get(k, [])]
    if not names and not branches:
        return None
    for b in branches:
        sub = declared_properties(op, b, instance, depth + 1)
        if sub is None:
            return None
        names |= sub
    return None if open_ended else names


def property_schemas(op, schema, name, depth=0):
    """Every schema that `name` has in some branch of `schema`."""
    schema = op.deref(schema)
    out = []
    if not isinstance(schema, dict) or depth > 32:
        return out
    if name in schema.get("properties", {}):
        out.append(schema["properties"][name])
    for k in ("allOf", "anyOf", "oneOf"):
        for b in schema.get(k, []):
            out.extend(property_schemas(op, b, name, depth + 1))
    return out


def item_schemas(op, schema, depth=0):
    schema = op.deref(schema)
    out = []
    if not isinstance(schema, dict) or depth > 32:
        return out
    if isinstance(schema.get("items"), dict):
        out.append(schema["items"])
    for k in ("allOf", "anyOf", "oneOf"):
        for b in schema.get(k, []):
            out.extend(item_schemas(op, b, depth + 1))
    return out


def strict_checks(op, schema, instance, at, allow_unknown, errors, depth=0, echoed=(),
                  response=False):
    """readOnly and undeclared properties, walking the body alongside the
    schema (all branches, since the JSON Schema pass already decided which
    ones the body satisfies)."""
    if depth > 64:
        return
    if isinstance(instance, dict):
        declared = declared_properties(op, schema, instance)
        for key, value in instance.items():
            if depth == 0 and key in echoed:
                continue
            subs = property_schemas(op, schema, key)
            if not subs:
                if declared is not None and not allow_unknown and key not in UNDECLARED_BUT_DOCUMENTED:
                    errors.append("%s: property %r is not defined by the schema" % (where(at + [key]), key))
                continue
            if not response and any(op.deref(s).get("readOnly") or s.get("readOnly")
                                    for s in subs if isinstance(s, dict)):
                errors.append("%s: %r is readOnly and must not be sent" % (where(at + [key]), key))
            for s in subs:
                strict_checks(op, s, value, at + [key], allow_unknown, errors, depth + 1,
                              response=response)
    elif isinstance(instance, list):
        for s in item_schemas(op, schema):
            for i, value in enumerate(instance):
                strict_checks(op, s, value, at + [i], allow_unknown, errors, depth + 1,
                              response=response)


def header_value(headers, name):
    for k, v in (headers or {}).items():
        if k.lower() == name.lower():
            return v
    return None


def check_response(op, rec, allow_unknown):
    """The violations of a recorded answer ("status", "response" text)
    against the operation's documented responses: its status must be
    documented (or a "default" given), and its body must match that
    response's schema, with the same undeclared-property rule."""
    status = rec.get("status")
    text = rec.get("response")
    if not isinstance(status, int) or text is None:
        return []
    if status == 429:
        # RATE_LIMIT_REACHED is documented in PayPal's general API
        # responses, not in these files.
        return []
    responses = op.op.get("responses", {})
    entry = responses.get(str(status), responses.get("default"))
    if entry is None:
        return ["(response %d): status not documented for this operation" % status]
    entry = op.deref(entry)
    media = entry.get("content", {}).get("application/json")
    if media is None or "schema" not in media:
        if text.strip():
            return ["(response %d): documented without a body, got %.80s" % (status, text)]
        return []
    if not text.strip():
        return ["(response %d): a JSON body is documented, got none" % status]
    try:
        instance = json.loads(text)
    except ValueError as e:
        return ["(response %d): not JSON: %s" % (status, e)]
    errors = []
    for e in sorted(op.validator(media["schema"]).iter_errors(instance), key=lambda e: list(e.absolute_path)):
        errors.append("(response %d) %s: %s" % (status, where(list(e.absolute_path)), e.message))
    strict = []
    strict_checks(op, media["schema"], instance, [], allow_unknown, strict, response=True)
    return errors + ["(response %d) %s" % (status, e) for e in strict]


def check_record(ops, rec, allow_unknown, responses=False):
    """The violations of one recorded request (and with `responses`, of its
    answer), as strings, and whether an operation was found for it."""
    errors, checked = check_request(ops, rec, allow_unknown)
    if responses and checked:
        op = find_operation(ops, str(rec.get("method", "")).upper(),
                            str(rec.get("path", "")).split("?", 1)[0])
        if op is not None:
            errors = errors + check_response(op, rec, allow_unknown)
    return errors, checked


def check_request(ops, rec, allow_unknown):
    """The violations of one recorded request, as strings."""
    method = str(rec.get("method", "")).upper()
    path = str(rec.get("path", "")).split("?", 1)[0]
    body = rec.get("body")
    if body is None:
        body = ""
    headers = rec.get("headers")
    if (method, path) in SKIPPED:
        return [], False
    op = find_operation(ops, method, path)
    if op is None:
        return ["(request): no operation %s %s in the OpenAPI files" % (method, path)], True
    errors = []
    if isinstance(headers, dict):
        for p in op.headers:
            v = header_value(headers, p["name"])
            if v is None:
                if p.get("required"):
                    errors.append("(headers): required header %s is missing" % p["name"])
                continue
            for e in op.validator(p.get("schema", {})).iter_errors(v):
                errors.append("(headers): %s: %s" % (p["name"], e.message))
    stripped = body.strip() if isinstance(body, str) else body
    if op.body_schema is None:
        if stripped not in ("", "{}", {}):
            errors.append("(body): the operation takes no request body, got %.80s" % json.dumps(body))
        return errors, True
    if stripped == "":
        if op.body_required:
            errors.append("(body): a request body is required")
        return errors, True
    if isinstance(headers, dict):
        ctype = header_value(headers, "Content-Type")
        if ctype is None or ctype.split(";")[0].strip().lower() != "application/json":
            errors.append("(headers): Content-Type must be application/json, got %r" % ctype)
    if isinstance(body, str):
        try:
            instance = json.loads(body)
        except ValueError as e:
            return errors + ["(body): not JSON: %s" % e], True
    else:
        instance = body
    v = op.validator(op.body_schema)
    for e in sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        errors.append("%s: %s" % (where(list(e.absolute_path)), e.message))
        # anyOf/oneOf: say why each branch failed, the useful part.
        for sub in e.context or []:
            errors.append("    %s: %s" % (where(list(e.absolute_path) + list(sub.absolute_path)), sub.message))
    strict_checks(op, op.body_schema, instance, [], allow_unknown, errors,
                  echoed=ECHOED.get((op.method, op.template), ()))
    return errors, True


def self_test(ops):
    """Validates every requestBody example of the files; 0 when all pass."""
    bad = n = 0
    for o in ops:
        rb = o.doc["paths"][o.template][o.method.lower()].get("requestBody")
        if rb is None:
            continue
        examples = o.deref(rb)["content"]["application/json"].get("examples", {})
        for name, ex in examples.items():
            path = re.sub(r"\{[^/]+?\}", "X0", o.template)
            errors, _ = check_record(ops, {"method": o.method, "path": path,
                                           "body": json.dumps(o.deref(ex)["value"])}, False)
            n += 1
            for e in errors:
                bad += 1
                print("example %s of %s %s: %s" % (name, o.method, o.template, e))
    print("validate_paypal: %d example(s) of the files checked, %d violation(s)" % (n, bad))
    return 1 if bad or not n else 0


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    unknown_flags = [f for f in flags if f not in ("--allow-unknown", "--self-test", "--responses")]
    if "--self-test" in flags and len(args) == 1 and not unknown_flags:
        return self_test(load_operations(args[0]))
    if len(args) != 2 or unknown_flags:
        sys.stderr.write("usage: validate_paypal.py [--allow-unknown] [--responses] SPEC_DIR RECORDS|-\n"
                         "       validate_paypal.py --self-test SPEC_DIR\n")
        return 2
    try:
        ops = load_operations(args[0])
        if args[1] == "-":
            records = json.load(sys.stdin)
        else:
            with open(args[1], encoding="utf-8") as f:
                records = json.load(f)
    except (OSError, ValueError, jsonschema.exceptions.RefResolutionError) as e:
        sys.stderr.write("validate_paypal: %s\n" % e)
        return 2
    if isinstance(records, dict):
        records = records.get("data")
    if not isinstance(records, list):
        sys.stderr.write("validate_paypal: RECORDS is neither a list nor {\"data\": [...]}\n")
        return 2
    checked = violations = 0
    for rec in records:
        if not isinstance(rec, dict):
            sys.stderr.write("validate_paypal: a record is not an object\n")
            return 2
        errors, was_checked = check_record(ops, rec, "--allow-unknown" in flags,
                                           "--responses" in flags)
        checked += was_checked
        seq = " #%s" % rec["seq"] if "seq" in rec else ""
        for e in errors:
            print("%s %s%s: %s" % (str(rec.get("method")).upper(), rec.get("path"), seq, e))
        violations += len([e for e in errors if not e.startswith("    ")])
    print("validate_paypal: %d request(s) checked against the OpenAPI files, %d violation(s)"
          % (checked, violations))
    if checked == 0:
        print("validate_paypal: no request was checked")
        return 1
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
