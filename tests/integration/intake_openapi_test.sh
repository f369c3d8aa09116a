#!/usr/bin/env bash
# services/intake/openapi.yaml against the real shouwen-intake: a private
# PostgreSQL cluster, the demo site, the real binary over HTTP.
#
#   the document: parses, is OpenAPI 3.0.x, every $ref resolves, every
#     operation has responses and a unique operationId, path parameters are
#     declared, every response has a JSON schema;
#   the document -> the service: every path and method it names is served
#     (not 404 "no such resource", not 405), every command of the enum is one
#     the service knows;
#   the service -> the document: every route of http.c's dispatch (and of
#     handle_admin.c's admin_run) is in it, every command the service knows is
#     in the enum;
#   real answers validated against the document's schema for their
#     operation and status (and the ETag header where it declares one).
#
# SHOUWEN_OPENAPI=<file> checks another copy of the document (to see a
# broken one fail).
set -uo pipefail

name=intake-openapi
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
doc=${SHOUWEN_OPENAPI:-$top/services/intake/openapi.yaml}
trap intake_cleanup EXIT
# ready, and it is ours answering (not another test's service on the same port)
intake_ready() { wait_for 10 curl -fs "http://$admin/readyz" && sleep 0.2 && kill -0 "$intake_pid"; }

# The checker: `oa.py COMMAND DOC ARGS...` exits 0 when the check holds,
# else prints why and exits 1.
cat >"$tmp/oa.py" <<'EOF'
import json, re, sys, urllib.error, urllib.request

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def fail(msg):
    print(msg)
    sys.exit(1)


def load(path):
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            d = yaml.safe_load(f)
    except Exception as e:  # any parse error
        fail("does not parse: %s" % e)
    if not isinstance(d, dict):
        fail("not a mapping at the top")
    return d


