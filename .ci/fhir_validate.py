"""Validates the service's FHIR R4 NDJSON exports with outside validators.

Usage: <venv python> .ci/fhir_validate.py SCHEMA_JSON DIR [DIR...]
(the venv and HL7's schema come from .ci/fhir-validators.sh).

Every non-empty line of every DIR/<Type>.ndjson must be a JSON resource whose resourceType is
<Type>, valid against HL7's FHIR R4 JSON schema (SCHEMA_JSON, draft-06) for that type, parse
with fhir.resources' R4B model, and, for a Patient, carry the Belgian be-patient profile and
only SSINs (national numbers) with valid check digits. Failures print as
file:line [validator] id=<resource id> <JSON path>: <message>, never a resource's content (it
holds personal data), and exit 1. Success prints fhir_validate.<Type>=<count> per type and
fhir_validate.resources=<total>; no resource at all is a failure too.
"""

import json
import sys
from collections import Counter
from pathlib import Path

import pydantic
from fhir.resources.R4B import get_fhir_model_class
from jsonschema import Draft6Validator
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT6

BE_PATIENT = "https://www.ehealth.fgov.be/standards/fhir/core/StructureDefinition/be-patient"
SSIN_SYSTEM = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin"


def ssin_valid(value):
    """Belgian national number: 11 digits, the last two 97 - (first nine mod 97), with a
    "2" before the first nine for people born in 2000 or later."""
    if not (isinstance(value, str) and len(value) == 11 and value.isascii() and value.isdigit()):
        return False
    check = int(value[9:])
    return check in (97 - int(value[:9]) % 97, 97 - int("2" + value[:9]) % 97)


def path_of(parts):
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def schema_message(error):
    """The error without the instance's value (which may be personal data)."""
    if error.validator in ("required", "additionalProperties"):
        return error.message  # names properties only
    wanted = error.validator_value
    if error.validator == "enum":
        wanted = ", ".join(map(str, wanted))
    elif error.validator in ("oneOf", "anyOf", "allOf", "$ref"):
        wanted = "..."
    return f"fails {error.validator} {str(wanted)[:160]}"


def leaves(error):
    """(path, message) of an error; a oneOf's (a contained resource) as the errors of the
    branch of the resource's own type, whose resourceType const holds."""
    if not error.context:
        yield path_of(error.absolute_path), schema_message(error)
        return
    branches = {}
    for e in error.context:
        branches.setdefault(e.relative_schema_path[0], []).append(e)
    own = [
        errs
        for errs in branches.values()
        if not any(e.validator == "const" and list(e.relative_path) == ["resourceType"] for e in errs)
    ]
    if not own:
        yield path_of(error.absolute_path) + ".resourceType", "is not a FHIR R4 resource type"
    elif len(own) == 1:
        for e in own[0]:
            yield from leaves(e)
    else:
        yield from leaves(best_match(error.context))


class Checker:
    def __init__(self, schema_path):
        hl7 = json.loads(Path(schema_path).read_text())
        self.base = hl7.get("id") or "http://hl7.org/fhir/json-schema/4.0"
        self.registry = Registry().with_resource(self.base, DRAFT6.create_resource(hl7))
        self.types = {r["$ref"].rsplit("/", 1)[1] for r in hl7["oneOf"]}  # resource types only
        self.validators = {}  # one per type, built once

    def schema_errors(self, rtype, obj):
        if rtype not in self.validators:
            ref = {"$ref": f"{self.base}#/definitions/{rtype}"}
            self.validators[rtype] = Draft6Validator(ref, registry=self.registry)
        for error in self.validators[rtype].iter_errors(obj):
            yield from leaves(error)

    @staticmethod
    def model_errors(rtype, obj):
        try:
            get_fhir_model_class(rtype).model_validate(obj)
        except pydantic.ValidationError as e:
            for err in e.errors(include_url=False, include_input=False, include_context=False):
                yield path_of(err["loc"]), err["msg"][:150]
        except Exception as e:  # fhir.resources itself breaks on some input (KeyError, ...)
            yield "$", f"{type(e).__name__}: {str(e)[:150]}"

    @staticmethod
    def belgian_errors(rtype, obj):
        if rtype != "Patient":
            return
        meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
        if BE_PATIENT not in (meta.get("profile") or []):
            yield "$.meta.profile", "does not contain the be-patient profile"
        for i, ident in enumerate(obj.get("identifier") or []):
            if isinstance(ident, dict) and ident.get("system") == SSIN_SYSTEM:
                if not ssin_valid(ident.get("value")):
                    yield f"$.identifier[{i}].value", "SSIN is not 11 digits with valid check digits"

    def check_file(self, path, fail, counts):
        rtype = path.stem
        if rtype not in self.types:
            fail(path, 0, "file", None, "$", f"{rtype} is not a FHIR R4 resource type")
            return
        with path.open(encoding="utf-8") as lines:
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    fail(path, n, "json", None, "$", f"not JSON: {e.msg} at column {e.colno}")
                    continue
                if not isinstance(obj, dict):
                    fail(path, n, "json", None, "$", "not a JSON object")
                    continue
                rid = obj.get("id")
                counts[rtype] += 1
                if obj.get("resourceType") != rtype:
                    fail(path, n, "resourceType", rid, "$.resourceType", f"is not {rtype}")
                    continue
                for name, errors in (
                    ("hl7-schema", self.schema_errors(rtype, obj)),
                    ("fhir.resources", self.model_errors(rtype, obj)),
                    ("be", self.belgian_errors(rtype, obj)),
                ):
                    for where, message in errors:
                        fail(path, n, name, rid, where, message)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    checker = Checker(argv[1])
    failures, counts = [], Counter()

    def fail(path, line, validator, rid, where, message):
        failures.append(f"{path}:{line} [{validator}] id={rid} {where}: {message}")

    for d in map(Path, argv[2:]):
        if not d.is_dir():
            failures.append(f"{d}: not a directory")
        for path in sorted(d.glob("*.ndjson")):
            checker.check_file(path, fail, counts)
    if not failures and not counts:
        failures.append(f"no resource found in {' '.join(argv[2:])}")
    if failures:
        print(f"fhir_validate: {len(failures)} failure(s)")
        print("\n".join(failures))
        return 1
    for rtype in sorted(counts):
        print(f"fhir_validate.{rtype}={counts[rtype]}")
    print(f"fhir_validate.resources={sum(counts.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
