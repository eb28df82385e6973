"""Least privilege in template.yaml, checked from the parsed template.

Run by `cargo xtask ci` (step `template`) with the virtualenv's Python, whose
cfn-lint parses CloudFormation's short tags (!Sub, !If, ...). Every policy
belongs to one of three principals, and each may do only its job:

- the function's role: read the source prefix (objects and named versions),
  read and write the destination prefix (and delete there), list the bucket
  only under those two prefixes, send to the template's own failure queue
  and read it back (the replay trigger), use the bucket's KMS key when the
  `KmsKeyArn` parameter names one (decrypt sources, generate data keys for
  variants);
- the role S3 Batch Operations assumes (trusted by that service alone):
  invoke this template's function, read manifests and write reports under
  the batch prefix, put the inventory configuration the manifest generator
  needs; no photo, no variant;
- the bucket policy: S3 Inventory (that service alone, from this account)
  may deliver reports under the batch prefix's `inventory/`.

Fails on any wildcard action, NotAction/NotResource/NotPrincipal, or any
resource or action outside those. `--self-test` first proves the checker
fails on broken copies of the template.
"""

import copy
import json
import sys

from cfnlint.decode import decode

SOURCE = "arn:aws:s3:::${BucketName}/${SourcePrefix}/*"
DEST = "arn:aws:s3:::${BucketName}/${DestinationPrefix}/*"
BUCKET = "arn:aws:s3:::${BucketName}"
BATCH = "arn:aws:s3:::${BucketName}/${BatchPrefix}/*"
INVENTORY = "arn:aws:s3:::${BucketName}/${BatchPrefix}/inventory/*"
BATCH_SERVICE = "batchoperations.s3.amazonaws.com"
INVENTORY_SERVICE = "s3.amazonaws.com"