def resolve(doc, node, seen=()):
    """Follow $ref (local only) until a node without one."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise KeyError("not a local reference: %r" % (ref,))
        if ref in seen:
            raise KeyError("a cycle of references through %s" % ref)
        seen = seen + (ref,)
        cur = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(cur, dict) or part not in cur:
                raise KeyError("unresolved: %s" % ref)
            cur = cur[part]
        node = cur
    return node


def operations(doc):
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method, op in item.items():
            if method in METHODS:
                yield path, method, item, op


def params_of(doc, item, op):
    out = []
    for p in (item.get("parameters") or []) + (op.get("parameters") or []):
        out.append(resolve(doc, p))
    return out


# ---------------------------------------------------------------- the tiny validator

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def validate(doc, schema, v, where, errs):
    """OpenAPI 3.0 schema subset: $ref, type, nullable, enum, required,
    properties, additionalProperties, items, oneOf, anyOf, allOf, pattern,
    min/maxLength, minimum/maximum, min/maxItems, uniqueItems."""
    schema = resolve(doc, schema)
    if not isinstance(schema, dict):
        errs.append("%s: the schema is not an object" % where)
        return
    # 3.0.3: nullable adds null only to a `type` given in the same schema
    if v is None and schema.get("nullable") is True and "type" in schema:
        if "enum" in schema and None not in schema["enum"]:
            errs.append("%s: null is not in the enum %s" % (where, schema["enum"]))
        return
    t = schema.get("type")
    if t is not None:
        if t not in TYPES:
            errs.append("%s: unknown type %r in the document" % (where, t))
            return
        if not TYPES[t](v):
            errs.append("%s: %s is not of type %s" % (where, json.dumps(v, ensure_ascii=False)[:80], t))
            return
    if "enum" in schema and v not in schema["enum"]:
        errs.append("%s: %r is not one of %s" % (where, v, schema["enum"]))
    for sub in schema.get("allOf") or []:
        validate(doc, sub, v, where, errs)
    for kw in ("oneOf", "anyOf"):
        if kw in schema:
            results = []
            for i, sub in enumerate(schema[kw]):
                e = []
                validate(doc, sub, v, "%s<%s %d>" % (where, kw, i), e)
                results.append(e)
            good = sum(1 for e in results if not e)
            if kw == "oneOf" and good != 1:
                errs.append("%s: matches %d of the oneOf's %d schemas, not exactly one%s" % (
                    where, good, len(results),
                    "".join("\n   " + x for e in results for x in e[:3]) if good == 0 else ""))
            if kw == "anyOf" and good == 0:
                errs.append("%s: matches none of the anyOf's schemas" % where)
    if isinstance(v, str):
        if "pattern" in schema and not re.search(schema["pattern"], v):
            errs.append("%s: %r does not match %s" % (where, v[:80], schema["pattern"]))
        if "maxLength" in schema and len(v) > schema["maxLength"]:
            errs.append("%s: longer than %d" % (where, schema["maxLength"]))
        if "minLength" in schema and len(v) < schema["minLength"]:
            errs.append("%s: shorter than %d" % (where, schema["minLength"]))
    if TYPES["number"](v):
        if "minimum" in schema and v < schema["minimum"]:
            errs.append("%s: %s is below %s" % (where, v, schema["minimum"]))
        if "maximum" in schema and v > schema["maximum"]:
            errs.append("%s: %s is above %s" % (where, v, schema["maximum"]))
    if isinstance(v, dict):
        props = schema.get("properties") or {}
        for k in schema.get("required") or []:
            if k not in v:
                errs.append("%s: required member %r is missing" % (where, k))
        extra = schema.get("additionalProperties", True)
        for k, x in v.items():
            if k in props:
                validate(doc, props[k], x, "%s.%s" % (where, k), errs)
            elif extra is False:
                errs.append("%s: member %r is not in the schema" % (where, k))
            elif isinstance(extra, dict):
                validate(doc, extra, x, "%s.%s" % (where, k), errs)
    if isinstance(v, list):
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            errs.append("%s: more than %d items" % (where, schema["maxItems"]))
        if "minItems" in schema and len(v) < schema["minItems"]:
            errs.append("%s: fewer than %d items" % (where, schema["minItems"]))
        if schema.get("uniqueItems") and len(set(json.dumps(x, sort_keys=True) for x in v)) != len(v):
            errs.append("%s: items repeat" % where)
        if "items" in schema:
            for i, x in enumerate(v):
                validate(doc, schema["items"], x, "%s[%d]" % (where, i), errs)


# ---------------------------------------------------------------- the checks

def c_parse(doc, args):
    pass  # load() did it


def c_version(doc, args):
    v = doc.get("openapi")
    if not isinstance(v, str) or not re.fullmatch(r"3\.0\.\d+", v):
        fail("openapi is %r, not 3.0.x" % (v,))
    for k in ("info", "paths"):
        if not isinstance(doc.get(k), dict):
            fail("no %s object" % k)
    if not doc["info"].get("title") or not doc["info"].get("version"):
        fail("info needs a title and a version")


def c_refs(doc, args):
    bad, n = [], 0

    def walk(node, where):
        nonlocal n
        if isinstance(node, dict):
            if "$ref" in node:
                n += 1
                try:
                    resolve(doc, node)
                except KeyError as e:
                    bad.append("%s: %s" % (where, e))
            for k, x in node.items():
                walk(x, where + "/" + str(k))
        elif isinstance(node, list):
            for i, x in enumerate(node):
                walk(x, "%s/%d" % (where, i))

    walk(doc, "#")
    if bad:
        fail("\n".join(bad[:10]))
    if n == 0:
        fail("no $ref at all: nothing was checked")


def c_operations(doc, args):
    bad, n = [], 0
    for path, method, item, op in operations(doc):
        n += 1
        if not isinstance(op, dict):
            bad.append("%s %s: not an object" % (method.upper(), path))
            continue
        if not isinstance(op.get("operationId"), str) or not op["operationId"]:
            bad.append("%s %s: no operationId" % (method.upper(), path))
        if not isinstance(op.get("responses"), dict) or not op["responses"]:
            bad.append("%s %s: no responses" % (method.upper(), path))
    if bad:
        fail("\n".join(bad))
    if n == 0:
        fail("no operations")


def c_unique_ids(doc, args):
    seen = {}
    for path, method, item, op in operations(doc):
        i = isinstance(op, dict) and op.get("operationId")
        if i in seen:
            fail("operationId %r twice: %s and %s %s" % (i, seen[i], method.upper(), path))
        seen[i] = "%s %s" % (method.upper(), path)


def c_path_params(doc, args):
    bad = []
    for path, method, item, op in operations(doc):
        names = set(re.findall(r"\{([^}]+)\}", path))
        declared = {p.get("name") for p in params_of(doc, item, op) if p.get("in") == "path"}
        for p in params_of(doc, item, op):
            if p.get("in") == "path" and p.get("required") is not True:
                bad.append("%s %s: path parameter %s is not required: true" % (method.upper(), path, p.get("name")))
        if names != declared:
            bad.append("%s %s: template names %s, parameters declare %s" % (method.upper(), path, sorted(names), sorted(declared)))
    if bad:
        fail("\n".join(bad))


def c_response_schemas(doc, args):
    bad = []
    for path, method, item, op in operations(doc):
        for status, r in (op.get("responses") or {}).items():
            r = resolve(doc, r)
            if not re.fullmatch(r"[1-5][0-9][0-9]", str(status)):
                bad.append("%s %s: response %r is not a status code" % (method.upper(), path, status))
            content = r.get("content") or {}
            # a stream of server-sent events is described as text; everything else is JSON
            schema = (content.get("application/json") or content.get("text/event-stream") or
                      {}).get("schema")
            if not isinstance(schema, dict):
                bad.append("%s %s %s: no application/json schema" % (method.upper(), path, status))
    if bad:
        fail("\n".join(bad))


def c_list_ops(doc, args):
    """Print METHOD PATH per operation; a {command} path once per enum value."""
    for path, method, item, op in operations(doc):
        if "{command}" in path:
            p = [x for x in params_of(doc, item, op) if x.get("name") == "command"]
            values = resolve(doc, p[0].get("schema", {})).get("enum") if p else None
            if not values:
                print("%s %s" % (method.upper(), path))  # the check will fail: no enum
            for v in values or []:
                print("%s %s" % (method.upper(), path.replace("{command}", v)))
        else:
            print("%s %s" % (method.upper(), path))


def c_served(doc, args):
    """served DOC API TOKEN METHOD PATH name=value...: the service routes it."""
    api, token, method, path = args[:4]
    values = dict(a.split("=", 1) for a in args[4:])
    missing = [n for n in re.findall(r"\{([^}]+)\}", path) if n not in values]
    if missing:
        fail("no test value for path parameter(s) %s" % ", ".join(missing))
    url = api + re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)
    data = b"{}" if method in ("POST", "PATCH", "PUT") else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": "Bearer " + token})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            # a live stream never ends: what has arrived is enough
            stream = (r.headers.get("Content-Type") or "").startswith("text/event-stream")
            status, body = r.status, (r.read1(200) if stream else r.read())
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    try:
        err = json.loads(body).get("error", "")
    except Exception:
        err = ""
    text = "%d %s" % (status, body[:200].decode("utf-8", "replace").strip())
    if status == 405:
        fail("not served: " + text)
    if status == 404 and (err == "no such resource" or err.startswith("no such command")):
        fail("not served: " + text)
    print(text)


def route_key(method, path):
    return method.upper() + " " + re.sub(r"\{[^}]*\}", "{}", path.rstrip("/"))


def c_documented(doc, args):
    """documented DOC "METHOD PATH": the route is an operation of the document."""
    method, path = args[0].split(" ", 1)
    have = {route_key(m, p) for p, m, i, o in operations(doc)}
    if route_key(method, path) not in have:
        fail("%s is not in the document" % args[0])


def c_commands(doc, args):
    """commands DOC "NAME,NAME,...": the enum of {command} is exactly these."""
    server = set(x.strip() for x in args[0].split(",") if x.strip())
    if not server:
        fail("no commands from the server")
    for path, method, item, op in operations(doc):
        for p in params_of(doc, item, op):
            if p.get("in") == "path" and p.get("name") == "command":
                enum = set(resolve(doc, p.get("schema", {})).get("enum") or [])
                if enum != server:
                    fail("server only: %s; document only: %s" % (sorted(server - enum), sorted(enum - server)))
                return
    fail("no {command} path parameter")


def c_validate(doc, args):
    """validate DOC "METHOD PATH" STATUS BODY_FILE [HEADERS_FILE]"""
    method, path = args[0].split(" ", 1)
    status, body_file = args[1], args[2]
    try:
        op = doc["paths"][path][method.lower()]
    except (KeyError, TypeError):
        fail("no operation %s in the document" % args[0])
    responses = op.get("responses") or {}
    if status not in responses and int(status) not in responses:
        fail("%s answered %s, which the document does not list (it lists %s)" % (
            args[0], status, ", ".join(str(s) for s in responses)))
    r = resolve(doc, responses.get(status, responses.get(int(status))))
    schema = ((r.get("content") or {}).get("application/json") or {}).get("schema")
    if schema is None:
        fail("%s %s: no application/json schema" % (args[0], status))
    with open(body_file, encoding="utf-8") as f:
        body = json.load(f)
    errs = []
    validate(doc, schema, body, "body", errs)
    if len(args) > 3:
        headers = {}
        with open(args[3], encoding="latin-1") as f:
            for line in f:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
        declared = {k.lower(): resolve(doc, h) for k, h in (r.get("headers") or {}).items()}
        if "etag" in headers and "etag" not in declared:
            errs.append("the answer has an ETag the document does not declare")
        if "etag" in declared:
            if "etag" not in headers:
                errs.append("the document declares an ETag, the answer has none")
            else:
                validate(doc, declared["etag"].get("schema", {}), headers["etag"], "ETag", errs)
    if errs:
        fail("\n".join(errs[:12]))


def command_param(doc):
    for path, method, item, op in operations(doc):
        for p in params_of(doc, item, op):
            if p.get("in") == "path" and p.get("name") == "command":
                return path, method, op, resolve(doc, p.get("schema", {})).get("enum") or []
    fail("no {command} path parameter")


def schema_name(command):
    return "".join(w.capitalize() for w in command.split("_")) + "Command"


def c_command_fields(doc, args):
    """command-fields DOC COMMANDS.PROTO: each command of the enum has its body
    schema (<Name>Command, in the action's request body), whose members are
    the fields of its message in commands.proto plus on_behalf_of and
    command_id."""
    text = open(args[0], encoding="utf-8").read()
    messages = {}
    for m in re.finditer(r"^message (\w+) \{(.*?)^\}", text, re.M | re.S):
        messages[m.group(1)] = m.group(2)
    oneof = re.search(r"oneof command \{(.*?)\}", messages.get("Command", ""), re.S)
    if not oneof:
        fail("no oneof command in Command of %s" % args[0])
    cases = dict((f, t) for t, f in re.findall(r"^\s*(\w+) (\w+) = \d+;", oneof.group(1), re.M))
    path, method, op, enum = command_param(doc)
    body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json", {}).get("schema", {})
    listed = [x.get("$ref", "").rsplit("/", 1)[-1] for x in (body.get("oneOf") or body.get("anyOf") or [])]
    bad = []
    for c in enum:
        msg = cases.get(c) or cases.get(c + "_case")
        if msg is None or msg not in messages:
            bad.append("%s: no such member of Command's oneof in the proto" % c)
            continue
        proto = set(re.findall(r"^\s*(?:repeated\s+)?\w+ (\w+) = \d+;", messages[msg], re.M))
        name = schema_name(c)
        schema = ((doc.get("components") or {}).get("schemas") or {}).get(name)
        if not isinstance(schema, dict):
            bad.append("%s: no schema %s" % (c, name))
            continue
        if name not in listed:
            bad.append("%s: %s is not in the action's request body" % (c, name))
        have = set((schema.get("properties") or {}).keys())
        want = proto | {"on_behalf_of", "command_id"}
        if have != want:
            bad.append("%s (%s): schema only %s, proto only %s" % (c, msg, sorted(have - want), sorted(want - have)))
        if schema.get("additionalProperties") is not False:
            bad.append("%s: an unknown member is refused, but the schema allows more" % c)
    if bad:
        fail("\n".join(bad))


def c_request(doc, args):
    """request DOC "METHOD PATH"|SchemaName JSON [invalid]: a request body
    conforms to the operation's (or the named) schema, or with `invalid`
    does not."""
    if " " in args[0]:
        method, path = args[0].split(" ", 1)
        op = doc["paths"][path][method.lower()]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
    else:
        schema = doc["components"]["schemas"][args[0]]
    errs = []
    validate(doc, schema, json.loads(args[1]), "request", errs)
    if len(args) > 2 and args[2] == "invalid":
        if not errs:
            fail("the schema takes a body the service refuses")
        print("\n".join(errs))
    elif errs:
        fail("\n".join(errs[:12]))


def c_examples(doc, args):
    """every example of a request body or schema conforms to its schema"""
    bad, n = [], 0
    for path, method, item, op in operations(doc):
        for media in ((op.get("requestBody") or {}).get("content") or {}).values():
            if "example" in media:
                n += 1
                errs = []
                validate(doc, media.get("schema", {}), media["example"], "%s %s example" % (method.upper(), path), errs)
                bad += errs
    for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
        if isinstance(schema, dict) and "example" in schema:
            n += 1
            errs = []
            validate(doc, schema, schema["example"], name + " example", errs)
            bad += errs
    if bad:
        fail("\n".join(bad[:12]))
    if n == 0:
        fail("no examples")


CHECKS = {
    "command-fields": c_command_fields, "request": c_request, "examples": c_examples,
    "parse": c_parse, "version": c_version, "refs": c_refs, "operations": c_operations,
    "unique-ids": c_unique_ids, "path-params": c_path_params,
    "response-schemas": c_response_schemas, "list-ops": c_list_ops, "served": c_served,
    "documented": c_documented, "commands": c_commands, "validate": c_validate,
}

if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    d = load(path)
    try:
        CHECKS[cmd](d, sys.argv[3:])
    except KeyError as e:
        fail("the document is incomplete: %s" % e)
EOF
oa() { python3 "$tmp/oa.py" "$@"; }

# call METHOD AUTH PATH [BODY [curl args...]]: the answer's body in $tmp/body,
# its headers in $tmp/headers; prints the status
call() {
    local method=$1 auth=$2 path=$3
    shift 3
    local args=(-s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$method"
        -H "Authorization: Bearer $auth")
    if [ $# -ge 1 ]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$1")
        shift
    fi
    curl "${args[@]}" "$@" "$api$path"
}
# answer NAME STATUS METHOD AUTH PATH [BODY [curl args...]]: makes the
# request, keeps the answer as $tmp/NAME.body and $tmp/NAME.headers, and
# fails unless its status is STATUS
answer() {
    local nm=$1 want=$2 got
    shift 2
    got=$(call "$@")
    cp "$tmp/body" "$tmp/$nm.body"
    cp "$tmp/headers" "$tmp/$nm.headers"
    [ "$got" = "$want" ] || { echo "expected $want, got $got: $(head -c 300 "$tmp/body")"; return 1; }
}
# conforms "METHOD PATH" STATUS NAME: the kept answer NAME against the document
conforms() { oa validate "$doc" "$1" "$2" "$tmp/$3.body" "$tmp/$3.headers"; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d" + sys.argv[2]))' "$tmp/$1.body" "$2"; }

echo "== the document ($doc)"
check "it parses (YAML)" oa parse "$doc"
check "it is OpenAPI 3.0.x with info and paths" oa version "$doc"
check "every \$ref resolves" oa refs "$doc"
check "every operation has responses and an operationId" oa operations "$doc"
check "operationIds are unique" oa unique-ids "$doc"
check "every path parameter is declared, required, and in the template" oa path-params "$doc"
check "every response has an application/json schema" oa response-schemas "$doc"
check "every command has its body schema, with the fields of its message in commands.proto" oa command-fields "$doc" "$top/proto/shouwen/v1/commands.proto"
check "every example conforms to its schema" oa examples "$doc"

echo "== setup"
intake_setup                       # KEY: demo-hotline, role system; TOKEN: li.desk, a receptionist
MGR=$SHOUWEN_DEMO_MANAGER_TOKEN    # qian.mgr, the manager
intake_start
if [ "$fail" -gt 0 ] && ! kill -0 "$intake_pid" 2>/dev/null; then
    tail -n 5 "$tmp/intake.log"
    finish
    exit 1
fi

BODY='{"site":"SH01","channel":"phone","type":"complaint","urgency":"normal","subject":"楼上漏水 water from upstairs","description":"ceiling wet since morning","category":"plumbing","customer":{"name":"张先生","phone":"13800001234","unit":"3栋","address":"3-2-501"},"required_documents":["身份证 ID card"],"first_responder":"li.desk","external_ref":"openapi-0001"}'
check "a case to use: 201" answer reg 201 POST "$KEY" /v1/cases "$BODY"
id=$(jget reg '["id"]' 2>/dev/null || echo 00000000-0000-4000-8000-000000000000)
token_id=$(q "SELECT t.id FROM core.staff_tokens t JOIN core.staff s ON s.id = t.staff_id WHERE s.code = 'li.desk' LIMIT 1")
key_id=$(q "SELECT id FROM core.api_keys WHERE name = 'demo-hotline'")
values=("id=$id" site=SH01 department=front-desk staff=li.desk "token_id=$token_id" "key_id=$key_id" absence_id=1 date=2026-12-31 channel=ops-hook \
    subscription=00000000-0000-4000-8000-000000000000 template=00000000-0000-4000-8000-000000000000 delivery=1 type=help)

echo "== every path and method of the document is served (the demo token; not 404 \"no such resource\", not 405)"
ops=$(oa list-ops "$doc" 2>/dev/null)
check "the document names operations" test -n "$ops"
while read -r method path; do
    [ -n "$method" ] || continue
    auth=$TOKEN
    # signing out revokes the token it is sent with: not the demo token the others use
    if [ "$method $path" = "DELETE /v1/session" ]; then
        auth="swt_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        q "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at) SELECT id, sha256('$auth'::bytea), now() + interval '1 hour' FROM core.staff WHERE code = 'li.desk'" >/dev/null
    fi
    check "served: $method $path" oa served "$doc" "$api" "$auth" "$method" "$path" "${values[@]}"
done <<<"$ops"

echo "== every route of the service is in the document"
# The routes of dispatch() in services/intake/http.c, and of admin_run() in
# services/intake/handle_admin.c for everything under /v1/sites: keep this
# list in step with them.
routes=(
    "POST /v1/session"
    "GET /v1/session"
    "DELETE /v1/session"
    "GET /v1/stream"
    "POST /v1/cases"
    "GET /v1/cases"
    "GET /v1/cases/{id}"
    "GET /v1/cases/{id}/history"
    "POST /v1/cases/{id}/actions/{command}"
    "GET /v1/sites"
    "POST /v1/sites"
    "GET /v1/sites/{code}"
    "PATCH /v1/sites/{code}"
    "GET /v1/sites/{code}/departments"
    "POST /v1/sites/{code}/departments"
    "GET /v1/sites/{code}/departments/{dept}"
    "PATCH /v1/sites/{code}/departments/{dept}"
    "GET /v1/sites/{code}/staff"
    "POST /v1/sites/{code}/staff"
    "GET /v1/sites/{code}/staff/{staff}"
    "PATCH /v1/sites/{code}/staff/{staff}"
    "PUT /v1/sites/{code}/staff/{staff}/password"
    "GET /v1/sites/{code}/checklists"
    "PUT /v1/sites/{code}/checklists/{type}"
    "DELETE /v1/sites/{code}/checklists/{type}"
    "GET /v1/sites/{code}/staff/{staff}/tokens"
    "POST /v1/sites/{code}/staff/{staff}/tokens"
    "DELETE /v1/sites/{code}/staff/{staff}/tokens/{id}"
    "GET /v1/sites/{code}/api-keys"
    "POST /v1/sites/{code}/api-keys"
    "DELETE /v1/sites/{code}/api-keys/{id}"
    "GET /v1/sites/{code}/routing/rules"
    "PUT /v1/sites/{code}/routing/rules"
    "GET /v1/sites/{code}/routing/absences"
    "POST /v1/sites/{code}/routing/absences"
    "DELETE /v1/sites/{code}/routing/absences/{id}"
    "GET /v1/sites/{code}/calendar"
    "PATCH /v1/sites/{code}/calendar"
    "GET /v1/sites/{code}/calendar/days"
    "PUT /v1/sites/{code}/calendar/days/{date}"
    "DELETE /v1/sites/{code}/calendar/days/{date}"
    "POST /v1/sites/{code}/calendar/import"
    "GET /v1/sites/{code}/limits"
    "PUT /v1/sites/{code}/limits"
    "GET /v1/sites/{code}/notification/channels"
    "POST /v1/sites/{code}/notification/channels"
    "GET /v1/sites/{code}/notification/channels/{name}"
    "PATCH /v1/sites/{code}/notification/channels/{name}"
    "DELETE /v1/sites/{code}/notification/channels/{name}"
    "GET /v1/sites/{code}/notification/subscriptions"
    "POST /v1/sites/{code}/notification/subscriptions"
    "DELETE /v1/sites/{code}/notification/subscriptions/{id}"
    "GET /v1/sites/{code}/notification/templates"
    "PUT /v1/sites/{code}/notification/templates"
    "DELETE /v1/sites/{code}/notification/templates/{id}"
    "GET /v1/sites/{code}/notification/settings"
    "PATCH /v1/sites/{code}/notification/settings"
    "GET /v1/sites/{code}/notification/deliveries"
    "GET /v1/sites/{code}/notification/deliveries/{id}"
    "POST /v1/sites/{code}/audit/verify"
    "GET /v1/sites/{code}/audit/checkpoints"
    "GET /v1/sites/{code}/reports/qa"
    "GET /v1/sites/{code}/reports/reception-log"
    "GET /v1/sites/{code}/reports/weekly-review"
)
for r in "${routes[@]}"; do
    check "documented: $r" oa documented "$doc" "$r"
done
call POST "$TOKEN" "/v1/cases/$id/actions/no-such-command" '{}' >/dev/null
known=$(python3 -c 'import json,re,sys; m=re.search(r"\(one of: ([^)]*)\)", json.load(open(sys.argv[1]))["error"]); print(m.group(1) if m else "")' "$tmp/body" 2>/dev/null)
check "the command enum is exactly the commands the service names in its 404" oa commands "$doc" "$known"

echo "== answers conform to their schema"
check "the registration body conforms to the request schema" oa request "$doc" "POST /v1/cases" "$BODY"
check "201 of POST /v1/cases (and its ETag)" conforms "POST /v1/cases" 201 reg
check "the same submission again: 200, a duplicate" answer dup 200 POST "$KEY" /v1/cases "$BODY"
check "... conforms (and its ETag)" conforms "POST /v1/cases" 200 dup
BAD='{"site":"SH01","channel":"fax","subject":" ","customer":{"phone":"call me","pet":"cat"},"bogus":1}'
check "422 of POST /v1/cases: FieldErrors" answer bad 422 POST "$KEY" /v1/cases "$BAD"
check "... conforms" conforms "POST /v1/cases" 422 bad
check "... the request schema refuses that body too" oa request "$doc" "POST /v1/cases" "$BAD" invalid
# refused BODY: POST /v1/cases answers 422
refused() { local st; st=$(call POST "$KEY" /v1/cases "$1"); [ "$st" = 422 ] || { echo "got $st: $(head -c 200 "$tmp/body")"; return 1; }; }
for b in '{"site":"sh01","channel":"api","type":"help","subject":"x"}' \
    '{"site":"SH01","channel":"api","type":"help","subject":"x","customer":{"phone":"1234"}}' \
    '{"site":"SH01","channel":"api","type":"help","subject":"x","first_responder":"li desk"}' \
    '{"site":"SH01","channel":"api","type":"help","subject":"x","urgency":"high"}' \
    "{\"site\":\"SH01\",\"channel\":\"api\",\"type\":\"help\",\"subject\":\"$(printf 'x%.0s' $(seq 1 1001))\"}"; do
    check "refused by the service: ${b:0:100}" refused "$b"
    check "... and by the request schema" oa request "$doc" "POST /v1/cases" "$b" invalid
done
check "GET /v1/cases/{id}: 200" answer case 200 GET "$TOKEN" "/v1/cases/$id"
check "... conforms (and its ETag)" conforms "GET /v1/cases/{id}" 200 case
check "GET /v1/cases/{id} with the system's key: 200" answer case_key 200 GET "$KEY" "/v1/cases/$id"
check "... conforms" conforms "GET /v1/cases/{id}" 200 case_key
check "GET an unknown case: 404" answer nocase 404 GET "$TOKEN" /v1/cases/00000000-0000-4000-8000-000000000000
check "... conforms: Error" conforms "GET /v1/cases/{id}" 404 nocase
check "first_contact without If-Match: 428" answer nomatch 428 POST "$TOKEN" "/v1/cases/$id/actions/first_contact" '{"note":"x"}'
check "... conforms" conforms "POST /v1/cases/{id}/actions/{command}" 428 nomatch
check "the first_contact body conforms to FirstContactCommand" oa request "$doc" FirstContactCommand '{"note":"called Mr Zhang","contacted_at":"'"$(date -u +%FT%TZ)"'"}'
check "the transfer body conforms to TransferCommand" oa request "$doc" TransferCommand '{"to_department":"engineering","reason":"a leak","slip_number":"ZB-1"}'
check "first_contact: 200" answer act1 200 POST "$TOKEN" "/v1/cases/$id/actions/first_contact" '{"note":"called Mr Zhang","contacted_at":"'"$(date -u +%FT%TZ)"'"}' -H 'If-Match: "1"'
check "... conforms: the case, with its new ETag" conforms "POST /v1/cases/{id}/actions/{command}" 200 act1
check "transfer: 200" answer act2 200 POST "$TOKEN" "/v1/cases/$id/actions/transfer" '{"to_department":"engineering","reason":"a leak","slip_number":"ZB-1"}' -H 'If-Match: "2"'
check "... conforms" conforms "POST /v1/cases/{id}/actions/{command}" 200 act2
check "the same change on the old version: 412" answer stale 412 POST "$TOKEN" "/v1/cases/$id/actions/transfer" '{"to_department":"security","reason":"x"}' -H 'If-Match: 2'
check "... conforms (Error, the current version as ETag)" conforms "POST /v1/cases/{id}/actions/{command}" 412 stale
check "an unknown member: 422" answer badact 422 POST "$MGR" "/v1/cases/$id/actions/escalate" '{"level":"manager","reason":"x","colour":"red"}' -H 'If-Match: 3'
check "... conforms: FieldErrors" conforms "POST /v1/cases/{id}/actions/{command}" 422 badact
check "... EscalateCommand refuses that body too" oa request "$doc" EscalateCommand '{"level":"manager","reason":"x","colour":"red"}' invalid
check "GET /v1/cases/{id}/history: 200" answer hist 200 GET "$TOKEN" "/v1/cases/$id/history"
check "... with a handoff, a note and three events" test "$(jget hist '["handoffs"].__len__()'),$(jget hist '["notes"].__len__()'),$(jget hist '["events"].__len__()')" = "1,1,3"
check "... conforms" conforms "GET /v1/cases/{id}/history" 200 hist
for i in 1 2 3; do
    call POST "$TOKEN" /v1/cases "{\"site\":\"SH01\",\"channel\":\"visit\",\"type\":\"repair\",\"subject\":\"list $i\"}" >/dev/null
done
check "GET /v1/cases?limit=2: 200 with a next cursor" answer page 200 GET "$TOKEN" "/v1/cases?limit=2&type=repair,complaint&status=registered,transferred"
check "... a page of two, and a cursor" test "$(jget page '["cases"].__len__()') $(jget page '["next"] is not None')" = "2 True"
check "... conforms" conforms "GET /v1/cases" 200 page
check "... the next page: 200" answer page2 200 GET "$TOKEN" "/v1/cases?limit=2&type=repair,complaint&status=registered,transferred&after=$(jget page '["next"]')"
check "... conforms" conforms "GET /v1/cases" 200 page2
check "the whole list with the system's key (its own cases, phone shown): 200" answer pagekey 200 GET "$KEY" /v1/cases
check "... conforms" conforms "GET /v1/cases" 200 pagekey
check "GET /v1/cases with an unknown status: 422" answer badlist 422 GET "$TOKEN" "/v1/cases?status=lost"
check "... conforms" conforms "GET /v1/cases" 422 badlist
check "GET /v1/sites/SH01/staff/li.desk by the manager: 200" answer staff 200 GET "$MGR" /v1/sites/SH01/staff/li.desk
check "... with the contact details the manager may see" test "$(jget staff '["phone"]')" = 13900000004
check "... conforms" conforms "GET /v1/sites/{site}/staff/{staff}" 200 staff
check "GET /v1/sites/SH01/staff (a leader's details private): 200" answer stafflist 200 GET "$MGR" "/v1/sites/SH01/staff?limit=500"
check "... conforms" conforms "GET /v1/sites/{site}/staff" 200 stafflist
check "GET /v1/sites/SH01/departments (scopes): 200" answer depts 200 GET "$MGR" /v1/sites/SH01/departments
check "... conforms" conforms "GET /v1/sites/{site}/departments" 200 depts
check "GET /v1/sites/SH01/routing/rules (the demo's): 200" answer rules 200 GET "$MGR" /v1/sites/SH01/routing/rules
check "... conforms" conforms "GET /v1/sites/{site}/routing/rules" 200 rules
check "PUT /v1/sites/SH01/routing/rules with an unknown department: 422" answer badrules 422 PUT "$MGR" /v1/sites/SH01/routing/rules '{"rules":[{"priority":1,"keywords":["x"],"department":"nowhere"}]}'
check "... conforms" conforms "PUT /v1/sites/{site}/routing/rules" 422 badrules
check "POST /v1/sites/SH01/routing/absences: 201" answer absence 201 POST "$MGR" /v1/sites/SH01/routing/absences '{"staff":"zhou.eng","deputy":"wu.tech","until":"2099-01-01T00:00","reason":"leave"}'
check "... conforms" conforms "POST /v1/sites/{site}/routing/absences" 201 absence
check "GET /v1/sites/SH01/routing/absences: 200" answer absences 200 GET "$MGR" /v1/sites/SH01/routing/absences
check "... conforms" conforms "GET /v1/sites/{site}/routing/absences" 200 absences
check "GET /v1/sites/SH01/calendar: 200" answer cal 200 GET "$MGR" /v1/sites/SH01/calendar
check "... conforms" conforms "GET /v1/sites/{site}/calendar" 200 cal
check "PATCH /v1/sites/SH01/calendar with overlapping hours: 422" answer badcal 422 PATCH "$MGR" /v1/sites/SH01/calendar '{"hours":"09:00-12:00,11:00-18:00"}'
check "... conforms" conforms "PATCH /v1/sites/{site}/calendar" 422 badcal
check "PATCH /v1/sites/SH01/calendar: 200" answer cal2 200 PATCH "$MGR" /v1/sites/SH01/calendar '{"hours":"09:00-12:00,13:30-18:00","rest_days":[6,7]}'
check "... conforms" conforms "PATCH /v1/sites/{site}/calendar" 200 cal2
check "PUT /v1/sites/SH01/calendar/days/2026-12-31: 200" answer day 200 PUT "$MGR" /v1/sites/SH01/calendar/days/2026-12-31 '{"kind":"holiday","name":"年终"}'
check "... conforms" conforms "PUT /v1/sites/{site}/calendar/days/{date}" 200 day
check "GET /v1/sites/SH01/calendar/days?year=2026: 200" answer days 200 GET "$MGR" "/v1/sites/SH01/calendar/days?year=2026"
check "... conforms" conforms "GET /v1/sites/{site}/calendar/days" 200 days
check "POST /v1/sites/SH01/calendar/import: 200" answer imp 200 POST "$MGR" /v1/sites/SH01/calendar/import '{"ics":"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20270101\r\nSUMMARY:元旦\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"}'
check "... conforms" conforms "POST /v1/sites/{site}/calendar/import" 200 imp
check "POST /v1/sites/SH01/calendar/import, not iCalendar: 422" answer badimp 422 POST "$MGR" /v1/sites/SH01/calendar/import '{"ics":"hello"}'
check "... conforms" conforms "POST /v1/sites/{site}/calendar/import" 422 badimp
check "GET /v1/sites/SH01/limits: 200" answer lim 200 GET "$MGR" /v1/sites/SH01/limits
check "... conforms" conforms "GET /v1/sites/{site}/limits" 200 lim
LIMS='{"limits":[{"clock":"handoff","amount":"45m"},{"clock":"first_contact","amount":"4h","basis":"working","case_type":"complaint","urgency":null}]}'
check "the limits body conforms to the request schema" oa request "$doc" "PUT /v1/sites/{site}/limits" "$LIMS"
check "PUT /v1/sites/SH01/limits: 200" answer lim2 200 PUT "$MGR" /v1/sites/SH01/limits "$LIMS"
check "... conforms" conforms "PUT /v1/sites/{site}/limits" 200 lim2
check "PUT /v1/sites/SH01/limits with a zero limit: 422" answer badlim 422 PUT "$MGR" /v1/sites/SH01/limits '{"limits":[{"clock":"handoff","amount":"0m"}]}'
check "... conforms" conforms "PUT /v1/sites/{site}/limits" 422 badlim
check "GET /v1/sites by the manager: 200" answer sites 200 GET "$MGR" /v1/sites
check "... conforms" conforms "GET /v1/sites" 200 sites
check "POST /v1/sites/SH01/staff by the receptionist: 403" answer forbidden 403 POST "$TOKEN" /v1/sites/SH01/staff '{"code":"x.y","name":"x","role":"staff"}'
check "... conforms" conforms "POST /v1/sites/{site}/staff" 403 forbidden
check "GET /v1/sites/SH01/staff by the receptionist: 200" answer stafflist 200 GET "$TOKEN" /v1/sites/SH01/staff
check "... conforms" conforms "GET /v1/sites/{site}/staff" 200 stafflist

echo "== stop"
intake_stop
finish
