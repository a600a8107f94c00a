"""Generate the committed JSON Schemas and the AsyncAPI 3 document; check compatibility.

``python -m contracts.schemagen``          regenerate (refuses breaking changes)
``python -m contracts.schemagen --check``  fail if the committed files are stale or broken
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.registry import EVENT_MODELS, TOPICS

HERE = Path(__file__).parent
SCHEMA_DIR = HERE / "schemas"
ASYNCAPI_FILE = HERE / "asyncapi.json"


def schema_file(event_type: str) -> Path:
    return SCHEMA_DIR / f"{event_type}.json"


def event_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for event_type, model in sorted(EVENT_MODELS.items()):
        schema = model.model_json_schema()
        schema["$id"] = f"https://integration.landsberg.de/schemas/{event_type}.json"
        schema["x-cloudevents-type"] = event_type
        schema["x-kafka-topic"] = model.topic
        schemas[event_type] = schema
    return schemas


def asyncapi_document(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic_name, types in sorted(TOPICS.items()):
        channel_id = topic_name.replace(".", "_")
        channel_messages = {}
        for event_type in types:
            message_id = event_type.replace(".", "_")
            messages[message_id] = {
                "name": event_type,
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/CloudEventsBinaryHeaders"},
                "payload": {"$ref": f"schemas/{event_type}.json"},
                "bindings": {"kafka": {"key": {"type": "string", "description": EVENT_MODELS[event_type].key_field}}},
            }
            channel_messages[message_id] = {"$ref": f"#/components/messages/{message_id}"}
        channels[channel_id] = {"address": topic_name, "messages": channel_messages}
        channels[channel_id + "_dlq"] = {
            "address": topic_name + ".dlq",
            "description": "Dead letters of consumers of " + topic_name + "; same messages plus dlq_* headers.",
            "messages": channel_messages,
        }
        operations["publish_" + channel_id] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Landsberg integration platform events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 in Kafka binary mode. No names, birth dates, addresses or contact data.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {
                "CloudEventsBinaryHeaders": {
                    "type": "object",
                    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time"],
                    "properties": {
                        "ce_specversion": {"const": "1.0"},
                        "ce_id": {"type": "string"},
                        "ce_type": {"type": "string"},
                        "ce_source": {"type": "string"},
                        "ce_subject": {"type": "string"},
                        "ce_time": {"type": "string", "format": "date-time"},
                        "content-type": {"const": "application/json"},
                        "traceparent": {"type": "string"},
                    },
                }
            },
        },
    }


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].split("/")[-1]
        node = schema.get("$defs", {}).get(name, {})
    return node


def _type_signature(schema: dict[str, Any], node: dict[str, Any]) -> Any:
    node = _resolve(schema, node)
    if "anyOf" in node:
        return sorted(json.dumps(_type_signature(schema, n), sort_keys=True) for n in node["anyOf"])
    return {k: node[k] for k in ("type", "format", "items") if k in node} | (
        {"items": _type_signature(schema, node["items"])} if "items" in node else {}
    )


def breaking_changes(old: dict[str, Any], new: dict[str, Any], where: str = "") -> list[str]:
    """What makes ``new`` unable to read data written for ``old`` (or old readers break)."""
    problems = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in old_props:
        if name not in new_props:
            problems.append(f"{where}{name}: field removed")
        elif _type_signature(old, old_props[name]) != _type_signature(new, new_props[name]):
            problems.append(f"{where}{name}: type changed")
        else:
            old_enum = _resolve(old, old_props[name]).get("enum")
            new_enum = _resolve(new, new_props[name]).get("enum")
            if old_enum and new_enum and not set(old_enum) <= set(new_enum):
                problems.append(f"{where}{name}: enum values removed {sorted(set(old_enum) - set(new_enum))}")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"{where}{name}: new required field")
    return problems


def generated_files() -> dict[Path, str]:
    schemas = event_schemas()
    files = {schema_file(t): json.dumps(s, indent=2, ensure_ascii=False) + "\n" for t, s in schemas.items()}
    files[ASYNCAPI_FILE] = json.dumps(asyncapi_document(schemas), indent=2, ensure_ascii=False) + "\n"
    return files


def compatibility_report() -> list[str]:
    problems = []
    for event_type, schema in event_schemas().items():
        path = schema_file(event_type)
        if path.exists():
            problems += breaking_changes(json.loads(path.read_text()), schema, f"{event_type}: ")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    parser.add_argument(
        "--allow-breaking", action="store_true", help="write even breaking changes (bump the event version instead!)"
    )
    args = parser.parse_args(argv)
    problems = compatibility_report()
    if problems and not args.allow_breaking:
        print("Breaking changes against the committed schemas; publish a new .vN event instead:", file=sys.stderr)
        print("\n".join("  " + p for p in problems), file=sys.stderr)
        return 1
    files = generated_files()
    stale = [p for p, content in files.items() if not p.exists() or p.read_text() != content]
    if args.check:
        if stale:
            print("Stale generated contracts, run `make contracts`:", *map(str, stale), sep="\n  ", file=sys.stderr)
            return 1
        return 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for path in stale:
        path.write_text(files[path])
        print("wrote", path.relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