# Which actions each principal may take on each resource. `function:` names
# the template's own function, `queue:NAME` its queue NAME (Fn::GetAtt).
ALLOWED = {
    "function": {
        SOURCE: {"s3:GetObject", "s3:GetObjectVersion"},
        DEST: {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
        BUCKET: {"s3:ListBucket"},
        "queue:FailedEvents": {
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        },
        # An SSE-KMS bucket's key, when the KmsKeyArn parameter names one.
        "ref:KmsKeyArn": {"kms:Decrypt", "kms:GenerateDataKey"},
    },
    "batch": {
        BATCH: {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"},
        BUCKET: {"s3:PutInventoryConfiguration"},
        "function:": {"lambda:InvokeFunction"},
    },
    "inventory": {
        INVENTORY: {"s3:PutObject"},
    },
}

# s3:ListBucket only with an s3:prefix condition naming one of these.
LIST_PREFIXES = {"${SourcePrefix}/*", "${DestinationPrefix}/*"}


def as_list(v):
    return v if isinstance(v, list) else [v]


def sub_text(v):
    """The text of a plain string or a one-argument !Sub; None otherwise."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("Fn::Sub"), str):
        return v["Fn::Sub"]
    return None


def role_kind(res):
    """`batch` for a role only S3 Batch Operations may assume, else None."""
    trust = res.get("Properties", {}).get("AssumeRolePolicyDocument", {})
    statements = as_list(trust.get("Statement", []))
    services = set()
    for st in statements:
        if "NotPrincipal" in st or st.get("Action") != "sts:AssumeRole":
            return None
        principal = st.get("Principal")
        if not isinstance(principal, dict) or set(principal) != {"Service"}:
            return None
        services.update(as_list(principal["Service"]))
    return "batch" if services == {BATCH_SERVICE} else None


def documents(template):
    """Every policy document in the template: (resource name, principal kind, document)."""
    for name, res in template.get("Resources", {}).items():
        props = res.get("Properties", {})
        kind = res.get("Type")
        if kind == "AWS::Serverless::Function":
            for p in as_list(props.get("Policies", [])):
                yield from branches(name, "function", p)
        elif kind == "AWS::IAM::Role":
            who = role_kind(res) or "untrusted"
            for p in props.get("Policies", []):
                yield from branches(name, who, p.get("PolicyDocument", {}))
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            # A policy standing alone may be attached to anything.
            yield from branches(name, "untrusted", props.get("PolicyDocument", {}))
        elif kind == "AWS::S3::BucketPolicy":
            yield from branches(name, "inventory", props.get("PolicyDocument", {}))


def branches(name, who, doc):
    """Both sides of an Fn::If; a plain document; strings are managed policy names."""
    if isinstance(doc, dict) and "Fn::If" in doc:
        for side in doc["Fn::If"][1:]:
            yield from branches(name, who, side)
    elif isinstance(doc, dict) and "Statement" in doc:
        yield name, who, doc
    elif isinstance(doc, dict) and doc.get("Ref") == "AWS::NoValue":
        return
    else:
        yield name, who, {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": json.dumps(doc)}]}


def resource_text(r, resources):
    text = sub_text(r)
    if text is not None:
        return text
    if isinstance(r, dict) and isinstance(r.get("Ref"), str):
        return f"ref:{r['Ref']}"
    if isinstance(r, dict) and "Fn::GetAtt" in r:
        target = as_list(r["Fn::GetAtt"])[0]
        if isinstance(target, str) and "." in target:
            target = target.split(".")[0]
        kind = resources.get(target, {}).get("Type")
        if kind == "AWS::SQS::Queue":
            return f"queue:{target}"
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return "function:"
    return json.dumps(r)


def listing_problem(st):
    """Why a ListBucket statement lists too much, or None."""
    prefixes = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
    texts = [sub_text(p) for p in as_list(prefixes)] if prefixes is not None else []
    if not texts or any(t not in LIST_PREFIXES for t in texts):
        return f"listing the bucket beyond the source and destination prefixes ({json.dumps(prefixes)})"
    return None


def principal_problem(st):
    """A bucket policy statement must name S3 Inventory alone, from this account and bucket."""
    principal = st.get("Principal")
    if principal != {"Service": INVENTORY_SERVICE}:
        return f"bucket policy for {json.dumps(principal)}, not S3 Inventory alone"
    cond = st.get("Condition", {})
    if "aws:SourceAccount" not in cond.get("StringEquals", {}) or "aws:SourceArn" not in cond.get("ArnLike", {}):
        return "bucket policy without aws:SourceAccount and aws:SourceArn conditions"
    return None


def problems(template):
    out = []
    resources = template.get("Resources", {})
    for name, who, doc in documents(template):
        allowed_here = ALLOWED.get(who)
        for st in as_list(doc.get("Statement", [])):
            where = f"{name}/{st.get('Sid', '?')}"
            if st.get("Effect") != "Allow":
                continue
            if allowed_here is None:
                out.append(f"{where}: a role neither the function's nor trusted by S3 Batch Operations alone")
                continue
            for key in ("NotAction", "NotResource", "NotPrincipal"):
                if key in st:
                    out.append(f"{where}: {key} grants everything else")
            if who == "inventory":
                p = principal_problem(st)
                if p:
                    out.append(f"{where}: {p}")
            actions = [a for a in as_list(st.get("Action", [])) if isinstance(a, str)]
            for a in actions:
                if "*" in a:
                    out.append(f"{where}: wildcard action {a}")
            for r in as_list(st.get("Resource", [])):
                text = resource_text(r, resources)
                allowed = allowed_here.get(text)
                if allowed is None:
                    out.append(f"{where}: resource {text} is outside what the {who} principal may touch")
                    continue
                bad = [a for a in actions if a not in allowed]
                if bad:
                    out.append(f"{where}: {bad} not allowed on {text}")
                if text == BUCKET and "s3:ListBucket" in actions:
                    p = listing_problem(st)
                    if p:
                        out.append(f"{where}: {p}")
    return out


def statements_of(template, resource):
    """The statements of `resource`'s first policy document, for editing."""
    for name, _, doc in documents(template):
        if name == resource:
            return doc["Statement"]
    raise KeyError(resource)


def self_test(template):
    """Each broken copy must be caught, or the checker proves nothing."""
    def broken(edit):
        t = copy.deepcopy(template)
        edit(t)
        return t

    def add(resource, statement):
        return lambda t: statements_of(t, resource).append(statement)

    def allow(action, resource):
        return {"Effect": "Allow", "Action": action, "Resource": resource}

    def trust(t, principal):
        t["Resources"]["BatchOperationsRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0][
            "Principal"
        ] = principal

    def unconditioned(t):
        st = statements_of(t, "InventoryDelivery")[0]
        st["Condition"]["StringEquals"].pop("aws:SourceAccount")

    cases = {
        "wildcard action": add("ResizeFunction", allow("s3:*", {"Fn::Sub": DEST})),
        "whole bucket": add("ResizeFunction", allow("s3:GetObject", {"Fn::Sub": "arn:aws:s3:::${BucketName}/*"})),
        "write to sources": add("ResizeFunction", allow("s3:PutObject", {"Fn::Sub": SOURCE})),
        "any resource": add("ResizeFunction", allow("logs:PutLogEvents", "*")),
        "NotAction": add("ResizeFunction", {"Effect": "Allow", "NotAction": "iam:*", "Resource": {"Fn::Sub": DEST}}),
        "a listing of the whole bucket": add("ResizeFunction", allow("s3:ListBucket", {"Fn::Sub": BUCKET})),
        "the function writing reports": add("ResizeFunction", allow("s3:PutObject", {"Fn::Sub": BATCH})),
        "Batch Operations reading photos": add("BatchOperationsRole", allow("s3:GetObject", {"Fn::Sub": SOURCE})),
        "Batch Operations writing variants": add("BatchOperationsRole", allow("s3:PutObject", {"Fn::Sub": DEST})),
        "Batch Operations invoking any function": add("BatchOperationsRole", allow("lambda:InvokeFunction", "*")),
        "a role anyone may assume": lambda t: trust(t, "*"),
        "a role Lambda may assume": lambda t: trust(t, {"Service": ["lambda.amazonaws.com", BATCH_SERVICE]}),
        "inventory delivery from any account": unconditioned,
        "the function reading another queue": add(
            "ResizeFunction", allow("sqs:ReceiveMessage", {"Fn::GetAtt": ["FailedReplays", "Arn"]})
        ),
        "the function encrypting with the bucket's key": add(
            "ResizeFunction", allow("kms:Encrypt", {"Ref": "KmsKeyArn"})
        ),
        "the function using a key named by another parameter": add(
            "ResizeFunction", allow("kms:Decrypt", {"Ref": "AlarmTopicArn"})
        ),
        "the function purging its failure queue": add(
            "ResizeFunction", allow("sqs:PurgeQueue", {"Fn::GetAtt": ["FailedEvents", "Arn"]})
        ),
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
    kinds = {who for _, who, _ in documents(template)}
    for needed in ("function", "batch"):
        if needed not in kinds:
            found.append(f"no policy for the {needed} principal")
    for p in found:
        print(f"{path}: {p}", file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"{path}: least privilege holds")


if __name__ == "__main__":
    main()
