"""Least privilege in template.yaml, checked from the parsed template.

Run by `cargo xtask ci` (step `template`) with the virtualenv's Python, whose
cfn-lint parses CloudFormation's short tags (!Sub, !If, ...). Fails on any
wildcard action, NotAction/NotResource, or a resource outside the bucket's
source and destination prefixes (plus the template's own failure queue).

`--self-test` first proves the checker fails on broken copies of the template.
"""

import copy
import json
import sys

from cfnlint.decode import decode

SOURCE = "arn:aws:s3:::${BucketName}/${SourcePrefix}/*"
DEST = "arn:aws:s3:::${BucketName}/${DestinationPrefix}/*"
BUCKET = "arn:aws:s3:::${BucketName}"

# Which actions each resource may carry.
ALLOWED = {
    SOURCE: {"s3:GetObject"},
    DEST: {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
    BUCKET: {"s3:ListBucket"},
}


def as_list(v):
    return v if isinstance(v, list) else [v]


def documents(template):
    """Every policy document in the template, with where it came from."""
    for name, res in template.get("Resources", {}).items():
        props = res.get("Properties", {})
        kind = res.get("Type")
        if kind == "AWS::Serverless::Function":
            for p in as_list(props.get("Policies", [])):
                yield from branches(name, p)
        elif kind == "AWS::IAM::Role":
            for p in props.get("Policies", []):
                yield from branches(name, p.get("PolicyDocument", {}))
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield from branches(name, props.get("PolicyDocument", {}))


def branches(name, doc):
    """Both sides of an Fn::If; a plain document; strings are managed policy names."""
    if isinstance(doc, dict) and "Fn::If" in doc:
        for side in doc["Fn::If"][1:]:
            yield from branches(name, side)
    elif isinstance(doc, dict) and "Statement" in doc:
        yield name, doc
    elif isinstance(doc, dict) and "Ref" in doc and doc["Ref"] == "AWS::NoValue":
        return
    else:
        yield name, {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": json.dumps(doc)}]}


def resource_text(r, resources):
    if isinstance(r, str):
        return r
    if isinstance(r, dict) and "Fn::Sub" in r and isinstance(r["Fn::Sub"], str):
        return r["Fn::Sub"]
    if isinstance(r, dict) and "Fn::GetAtt" in r:
        target = r["Fn::GetAtt"][0]
        if resources.get(target, {}).get("Type") == "AWS::SQS::Queue":
            return "queue:" + target
    return json.dumps(r)


def problems(template):
    out = []
    resources = template.get("Resources", {})
    for name, doc in documents(template):
        for st in as_list(doc.get("Statement", [])):
            where = f"{name}/{st.get('Sid', '?')}"
            if st.get("Effect") != "Allow":
                continue
            for key in ("NotAction", "NotResource"):
                if key in st:
                    out.append(f"{where}: {key} grants everything else")
            actions = [a for a in as_list(st.get("Action", [])) if isinstance(a, str)]
            for a in actions:
                if "*" in a:
                    out.append(f"{where}: wildcard action {a}")
            for r in as_list(st.get("Resource", [])):
                text = resource_text(r, resources)
                if text.startswith("queue:"):
                    bad = [a for a in actions if a != "sqs:SendMessage"]
                    if bad:
                        out.append(f"{where}: {bad} on the failure queue")
                    continue
                allowed = ALLOWED.get(text)
                if allowed is None:
                    out.append(f"{where}: resource {text} is outside the source and destination prefixes")
                    continue
                bad = [a for a in actions if a not in allowed]
                if bad:
                    out.append(f"{where}: {bad} not allowed on {text}")
                if text == BUCKET:
                    prefix = json.dumps(st.get("Condition", {}))
                    if "${DestinationPrefix}/" not in prefix:
                        out.append(f"{where}: listing the bucket without a destination prefix condition")
    return out


def self_test(template):
    """Each broken copy must be caught, or the checker proves nothing."""
    def broken(edit):
        t = copy.deepcopy(template)
        statements = next(doc for _, doc in documents(t))["Statement"]
        edit(statements)
        return t

    cases = {
        "wildcard action": lambda s: s.append({"Effect": "Allow", "Action": "s3:*", "Resource": {"Fn::Sub": DEST}}),
        "whole bucket": lambda s: s.append(
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "arn:aws:s3:::${BucketName}/*"}}
        ),
        "write to sources": lambda s: s.append(
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Sub": SOURCE}}
        ),
        "any resource": lambda s: s.append({"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}),
        "NotAction": lambda s: s.append({"Effect": "Allow", "NotAction": "iam:*", "Resource": {"Fn::Sub": DEST}}),
    }
    for what, edit in cases.items():
        if not problems(broken(edit)):
            sys.exit(f"self-test: a template with {what} passed the check")
    print(f"template policy self-test: {len(cases)} broken templates caught")


def main():
    path = sys.argv[-1]
    template, matches = decode(path)
    if template is None:
        sys.exit(f"{path}: cannot parse: {matches}")
    if "--self-test" in sys.argv:
        self_test(template)
    found = problems(template)
    if not any(True for _ in documents(template)):
        found.append("no IAM policy found")
    for p in found:
        print(f"{path}: {p}", file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"{path}: least privilege holds")


if __name__ == "__main__":
    main()
